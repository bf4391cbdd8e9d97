"""Video preprocessing: streaming OpenCV decode, dlib signer localisation, square 224x224 crops, 128-frame
normalised clips for SignHiera (see PIPELINE.md "Preprocessing")."""

from slt.video.clips import clip_frame_indices, join_clip_features
from slt.video.config import PreprocessConfig, fit_preprocess_to_model
from slt.video.decode import VideoInfo, probe_video
from slt.video.pipeline import PreprocessedVideo, preprocess_video

__all__ = [
    "PreprocessConfig",
    "PreprocessedVideo",
    "VideoInfo",
    "clip_frame_indices",
    "fit_preprocess_to_model",
    "join_clip_features",
    "preprocess_video",
    "probe_video",
]
