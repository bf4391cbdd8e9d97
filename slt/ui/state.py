"""Process-wide app state: the settings, the one TranslationEngine (loaded in the background), cancel flags, jobs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from slt.download import RemoteFile
from slt.errors import ModelsNotReadyError, SLTError
from slt.registry import build_demo_set, demo_set_built, pick_model_set, resolve_model_set
from slt.ui.settings import AppSettings
from slt.ui.zerogpu import register_engine

log = logging.getLogger(__name__)
INTERNAL = "an internal error (see the server log)"


@dataclass
class LoadStatus:
    """What the model loader is doing, for the status line."""

    phase: str  # starting | resolving | building | downloading | loading | ready | failed
    message: str
    fraction: float = 0.0
    since: float = 0.0

    @property
    def done(self) -> bool:
        return self.phase in ("ready", "failed")


class ModelLoader:
    """Resolves the model set, downloads or builds its files, and loads the engine once, in a background thread.

    Requests call :meth:`wait`, which blocks (reporting the loader's progress) until the engine is ready.
    """

    def __init__(self, settings: AppSettings):
        self.settings = settings
        self._status = LoadStatus("starting", "starting the model loader", 0.0, time.time())
        self._ready = threading.Event()
        self._engine = None
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> ModelLoader:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slt-model-loader", daemon=True)
                self._thread.start()
        return self

    @property
    def status(self) -> LoadStatus:
        return self._status

    def _set(self, phase: str, message: str, fraction: float = 0.0) -> None:
        self._status = LoadStatus(phase, message, fraction, time.time())
        log.info("models: %s (%s)", message, phase)

    def _run(self) -> None:
        from slt.engine import TranslationEngine

        try:
            name = self.settings.model_set
            self._set("resolving", f"finding model set '{name}'", 0.02)
            chosen = pick_model_set(name)
            if chosen == "demo" and not demo_set_built():
                self._set("building", "building the offline demo model set (first start only; a few minutes on a CPU)",
                          0.05)
                build_demo_set()
            model_set = resolve_model_set(chosen)
            files = list(model_set.files().items())
            for index, (role, source) in enumerate(files):
                if isinstance(source, RemoteFile):
                    model_set.resolve_file(source, progress=self._download_progress(role, index, len(files)))
            self._set("loading", f"loading the '{model_set.name}' models into memory", 0.6)
            engine = TranslationEngine.shared(model_set, device=self.settings.device,
                                                decoder_backend=self.settings.decoder_backend)
            engine.load()
            self._engine = engine
            self._set("ready", f"model set '{model_set.name}' ready on {engine.device} "
                               f"(encoders: {', '.join(engine.encoder_names)})", 1.0)
        except Exception as error:  # any failure must reach the user instead of killing a thread silently
            self._error = error
            from slt.ui.common import redact_paths

            # The status line is shown to every visitor: no server paths, no class names (the log has them).
            reason = redact_paths(str(error)) if isinstance(error, SLTError) else INTERNAL
            self._set("failed", f"models failed to load: {reason}", 1.0)
            log.exception("model loading failed")
        finally:
            self._ready.set()

    def _download_progress(self, role: str, index: int, count: int) -> Callable[[int, int | None], None]:
        def report(done: int, total: int | None) -> None:
            share = done / total if total else 0.0
            size = f" of {total / 1e6:,.0f} MB" if total else ""
            self._set("downloading", f"downloading {role} ({index + 1}/{count}): {done / 1e6:,.0f} MB{size}",
                      0.1 + 0.5 * (index + share) / count)

        return report

    def wait(self, timeout: float | None = None, progress: Callable[[LoadStatus], None] | None = None):
        """The loaded engine; blocks while loading, calling `progress` with the loader's status every second."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.wait(1.0):
            if progress:
                progress(self._status)
            if deadline is not None and time.monotonic() > deadline:
                raise ModelsNotReadyError(f"models are still loading ({self._status.message}); try again shortly")
        if self._error is not None:
            message = str(self._error) if isinstance(self._error, SLTError) else INTERNAL
            raise ModelsNotReadyError(f"the models could not be loaded: {message}")
        return self._engine


class AppState:
    """What every tab shares: settings, the model loader/engine, per-session cancel flags, the job manager."""

    def __init__(self, settings: AppSettings):
        from slt.ui.jobs import JobManager

        self.settings = settings
        self.loader = ModelLoader(settings)
        self.jobs = JobManager(settings.runs_dir, max_running=settings.max_train_jobs)
        self._cancel: dict[str, threading.Event] = {}
        self._cancel_lock = threading.Lock()
        # The name the GPU entry point (slt.ui.zerogpu.run_engine) knows this state's engine by.
        self.engine_key = register_engine(self.engine)

    def engine(self, progress: Callable[[LoadStatus], None] | None = None):
        return self.loader.wait(progress=progress)

    def cancel_flag(self, session: str) -> threading.Event:
        """A fresh cancel flag for a new request of this browser session."""
        with self._cancel_lock:
            flag = self._cancel[session] = threading.Event()
            return flag

    def release_flag(self, session: str, flag: threading.Event) -> None:
        """The request ended without being cancelled: a later Cancel click has nothing to stop."""
        with self._cancel_lock:
            if self._cancel.get(session) is flag and not flag.is_set():
                del self._cancel[session]

    def cancel(self, session: str) -> bool:
        """Ask the session's running (or just cancelled) translation to stop; False when there is none."""
        with self._cancel_lock:
            flag = self._cancel.get(session)
        if flag is None:
            return False
        flag.set()
        return True

    def preprocess_config(self, engine):
        """The engine's preprocessing with the app's duration and size limits."""
        from dataclasses import replace

        return replace(engine.preprocess_config, max_duration_s=self.settings.max_clip_seconds,
                       max_bytes=self.settings.max_upload_bytes)
