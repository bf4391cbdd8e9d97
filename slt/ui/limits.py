"""What the UI lets users do: upload sizes and clip lengths, which paths they may read, the admin lock."""

from __future__ import annotations

import hmac
from pathlib import Path

from slt.errors import AccessDeniedError, PathNotAllowedError, VideoReadError, VideoTooLongError
from slt.ui.settings import AppSettings

# What the allowed roots are, in words: error messages must not show the server's folders.
ALLOWED_IN_WORDS = "the runs directory, the demo model set, the sample clips and uploads"


def check_allowed_path(path: str | Path, settings: AppSettings, must_exist: bool = True) -> Path:
    """Resolve a user-given path (symlinks and `..` included) and refuse it unless it lies in an allowed root."""
    text = str(path).strip()
    if not text:
        raise PathNotAllowedError("no path given")
    resolved = Path(text).expanduser()
    if not resolved.is_absolute():
        # Relative paths are read against the runs directory: the place users pick runs from.
        resolved = settings.runs_dir / resolved
    resolved = resolved.resolve()
    roots = settings.allowed_roots
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowedError(f"{text} is outside the directories this app may read ({ALLOWED_IN_WORDS})")
    if must_exist and not resolved.exists():
        raise PathNotAllowedError(f"{text} does not exist")
    return resolved


def check_upload(path: str | Path | None, settings: AppSettings) -> Path:
    """A video upload must exist, be an allowed file and be no larger than the configured limit."""
    if path is None or not str(path).strip():
        raise VideoReadError("no video given: upload a clip, record one with the webcam, or pick an example")
    resolved = check_allowed_path(path, settings)
    if not resolved.is_file():
        raise VideoReadError(f"{Path(path).name} is not a file")
    size = resolved.stat().st_size
    if size > settings.max_upload_bytes:
        raise VideoTooLongError(
            f"{resolved.name} is {size / 1024 / 1024:.1f} MB; "
            f"this app accepts clips up to {settings.max_upload_mb:g} MB"
        )
    return resolved


def check_frame_size(path: Path, settings: AppSettings) -> None:
    """Refuse frames larger than `max_frame_pixels` before any decoding (decoding is what costs: see settings)."""
    from slt.video import probe_video

    info = probe_video(path, verify_count=False)  # reads the container header only
    if info.width * info.height > settings.max_frame_pixels:
        raise VideoTooLongError(
            f"{path.name} has {info.width}x{info.height} frames; this app accepts frames up to "
            f"{settings.max_frame_pixels / 1e6:.1f} megapixels (1920x1080). Downscale the clip first, for example "
            "`ffmpeg -i clip.mp4 -vf scale=-2:720 small.mp4`, and upload it again."
        )


def check_admin(token: str | None, settings: AppSettings) -> None:
    """Raise AccessDeniedError unless the training launcher is unlocked for this caller."""
    if not settings.launcher_locked:
        return
    if settings.admin_token is None:
        raise AccessDeniedError(
            "training is locked: this app is reachable from other machines (a public Space, --share or a --host "
            "other than 127.0.0.1) and no admin token is set; its owner can unlock it by setting SLT_ADMIN_TOKEN"
        )
    if not token or not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
        raise AccessDeniedError("training is locked: enter the admin token (SLT_ADMIN_TOKEN) to start or stop runs")


def is_admin(token: str | None, settings: AppSettings) -> bool:
    """Whether this caller may see training internals (logs, server paths): the launcher is open, or the token fits."""
    try:
        check_admin(token, settings)
    except AccessDeniedError:
        return False
    return True
