"""Filesystem-safe file names for clip ids (ids themselves are kept unchanged in manifests)."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_LEN = 120  # well under common 255-byte name limits, leaving room for suffixes and temp-file prefixes


def safe_id(clip_id: str) -> str:
    """Map an id to a file-name stem that is safe on every filesystem and unique per id.

    Safe ids are returned unchanged; others have unsafe characters replaced and a short hash of the original
    appended, so two ids that differ only in unsafe characters (``a/b`` vs ``a:b``) never share a file.
    """
    cleaned = _UNSAFE.sub("_", clip_id).lstrip(".")
    if cleaned == clip_id and 0 < len(clip_id) <= _MAX_LEN:
        return clip_id
    digest = hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:10]
    return f"{cleaned[:_MAX_LEN]}-{digest}" if cleaned else digest
