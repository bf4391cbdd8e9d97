"""Instrumenting real models in tests (the real methods still run)."""

from __future__ import annotations


def count_clip_passes(signhiera) -> list[int]:
    """Count the clips a SignHiera really processes: returns a one-item list the patched method adds to."""
    calls, real = [0], signhiera.extract_features

    def counted(clips, *args, **kwargs):
        calls[0] += clips.shape[0]
        return real(clips, *args, **kwargs)

    signhiera.extract_features = counted
    return calls
