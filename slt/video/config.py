"""Preprocessing settings (defaults follow the released SONAR ASL pipeline, see docs/PIPELINE.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from slt.errors import PreprocessConfigError
from slt.video.detect import DETECTORS


@dataclass(frozen=True)
class PreprocessConfig:
    """How a video becomes model input. Frozen (and so hashable) because the engine caches results by it."""

    # "cnn": dlib's mmod model (as released) run by the PyTorch port on the engine's device; "dlib-cnn": the same
    # model run by dlib (identical boxes, ~10-30x slower, CPU only); "hog": dlib's HOG (fast, different boxes).
    detector: str = "cnn"
    detect_every: int = 16  # run the face detector on every n-th frame
    # Longest side of the frame copy the detector sees (None: full resolution, as the released pipeline ran).
    # With upsample=1 the CNN finds faces >= ~34 px at this size, i.e. >= 12 % of the frame height of a 16:9 video
    # at 512. The engine keeps 512 on a CPU and detects at full resolution on CUDA (docs/ARCHITECTURE.md).
    detect_max_side: int | None = 512
    upsample: int = 1  # dlib's pyramid upsampling (x2 per step) before detection
    min_face_fraction: float = 0.3  # fewer sampled frames with a face -> NoSignerError
    center_crop_fallback: bool = False  # use a centred square crop instead of raising NoSignerError
    clip_frames: int = 128
    sampling_rate: int = 2
    target_fps: float = 25.0
    stride: int = 64  # in sampled frames: clips start every stride * sampling_rate frames at target_fps
    size: int = 224
    mean: float = 0.45
    std: float = 0.225
    max_duration_s: float | None = None  # longer -> VideoTooLongError
    max_bytes: int | None = None  # larger file -> VideoTooLongError
    min_frames: int = 8  # fewer decodable frames -> VideoTooShortError
    preview_frames: int = 6  # crops shown in the preview strip
    preview_tile: int = 112  # preview strip height in pixels
    # Full-resolution frames the face scan may keep for cropping, in MB for one preprocessing call: when a video's
    # sampled frames fit (a 10-s 720p clip needs ~350 MB), it is decoded once instead of twice. 0: always twice.
    # Borrowed from one pool per process (SLT_FRAME_POOL_MB, default 1024) while the call runs, so concurrent
    # calls (uploads in the app) keep at most the pool together; a call that gets less decodes twice.
    frame_buffer_mb: int = 512

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise PreprocessConfigError(
                f"Unknown face detector {self.detector!r}; choose one of {', '.join(DETECTORS)}.")
        if self.detect_max_side is not None and (not isinstance(self.detect_max_side, int)
                                                 or isinstance(self.detect_max_side, bool) or self.detect_max_side < 1):
            raise PreprocessConfigError(
                f"PreprocessConfig.detect_max_side must be a positive integer or None, got {self.detect_max_side!r}.")
        positive = ("detect_every", "clip_frames", "sampling_rate", "stride", "size",
                    "min_frames", "preview_tile")
        if not isinstance(self.frame_buffer_mb, int) or isinstance(self.frame_buffer_mb, bool) \
                or self.frame_buffer_mb < 0:
            raise PreprocessConfigError(
                f"PreprocessConfig.frame_buffer_mb must be an integer >= 0, got {self.frame_buffer_mb!r}.")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PreprocessConfigError(f"PreprocessConfig.{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.upsample, int) or not 0 <= self.upsample <= 3:
            raise PreprocessConfigError(f"PreprocessConfig.upsample must be 0..3, got {self.upsample!r}.")
        if not 0.0 <= self.min_face_fraction <= 1.0:
            raise PreprocessConfigError(
                f"PreprocessConfig.min_face_fraction must be in [0, 1], got {self.min_face_fraction!r}.")
        if not self.target_fps > 0 or not self.std > 0:
            raise PreprocessConfigError("PreprocessConfig.target_fps and std must be positive.")
        if self.preview_frames < 0:
            raise PreprocessConfigError(f"PreprocessConfig.preview_frames must be >= 0, got {self.preview_frames!r}.")
        for name in ("max_duration_s", "max_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise PreprocessConfigError(f"PreprocessConfig.{name} must be positive or None, got {value!r}.")

    def output_settings(self) -> dict:
        """The settings that decide the crops (what extracted features and crop caches record and compare on
        reuse): all but the scan's memory budget, which changes only how often the video is decoded."""
        settings = asdict(self)
        del settings["frame_buffer_mb"]
        return settings


def fit_preprocess_to_model(config: PreprocessConfig, model_config) -> PreprocessConfig:
    """`config` with the clip length and image size of a SignHiera checkpoint (`model_config.input_size`:
    128x224 for the released model, smaller when tiny) and 50 % clip overlap. The engine and feature extraction
    both fit through here, so features made for training match those seen at inference."""
    frames, height, _ = model_config.input_size
    return replace(config, clip_frames=frames, size=height, stride=max(1, frames // 2))


def default_preprocess(detector: str, device) -> PreprocessConfig:
    """The settings for a model set's `detector` on `device` (a torch.device or name): the CNN on CUDA at the
    released pipeline's own setting (full-resolution frames, upsample once); everywhere else on frames downscaled
    to 512 px (dlib's boxes for that copy; a few pixels from the full-resolution ones). The engine and
    `slt translate` both start from here."""
    if detector == "cnn" and str(device).startswith("cuda"):
        return PreprocessConfig(detector=detector, detect_max_side=None)
    return PreprocessConfig(detector=detector)
