"""Shared by the app tests: launch the real app (in-process or as `python app.py`) with test settings.

Test inputs come from `tests.helpers.video` (noise and long videos, the shipped SAMPLES) and
`tests.helpers.predictions`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers.process import REPO_ROOT

ADMIN_TOKEN = "test-admin-token"
# Limits chosen against the shipped clips: instructional_1 (2.5 s, 459 KB) passes; studio_1 (3.2 s) is too long;
# instructional_3 (523 KB) is too large.
MAX_CLIP_SECONDS = 3.0
MAX_UPLOAD_MB = 1.0  # the shipped samples are up to ~0.75 MB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_settings(demo_dir: Path, runs_dir: Path, port: int, **overrides):
    from slt.ui.settings import AppSettings

    fields = dict(model_set="demo", device="cpu", runs_dir=runs_dir.resolve(), demo_dir=demo_dir.resolve(), port=port,
                  max_clip_seconds=MAX_CLIP_SECONDS, max_upload_mb=MAX_UPLOAD_MB, admin_token=ADMIN_TOKEN)
    fields.update(overrides)
    return AppSettings(**fields)


@contextlib.contextmanager
def launched_app(settings):
    """The real app on a free port in this process; yields (url, state) once its models are loaded."""
    from slt.ui.app import launch
    from slt.ui.state import AppState

    state = AppState(settings)
    demo = launch(state, prevent_thread_lock=True, quiet=True)
    try:
        state.loader.wait(timeout=300)
        yield f"http://127.0.0.1:{settings.port}/", state
    finally:
        for job in state.jobs.running():  # never leave a trainer behind
            state.jobs.stop(job.id, wait_s=20)
        demo.close()


@contextlib.contextmanager
def app_subprocess(port: int, env: dict[str, str], log_path: Path, timeout_s: float = 240):
    """`python app.py --port N` as a real process; yields its URL once the models are ready."""
    cmd = [sys.executable, str(REPO_ROOT / "app.py"), "--port", str(port), "--model-set", "demo", "--device", "cpu"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert proc.poll() is None, f"app exited early:\n{log_path.read_text()[-3000:]}"
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url, timeout=2)
                break
            assert time.monotonic() < deadline, f"app did not come up:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(client, timeout_s: float = 240) -> dict:
    """Poll the app's model_info endpoint until the models are loaded."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.predict(api_name="/model_info")
        if info["phase"] in ("ready", "failed"):
            assert info["phase"] == "ready", info
            return info
        assert time.monotonic() < deadline, info
        time.sleep(1)

