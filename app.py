"""SLT Studio: `python app.py [--host H] [--port N] [--share] [--model-set auto|official|demo]`.

Offline on a laptop it serves the demo model set (built on first start); on a Hugging Face Space with a GPU it
serves Meta's official SONAR ASL models (downloaded and cached on first use). All settings: slt/ui/settings.py.
"""

from __future__ import annotations

import argparse
import logging
import sys

from slt.errors import SLTError


def main(argv: list[str] | None = None) -> int:
    from slt.ui import settings as app_settings

    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    app_settings.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = app_settings.settings_from_args(args)
    except SLTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from slt.ui.app import launch
    from slt.ui.state import AppState

    launch(AppState(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
