"""Hugging Face ZeroGPU: the app's model calls run through one GPU entry point, wrapped with `spaces.GPU` on a
ZeroGPU Space and a plain function call everywhere else.

On ZeroGPU hardware a Space holds no GPU between requests. A function decorated with `spaces.GPU` gets one for the
length of its call (at most `duration` seconds; shorter durations queue ahead): the `spaces` package runs it in a
worker process forked from the app, sending the arguments there and the result back pickled. So a GPU entry point
can take only plain values (paths, strings, numbers, arrays, tensors, dataclasses of them): not the app's state,
its engine, a visitor's live session, a progress callback or a cancel flag. That is why there is one entry point,
:func:`run_engine`, which names the engine by a key (:func:`register_engine`; the forked worker inherits the
registry, and the models the app loaded before launch) and the method to call. The app calls through it:

- Translate and Compare (one clip): `translate_batch` as one GPU call (decoding, SignHiera, encoder, decoder);
- Compare on an evaluation split and live captions: the visitor's state stays in the app, only the model calls
  (`clip_features`, `embed`, `decode`) cross to the GPU, through :class:`DeviceEngine`.

Off ZeroGPU, :func:`run_engine` is the plain function and also passes the progress callback and cancel flag.
The Space runtime sets `SPACES_ZERO_GPU`; only then is `spaces` (preinstalled there, not a dependency of this
project) imported, so local runs, tests and other hardware never import it.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

from slt.errors import InvalidArgumentError

F = TypeVar("F", bound=Callable)

# Seconds of GPU asked for per engine method (ZeroGPU stops a call at its duration; shorter calls queue ahead).
# translate_batch: one clip of at most the app's max_clip_seconds (decode, SignHiera, encoder, beam search);
# clip_features: one batch of SignHiera clips; embed/decode: one batch of sentences.
ENGINE_METHOD_SECONDS = {"translate_batch": 120, "clip_features": 30, "embed": 20, "decode": 30}


def on_zero_gpu() -> bool:
    """Whether this process runs on a ZeroGPU Space: SPACES_ZERO_GPU set to 1/t/true, read as `spaces` reads it."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu_entry(duration: int | Callable[..., int] = 60) -> Callable[[F], F]:
    """Decorator for a function that runs the models: `spaces.GPU(duration=...)` on ZeroGPU, else the function.
    `duration` is seconds, or a function of the call's arguments returning seconds (as `spaces.GPU` accepts)."""

    def wrap(fn: F) -> F:
        if not on_zero_gpu():
            return fn
        import spaces  # only on a ZeroGPU Space, where the runtime provides it

        return spaces.GPU(duration=duration)(fn)

    return wrap


_ENGINES: dict[str, Callable[[], Callable]] = {}  # key -> a (weak) reference to a function returning the engine
_KEYS = itertools.count()
_LOCK = threading.Lock()


def register_engine(get_engine: Callable) -> str:
    """Register a function that returns the loaded engine (e.g. an AppState's `engine`); returns the key that
    :func:`run_engine` takes. A bound method is held weakly: registering does not keep an app state alive."""
    reference = weakref.WeakMethod(get_engine) if hasattr(get_engine, "__self__") else (lambda: get_engine)
    with _LOCK:
        key = f"engine-{next(_KEYS)}"
        _ENGINES[key] = reference
    return key


def _method_seconds(key: str, method: str, *args, **kwargs) -> int:
    return ENGINE_METHOD_SECONDS.get(method, 60)


def encoder_sources(engine, labels) -> dict[str, tuple]:
    """{label: (encoder checkpoint, its own SignHiera or None)} of the engine's encoders `labels`, for
    :func:`run_engine`'s `added` (the model set's own encoders are already in every worker's copy: no-ops)."""
    model_set = engine.model_set
    return {label: (model_set.encoders[label], model_set.encoder_signhieras.get(label)) for label in labels
            if label in model_set.encoders}


@gpu_entry(duration=_method_seconds)
def run_engine(key: str, method: str, *args, added: dict[str, tuple] | None = None, **kwargs):
    """`engine.method(*args, **kwargs)` on the engine registered under `key`: the app's one GPU entry point (in
    ZeroGPU's worker process on a ZeroGPU Space, in the calling thread elsewhere).

    `added` ({label: (encoder checkpoint, SignHiera or None)}) names encoders the app added to its engine at run
    time: a ZeroGPU worker forked before they were added (workers are reused) adds them to its own copy first."""
    if method not in ENGINE_METHOD_SECONDS:
        raise InvalidArgumentError(f"not an engine method the app runs on the GPU: {method!r}")
    with _LOCK:
        reference = _ENGINES.get(key)
    get_engine = reference() if reference is not None else None
    if get_engine is None:
        raise InvalidArgumentError(f"no engine registered as {key!r}")
    engine = get_engine()
    for label, (encoder, signhiera) in (added or {}).items():
        model_set = engine.model_set
        if (model_set.encoders.get(label), model_set.encoder_signhieras.get(label)) != (encoder, signhiera):
            engine.add_encoder(label, encoder, signhiera)
    result = getattr(engine, method)(*args, **kwargs)
    # Tensors go back on the CPU: they cross a process boundary on ZeroGPU (and the engine moves inputs itself).
    return result.cpu() if hasattr(result, "cpu") else result


class DeviceEngine:
    """An engine whose model calls (`clip_features`, `embed`, `decode`) go through :func:`run_engine`, for work
    that keeps its state in the app (a live caption session, an evaluation split); everything else (model set,
    languages, settings) is read from the engine itself."""

    def __init__(self, engine, key: str):
        self._engine = engine
        self._key = key

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    @property
    def device(self):
        """Where work done in this process runs (a live session's face detection): the CPU, since the app's process
        holds no GPU on ZeroGPU; the model calls run on the engine's own device in ZeroGPU's worker."""
        import torch

        return torch.device("cpu")

    def clip_features(self, *args, **kwargs):
        return run_engine(self._key, "clip_features", *args, **kwargs)

    def embed(self, *args, **kwargs):
        return run_engine(self._key, "embed", *args, **kwargs)

    def decode(self, *args, **kwargs):
        return run_engine(self._key, "decode", *args, **kwargs)


def device_engine(engine, key: str):
    """`engine` itself off ZeroGPU; on ZeroGPU a :class:`DeviceEngine` that runs its model calls on the GPU."""
    return DeviceEngine(engine, key) if on_zero_gpu() else engine
