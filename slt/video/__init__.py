"""Video preprocessing: streaming OpenCV decode, signer localisation with dlib's face detectors (the CNN one through
a PyTorch port), square 224x224 crops, 128-frame normalised clips for SignHiera (see docs/ARCHITECTURE.md)."""

from slt.video.clips import clip_frame_indices, join_clip_features
from slt.video.config import PreprocessConfig, default_preprocess, fit_preprocess_to_model
from slt.video.decode import VideoInfo, probe_video
from slt.video.pipeline import PreprocessedVideo, preprocess_video, preprocess_videos

__all__ = [
    "PreprocessConfig",
    "PreprocessedVideo",
    "VideoInfo",
    "clip_frame_indices",
    "default_preprocess",
    "fit_preprocess_to_model",
    "join_clip_features",
    "preprocess_video",
    "preprocess_videos",
    "probe_video",
]
