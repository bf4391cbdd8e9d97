"""Errors a user can cause when handing files to the analysis tools.

Everything derives from :class:`AnalysisError` (a ``ValueError``) so the app and the CLI can show the
message instead of a traceback, without depending on the rest of SLT Studio.
"""

from __future__ import annotations


class AnalysisError(ValueError):
    """Base class of user-facing analysis errors."""


class PredictionsFileError(AnalysisError):
    """A predictions file is missing, empty, binary, or in a shape we cannot read."""


class FileEncodingError(PredictionsFileError):
    """A text file is not valid UTF-8."""


class MissingColumnError(PredictionsFileError):
    """A table lacks the reference or prediction column (or a configured column name)."""


class DuplicateIdError(PredictionsFileError):
    """A predictions file lists the same sample id more than once (it would be scored twice)."""


class LengthMismatchError(AnalysisError):
    """Parallel inputs (prediction/reference files, two systems, embeddings) differ in length."""


class AlignmentError(AnalysisError):
    """Two systems cannot be paired sample by sample (different ids or different references)."""


class RunDirectoryError(AnalysisError):
    """A run directory has no predictions (or not the requested epoch)."""


class EmbeddingError(AnalysisError):
    """Sentence embeddings are missing for some rows, ragged, or not numeric."""


class ManifestReadError(AnalysisError):
    """A training manifest cannot be read or lacks its ``translation`` column."""
