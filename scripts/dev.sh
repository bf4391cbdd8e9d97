#!/usr/bin/env bash
# One script for all set-up on a fresh machine, then the job:
#   bash scripts/dev.sh app     # install (first time), then run the app (offline demo models when no weights can be fetched)
#   bash scripts/dev.sh test    # install (first time, + test tools and a browser), lint (ruff), run the whole test suite
# Re-running is cheap: installs are skipped while requirements*.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${SLT_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
job=${1:-app}; shift || true

install_python() {
  local reqs=$1 stamp="$VENV/.installed-$(basename "$1" .txt)"
  local want; want=$(cat requirements*.txt | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$reqs"
  echo "$want" > "$stamp"
}

link_libsndfile() {
  # fairseq2n dlopens libsndfile.so.1; use the system one, else the copy the soundfile wheel bundles.
  if ldconfig -p 2>/dev/null | grep -q 'libsndfile.so.1'; then return; fi
  local bundled
  bundled=$("$VENV/bin/python" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("_soundfile_data")
if spec and spec.submodule_search_locations:
    hits = sorted(pathlib.Path(spec.submodule_search_locations[0]).glob("libsndfile*.so"))
    print(hits[0] if hits else "")
PY
)
  [ -n "$bundled" ] && ln -sf "$bundled" "$VENV/lib/libsndfile.so.1"
}

install_test_tools() {
  # Playwright drives Debian's chromium (its own browser download cannot work offline); capsh (libcap2-bin) lets
  # tests that run as root drop the permission override, so they meet unreadable files as a user does.
  local missing=""
  command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
  command -v capsh >/dev/null 2>&1 || missing="$missing libcap2-bin"
  [ -z "$missing" ] && return
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
}

export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
case "$job" in
  app)
    install_python requirements.txt
    link_libsndfile
    exec "$VENV/bin/python" app.py "$@"
    ;;
  test)
    install_python requirements-dev.txt
    link_libsndfile
    install_test_tools
    # Lint first (fast; settings in pyproject.toml): a lint error fails the job before the slow tests start.
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/python" -m pytest -q "$@" tests
    ;;
  *) echo "usage: bash scripts/dev.sh {app|test} [args...]" >&2; exit 2 ;;
esac
