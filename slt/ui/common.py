"""Helpers every tab uses: user errors as Gradio messages, small HTML/markdown formatting, engine progress."""

from __future__ import annotations

import asyncio
import functools
import html
import inspect
import logging
import re
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

import gradio as gr

from analysis.errors import AnalysisError
from slt.errors import Cancelled, NoSignerError, SLTError

log = logging.getLogger(__name__)
T = TypeVar("T")
USER_ERRORS = (SLTError, AnalysisError)  # errors whose message is meant for the user

# An absolute POSIX path (at least one component, not inside a word, a URL or a relative path).
_ABSOLUTE_PATH = re.compile(r"(?<![\w/.~-])/(?:[^\s/'\"<>():,;`]+/)*[^\s/'\"<>():,;`]+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def redact_paths(message: str) -> str:
    """A message for anonymous visitors: absolute server paths become their last component (the file or run name),
    so uploads' hash folders, the runs directory and the install location stay private."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(0).rstrip("/").rsplit("/", 1)[-1], message)


def public_message(error: BaseException) -> str:
    """What a visitor is told about a user error: its message, without server paths or Python class names.
    Advice that names a command-line flag is replaced by the app's own control."""
    if isinstance(error, NoSignerError):
        return (f"No signer found: a face was detected in {error.faces_found} of {error.frames_sampled} sampled "
                f"frames (need at least {error.min_fraction:.0%}). Make sure the signer's face is visible and lit, "
                "or tick the app's “Use a centre crop when no signer is found” box (under “Preprocessing and "
                "decoding”) and translate again.")
    return redact_paths(str(error)) or "the request could not be completed"


def markdown_text(text: object) -> str:
    """User data (predictions, references, file names) for a gr.Markdown: shown as text, never as HTML or markup."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def user_errors(fn: Callable) -> Callable:
    """Show user-caused errors as a Gradio error message (in the UI and to API clients), never a bare traceback.

    The message never holds server paths or class names; an unexpected error is logged whole and the visitor gets
    a reference to find it in the server log."""

    def shown(error: Exception) -> gr.Error:
        if isinstance(error, USER_ERRORS):
            # Escaped: the message is rendered as HTML, and texts may hold '<'.
            return gr.Error(html.escape(public_message(error)), duration=None, print_exception=False)
        reference = uuid.uuid4().hex[:8]  # a bug: log it whole, tell the user how to find it
        log.exception("unexpected error in %s (reference %s)", fn.__name__, reference)
        return gr.Error(f"Internal error while handling this request (reference {reference}); the server log has "
                        "the details.", duration=None, print_exception=False)

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise shown(error) from error

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise shown(error) from error

    return wrapper


async def run_cancellable(work: Callable[[], T], cancel: threading.Event) -> T:
    """Run blocking `work` in a worker thread; when Gradio cancels the request (the Cancel button's `cancels=`,
    a client's `job.cancel()`), set `cancel` so the work stops at its next check instead of running on unseen,
    and raise :class:`~slt.errors.Cancelled` here, like work stopped by its flag, so the handler returns its
    "Cancelled" outputs either way.

    A sync handler cannot do this: Gradio abandons its thread on cancel and the thread keeps burning CPU. The
    request's cancellation is absorbed rather than passed on: a Cancel click both sets the flag (the button's own
    handler) and cancels the task, and when the task ended cancelled while Gradio was finishing the event, the
    browser showed a red "Error" on every output (about one run in three of the cancel browser test).
    """
    def logged() -> T:
        try:
            return work()
        except Cancelled:
            log.info("cancelled work stopped in its thread")
            raise

    try:
        return await asyncio.to_thread(logged)  # (copies the context: gr.Progress keeps working in the thread)
    except asyncio.CancelledError:
        cancel.set()
        log.info("request cancelled: asked the worker thread to stop")
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        raise Cancelled("the request was cancelled") from None


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
.slt-not-shared { color: #92400e; background: #fef3c7; padding: 0.4em 0.6em; border-radius: 6px; margin-top: 0.5em; }
"""
