"""The app's configuration: environment variables, overridable by `python app.py` flags.

| env var | flag | default | meaning |
|---|---|---|---|
| SLT_MODEL_SET | --model-set | auto | official, demo or auto (official if cached/reachable, else demo) |
| SLT_DEVICE | --device | auto | torch device for the engine |
| SLT_RUNS_DIR | --runs-dir | runs | training runs (and jobs.json) |
| SLT_MAX_UPLOAD_MB | --max-upload-mb | 200 | largest accepted upload |
| SLT_MAX_CLIP_SECONDS | --max-clip-seconds | 120 | longest accepted clip |
| SLT_MAX_FRAME_PIXELS | --max-frame-pixels | 2073600 | largest accepted frame (width x height; 1920x1080) |
| SLT_ADMIN_TOKEN | | unset | token that unlocks the training launcher (and its logs) |
| SLT_MAX_TRAIN_JOBS | --max-train-jobs | 1 | training jobs running at the same time |
| SLT_GPU_CONCURRENCY | --gpu-concurrency | 1 | translations/comparisons running at the same time |
| SPACE_ID | | unset | set by Hugging Face Spaces: the app is public |

An app reachable from other machines (a Space, `--share`, or `--host` other than a loopback address) locks the
training launcher unless SLT_ADMIN_TOKEN is set; see the README's "Security" section.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from slt.demo.examples import EXAMPLES_DIR
from slt.errors import InvalidArgumentError
from slt.registry import MODEL_SETS, REPO_ROOT, demo_dir
from slt.text.backends import DECODER_BACKENDS

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The demo build's two training runs (slt/demo/build.py writes them under <demo>/work/): name -> what they are.
DEMO_RUN_NAMES = {"run_b": "fine-tuning on domain B", "run_a": "zero-shot training on domain A"}


def gradio_upload_dir() -> Path:
    """Where Gradio stores uploads (the same rule Gradio itself uses)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


