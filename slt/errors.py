"""Every error a user can cause, each with a message that says what went wrong and what to do.

All derive from :class:`SLTError`, so the CLI and the app can show them as messages instead of tracebacks.
"""

from __future__ import annotations


class SLTError(Exception):
    """Base class of user-facing errors."""


class VideoReadError(SLTError):
    """The file is missing, not a video, or cannot be decoded."""


class EmptyVideoError(VideoReadError):
    """The container opened but yielded zero frames."""


class VideoTooShortError(SLTError):
    """Fewer frames than preprocessing needs."""


class VideoTooLongError(SLTError):
    """Longer (in seconds) or larger (in bytes) than the configured limit."""


class NoSignerError(SLTError):
    """Too few sampled frames contained a face to locate the signer."""

    def __init__(self, faces_found: int, frames_sampled: int, min_fraction: float):
        self.faces_found = faces_found
        self.frames_sampled = frames_sampled
        self.min_fraction = min_fraction
        super().__init__(
            f"No signer found: a face was detected in {faces_found} of {frames_sampled} sampled frames "
            f"(need at least {min_fraction:.0%}). Make sure the signer's face is visible and lit, "
            "or ask for a centre crop instead (--center-crop-fallback)."
        )


class CheckpointError(SLTError):
    """A checkpoint is missing, unreadable, or does not match the architecture (keys or shapes)."""


class UnknownLanguageError(SLTError):
    """A target language code is not a FLORES-200 code the decoder knows."""


class ModelUnavailableError(SLTError):
    """A model file is not cached and cannot be downloaded (e.g. offline)."""


class SystemFileError(ModelUnavailableError):
    """A trained system's file (system.json) is missing, malformed, or names checkpoints that do not exist."""


class ManifestError(SLTError):
    """A dataset manifest is malformed or points at missing files."""


class TrainingError(SLTError):
    """A training run cannot continue (NaN/inf loss, bad config, ...)."""


class Cancelled(SLTError):
    """Work stopped because its caller asked (a cancel flag, or a `should_stop` callback returning True)."""


class TranslationCancelled(Cancelled):
    """The caller cancelled a translation (between two stages, or while a video was being decoded)."""


class UnknownAssetError(ModelUnavailableError):
    """A fairseq2 asset (model or tokenizer card) name is not registered."""


class InvalidArgumentError(SLTError):
    """An argument has a value the operation cannot use (shape, range, device/dtype combination)."""


class DecodingOptionsError(InvalidArgumentError):
    """A text decoding option is out of range or contradicts another option."""


class CorpusConfigError(SLTError):
    """Synthetic corpus settings are invalid (unknown domain or gloss, impossible sizes, output not empty)."""


class PreprocessConfigError(InvalidArgumentError, ValueError):
    """A video preprocessing setting is invalid (unknown detector, non-positive sizes, ...)."""


class ModelInputError(InvalidArgumentError, ValueError):
    """A tensor or argument given to a model has the wrong shape, dtype, device or values."""


class FeatureExtractionError(SLTError):
    """Feature extraction cannot start or continue (output folder from a different model/config, no usable rows)."""


class VideoWriteError(SLTError):
    """A video file (e.g. a cut dataset clip) cannot be written."""


class PathNotAllowedError(SLTError):
    """A path typed into the app lies outside the directories the app may read (runs, demo set, samples, uploads)."""


class AccessDeniedError(SLTError):
    """An action is locked (e.g. the training launcher on a public Space without the admin token)."""


class JobError(SLTError):
    """A training job cannot be started, stopped or resumed (limit reached, unknown job, not running, ...)."""


class ModelsNotReadyError(SLTError):
    """The app's models failed to load, so requests that need them cannot run."""


class DeviceError(InvalidArgumentError, ValueError):
    """A device or dtype cannot be used here (malformed name, CUDA without a GPU, half precision on the CPU)."""


# errno -> what the user can do about it (the OS's own text says what went wrong).
_OS_ERROR_ADVICE = {
    "EACCES": "check its permissions (the user running this must be allowed to read or write it) or use another path",
    "EPERM": "check its permissions or use another path",
    "ENOENT": "check the path: it does not exist",
    "ENOTDIR": "a part of this path is a file where a folder is expected: give a folder path or move that file away",
    "EEXIST": "a file is in the way where a folder is expected: give a folder path or move that file away",
    "EISDIR": "this is a folder where a file is expected: give a file path",
    "ENOSPC": "the disk is full: free some space (or write elsewhere) and run the command again",
    "EDQUOT": "the disk quota is used up: free some space (or write elsewhere) and run the command again",
    "EFBIG": "the file grew past the size this system allows: free space or lift the limit, then run again",
    "EROFS": "the file system is read-only: write somewhere else",
    "ENAMETOOLONG": "the path is too long: use a shorter one",
}


def os_error_message(error: OSError) -> str:
    """One line for an operating-system error: what failed, on which path, and what to do.

    Files the project writes are replaced atomically, so after such an error the earlier version of the file is
    still whole (a resumable command continues where it stopped).
    """
    import errno as errno_codes

    name = errno_codes.errorcode.get(error.errno or 0, "")
    what = error.strerror or str(error) or type(error).__name__
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    advice = _OS_ERROR_ADVICE.get(name, "check the path and try again")
    return f"{what}: {paths}; {advice}" if paths else f"{what}; {advice}"
