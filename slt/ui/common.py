"""Helpers every tab uses: user errors as Gradio messages, small HTML/markdown formatting, engine progress."""

from __future__ import annotations

import functools
import html
import logging
from typing import Callable

import gradio as gr

from analysis.errors import AnalysisError
from slt.errors import SLTError

log = logging.getLogger(__name__)
USER_ERRORS = (SLTError, AnalysisError)  # errors whose message is meant for the user


def user_errors(fn: Callable) -> Callable:
    """Show user-caused errors as a Gradio error message (in the UI and to API clients), never a bare traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as error:
            # Escaped: the message is rendered as HTML, and paths or texts may hold '<'.
            raise gr.Error(html.escape(f"{type(error).__name__}: {error}"), duration=None, print_exception=False) from error
        except Exception as error:  # a bug: log it whole, tell the user what failed
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Internal error in {fn.__name__}: {error!r}", duration=None) from error

    return wrapper


def engine_progress(progress: gr.Progress) -> Callable:
    """Adapt Gradio's progress bar to the model loader's status (shown while models load or download)."""

    def report(status) -> None:
        progress(status.fraction, desc=f"Models: {status.message}")

    return report


def diff_html(a: str, b: str) -> str:
    """Word-level diff of two translations: removed words struck through in red, added ones in green."""
    from analysis import word_diff

    parts = []
    for op, text in word_diff(a, b):
        text = html.escape(text)
        if op == "equal":
            parts.append(f"<span>{text}</span>")
        elif op == "delete":
            parts.append(f"<del class='slt-del'>{text}</del>")
        else:
            parts.append(f"<ins class='slt-ins'>{text}</ins>")
    return " ".join(parts) or "<em>(both empty)</em>"


def timings_rows(timings: dict[str, float]) -> list[list]:
    """Per-stage timings as table rows (stage, seconds)."""
    return [[stage, round(float(seconds), 3)] for stage, seconds in timings.items()]


CSS = """
.slt-del { color: #b91c1c; text-decoration: line-through; background: #fee2e2; }
.slt-ins { color: #166534; text-decoration: none; background: #dcfce7; }
.slt-translation { font-size: 1.25em; }
"""
