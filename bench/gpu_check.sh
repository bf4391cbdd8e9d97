#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): one table, under 8 minutes on a CUDA machine.
#
#   bash bench/gpu_check.sh --prepare     # here (the project's venv): copy dlib's CNN face detector weights
#                                         # (0.7 MB, from face-recognition-models) into bench/carry/, git-ignored
#   bash bench/gpu_check.sh               # there: carry bench/carry/ along with the working tree, then run
#   GPU_CHECK_TIMEOUT=3600 bash bench/gpu_check.sh --device cpu --small --seconds 3   # the same code on a CPU
#                                         # with tiny models and fewer cases (a proof run; slow on 2 cores)
#
# The machine it is meant for has Python 3.12 with its own torch (CUDA), transformers 5.x, OpenCV, numpy and
# no fairseq2, sonar-space, dlib, gradio, scikit-image or network; it uses `python3` unless $PYTHON says otherwise
# (here: .venv/bin/python when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=bench/carry
WEIGHTS=$CARRY/mmod_human_face_detector.dat
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [[ ! -f $WEIGHTS || "${1:-}" == "--prepare" ]]; then
  mkdir -p "$CARRY"
  "$PYTHON" - "$WEIGHTS" <<'PY'
import shutil, sys
sys.path.insert(0, ".")
from slt.video.detect import cnn_model_path  # $SLT_MMOD_WEIGHTS, else the face-recognition-models package
source = cnn_model_path()
if source.resolve() != __import__("pathlib").Path(sys.argv[1]).resolve():
    shutil.copyfile(source, sys.argv[1])
print(f"{sys.argv[1]}: {source} ({source.stat().st_size} bytes)")
PY
  [[ "${1:-}" == "--prepare" ]] && exit 0
fi
[[ -d .venv/lib ]] && export LD_LIBRARY_PATH="$PWD/.venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PYTHON" bench/gpu_check.py --mmod-weights "$WEIGHTS" "$@"
