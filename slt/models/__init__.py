"""SignHiera video encoder and SONAR ASL sentence encoder: full-size and tiny configs, strict checkpoint loading."""

from slt.models.checkpoint import save_model_checkpoint
from slt.models.loading import load_signhiera, load_sonar_sign_encoder
from slt.models.signhiera import SignHiera, SignHieraConfig
from slt.models.sonar_encoder import SonarSignEncoder, SonarSignEncoderConfig

__all__ = [
    "SignHiera",
    "SignHieraConfig",
    "SonarSignEncoder",
    "SonarSignEncoderConfig",
    "load_signhiera",
    "load_sonar_sign_encoder",
    "save_model_checkpoint",
]