@dataclass(frozen=True)
class AppSettings:
    """Everything the UI needs to know about its deployment."""

    model_set: str = "auto"
    device: str = "auto"
    # The SONAR text decoder on fairseq2/sonar-space or on transformers (auto: fairseq2 where it imports).
    decoder_backend: str = "auto"
    runs_dir: Path = REPO_ROOT / "runs"
    max_upload_mb: float = 200.0
    max_clip_seconds: float = 120.0
    # Decoding dominates preprocessing and grows with the frame size (a 30-s 4K clip took 49 s on 2 cores, 4x
    # a 1080p one); the detector and the crops never need more than 1080p, so larger frames are refused up front.
    max_frame_pixels: int = 1920 * 1080
    admin_token: str | None = None
    max_train_jobs: int = 1
    gpu_concurrency: int = 1
    public: bool = False  # a Hugging Face Space (SPACE_ID set)
    samples_dir: Path = REPO_ROOT / "assets" / "samples"
    demo_dir: Path = field(default_factory=demo_dir)
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False

    def __post_init__(self) -> None:
        if self.model_set not in MODEL_SETS:
            raise InvalidArgumentError(f"model set must be one of {', '.join(MODEL_SETS)}, got {self.model_set!r}")
        if self.decoder_backend not in DECODER_BACKENDS:
            raise InvalidArgumentError(
                f"decoder backend must be one of {', '.join(DECODER_BACKENDS)}, got {self.decoder_backend!r}")
        if not self.max_upload_mb > 0 or not self.max_clip_seconds > 0 or not self.max_frame_pixels > 0:
            raise InvalidArgumentError(
                "SLT_MAX_UPLOAD_MB, SLT_MAX_CLIP_SECONDS and SLT_MAX_FRAME_PIXELS must be positive numbers")
        if self.max_train_jobs < 1 or self.gpu_concurrency < 1:
            raise InvalidArgumentError("SLT_MAX_TRAIN_JOBS and SLT_GPU_CONCURRENCY must be >= 1")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def allowed_roots(self) -> list[Path]:
        """The only directories whose files the UI's handlers may read (paths users type or pick): the runs, the
        demo set, the sample clips, uploads, and the shipped mode-collapse example runs (read, never served)."""
        return [self.runs_dir.resolve(), self.demo_dir.resolve(), self.samples_dir.resolve(),
                gradio_upload_dir().resolve(), EXAMPLES_DIR.resolve()]

    @property
    def served_roots(self) -> list[Path]:
        """Directories Gradio may serve files from (`/gradio_api/file=`) besides its own upload/cache folders: the
        sample clips and the demo set's corpus videos the browser tab plays. Never the runs directory."""
        return [self.samples_dir.resolve(), self.demo_dir.resolve()]

    @property
    def blocked_roots(self) -> list[Path]:
        """Never served, even when inside a served or temporary folder: checkpoints, jobs.json, console logs (the
        runs folder, and the demo set's example runs, which the predictions browser reads but never serves)."""
        return [self.runs_dir.resolve(), *(self.demo_dir.resolve() / "work" / name for name in DEMO_RUN_NAMES)]

    @property
    def exposed(self) -> bool:
        """Reachable from other machines: a Space, a gradio.live link, or listening on a non-loopback address."""
        return self.public or self.share or self.host not in LOOPBACK_HOSTS

    @property
    def launcher_locked(self) -> bool:
        """Training needs the admin token when one is configured; an exposed app without one is locked for all."""
        return self.admin_token is not None or self.exposed

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AppSettings:
        env = os.environ if environ is None else environ
        try:
            return cls(
                model_set=env.get("SLT_MODEL_SET", "auto"),
                device=env.get("SLT_DEVICE", "auto"),
                decoder_backend=env.get("SLT_DECODER_BACKEND", "auto"),
                runs_dir=Path(env.get("SLT_RUNS_DIR", str(REPO_ROOT / "runs"))).resolve(),
                max_upload_mb=float(env.get("SLT_MAX_UPLOAD_MB", "200")),
                max_clip_seconds=float(env.get("SLT_MAX_CLIP_SECONDS", "120")),
                max_frame_pixels=int(env.get("SLT_MAX_FRAME_PIXELS", str(1920 * 1080))),
                admin_token=env.get("SLT_ADMIN_TOKEN") or None,
                max_train_jobs=int(env.get("SLT_MAX_TRAIN_JOBS", "1")),
                gpu_concurrency=int(env.get("SLT_GPU_CONCURRENCY", "1")),
                public=bool(env.get("SPACE_ID")),
                demo_dir=Path(env.get("SLT_DEMO_DIR", str(demo_dir()))).resolve(),
                # A Space must listen on every interface; a laptop only on localhost.
                host="0.0.0.0" if env.get("SPACE_ID") else "127.0.0.1",
                port=int(env.get("PORT", env.get("GRADIO_SERVER_PORT", "7860"))),
            )
        except ValueError as error:
            raise InvalidArgumentError(f"bad app setting in the environment: {error}") from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`python app.py` flags; each overrides its environment variable."""
    parser.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1; 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--model-set", choices=MODEL_SETS, default=None, help="official, demo or auto (SLT_MODEL_SET)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1 (SLT_DEVICE)")
    parser.add_argument("--decoder-backend", choices=DECODER_BACKENDS, default=None,
                        help="text decoder library: auto, fairseq2 or transformers (SLT_DECODER_BACKEND)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="training runs directory (SLT_RUNS_DIR)")
    parser.add_argument("--max-upload-mb", type=float, default=None, help="largest upload in MB (SLT_MAX_UPLOAD_MB)")
    parser.add_argument("--max-clip-seconds", type=float, default=None, help="longest clip (SLT_MAX_CLIP_SECONDS)")
    parser.add_argument("--max-frame-pixels", type=int, default=None,
                        help="largest frame, width x height (SLT_MAX_FRAME_PIXELS; default 1920x1080)")
    parser.add_argument("--max-train-jobs", type=int, default=None,
                        help="concurrent training jobs (SLT_MAX_TRAIN_JOBS)")
    parser.add_argument("--gpu-concurrency", type=int, default=None,
                        help="concurrent translations (SLT_GPU_CONCURRENCY)")


def settings_from_args(args: argparse.Namespace, base: AppSettings | None = None) -> AppSettings:
    """Apply the flags that were given on top of the environment's settings."""
    base = base or AppSettings.from_env()
    names = ("host", "port", "model_set", "device", "decoder_backend", "max_upload_mb", "max_clip_seconds",
             "max_frame_pixels", "max_train_jobs", "gpu_concurrency")
    changes = {name: getattr(args, name) for name in names
               if getattr(args, name, None) is not None}
    if getattr(args, "runs_dir", None) is not None:
        changes["runs_dir"] = Path(args.runs_dir).resolve()
    if getattr(args, "share", False):
        changes["share"] = True
    return replace(base, **changes)
