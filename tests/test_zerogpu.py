"""ZeroGPU: the wrapping decision from the environment, and the app's handlers running through the GPU entry point.

The real `spaces` package cannot run here: on a ZeroGPU Space its `spaces.GPU` asks Hugging Face's device API for
a GPU and runs the function in a forked worker process. `StandInSpaces` below keeps the one property that decides
whether a handler works there: the call's arguments and result cross a process boundary, pickled (and the
worker's changes to objects it was given do not come back). Its `GPU(duration=...)` has the real signature and,
like the real one, evaluates a callable duration on the call's arguments.
"""

from __future__ import annotations

import asyncio
import html
import pickle
import sys
import types

import pytest

from slt.ui import zerogpu
from tests.helpers.video import SAMPLES


class StandInSpaces(types.ModuleType):
    """`import spaces` on a ZeroGPU Space, minus the GPU: every call is pickled in and out, and recorded."""

    def __init__(self):
        super().__init__("spaces")
        self.calls: list[tuple[str, int]] = []  # (engine method, seconds asked for)

    def GPU(self, task=None, *, duration=None, size=None):  # the real name
        def decorate(fn):
            def gpu_call(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # into the worker process
                self.calls.append((args[1], seconds))
                return pickle.loads(pickle.dumps(fn(*args, **kwargs)))  # and the result back

            return gpu_call

        return decorate if task is None else decorate(task)


@pytest.fixture(scope="module")
def state(demo_bundle_dir, tmp_path_factory):
    from slt.ui.settings import AppSettings
    from slt.ui.state import AppState

    state = AppState(AppSettings(model_set="demo", device="cpu", runs_dir=tmp_path_factory.mktemp("runs"),
                                 demo_dir=demo_bundle_dir))
    state.loader.start()
    state.loader.wait(timeout=300)
    return state


@pytest.fixture
def zero_gpu(monkeypatch) -> StandInSpaces:
    """This process as a ZeroGPU Space: SPACES_ZERO_GPU set, `spaces` importable, and the GPU entry point wrapped
    as it is when slt.ui.zerogpu is imported there."""
    spaces = StandInSpaces()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    monkeypatch.setattr(zerogpu, "run_engine", zerogpu.gpu_entry(zerogpu._method_seconds)(zerogpu.run_engine))
    return spaces


@pytest.mark.parametrize("value, expected", [("true", True), ("True", True), ("1", True), ("t", True),
                                             ("", False), ("0", False), ("false", False), ("no", False),
                                             (" true", False)])
def test_zero_gpu_is_read_from_the_environment_as_spaces_reads_it(monkeypatch, value, expected):
    monkeypatch.setenv("SPACES_ZERO_GPU", value)
    assert zerogpu.on_zero_gpu() is expected


def test_off_zero_gpu_the_wrapper_is_a_no_op_and_spaces_is_never_imported(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def entry(x):
        return x + 1

    assert zerogpu.gpu_entry(30)(entry) is entry and not zerogpu.on_zero_gpu()
    assert "spaces" not in sys.modules
    engine = object()
    assert zerogpu.device_engine(engine, "any") is engine


def test_on_zero_gpu_the_wrapper_is_spaces_gpu(zero_gpu):
    def entry(key, method):
        return method

    wrapped = zerogpu.gpu_entry(zerogpu._method_seconds)(entry)
    assert wrapped is not entry and wrapped("k", "embed") == "embed"
    assert zero_gpu.calls == [("embed", zerogpu.ENGINE_METHOD_SECONDS["embed"])]


def test_run_engine_refuses_unknown_methods_and_keys(state):
    with pytest.raises(Exception, match="not an engine method"):
        zerogpu.run_engine(state.engine_key, "train")
    with pytest.raises(Exception, match="no engine registered"):
        zerogpu.run_engine("engine-none", "embed")


def test_translate_and_compare_handlers_run_through_the_gpu_entry_point(state, zero_gpu):
    """Translate and Compare (one clip) each make one GPU call, with picklable arguments and result, and give the
    same translations as the engine called directly."""
    from slt.ui.compare_tab import compare_on_clip
    from slt.ui.translate_tab import translate_clip

    engine = state.loader.wait()
    clip = SAMPLES / "instructional_1.webm"
    expected = engine.translate(clip, ["eng_Latn"], encoders=["zero-shot", "fine-tuned"],
                                preprocess=state.preprocess_config(engine))
    outputs = asyncio.run(translate_clip(state, str(clip), ["eng_Latn"], "fine-tuned", False, 5, 128, 0, "s1"))
    assert html.escape(expected.translations["fine-tuned"]["eng_Latn"]) in outputs[0]
    assert outputs[4]["translations"]["fine-tuned"]["eng_Latn"] == expected.translations["fine-tuned"]["eng_Latn"]
    assert zero_gpu.calls == [("translate_batch", zerogpu.ENGINE_METHOD_SECONDS["translate_batch"])]
    body, preview, timings = asyncio.run(compare_on_clip(state, str(clip), "zero-shot", "fine-tuned", "eng_Latn",
                                                         "s1"))
    for label in ("zero-shot", "fine-tuned"):
        assert html.escape(expected.translations[label]["eng_Latn"]) in body
    assert preview is not None and zero_gpu.calls[1][0] == "translate_batch" and len(zero_gpu.calls) == 2


def test_compare_on_split_runs_its_model_calls_on_the_gpu(state, zero_gpu, demo_bundle_dir):
    from slt.ui.compare_tab import compare_on_split
    from slt.ui.split_eval import SplitPredictor, evaluation_splits

    label = next(iter(evaluation_splits("demo", demo_bundle_dir)))
    table, wins, *_ = compare_on_split(state, SplitPredictor(), label, "zero-shot", "fine-tuned")
    assert set(table["metric"]) >= {"bleu", "chrf"} and "samples" in wins
    methods = {method for method, _ in zero_gpu.calls}
    assert methods == {"embed", "decode"}, methods


def test_live_session_keeps_its_state_in_the_app_and_runs_model_calls_on_the_gpu(state, zero_gpu, tmp_path):
    """The live handler itself is not a GPU call (its session could not be pickled to the worker and back); the
    session's SignHiera, encoder and decoder calls are, and the captions equal those of a plain session."""
    from slt.data.synth.long import generate_long_videos, read_long_manifest
    from slt.ui.live import live_finish, live_frame, new_session
    from slt.video.decode import iter_frames

    row = read_long_manifest(generate_long_videos(tmp_path, "studio", 1, seed=4, min_sentences=2,
                                                  max_sentences=2))[0]
    frames = [frame[:, :, ::-1].copy() for _, frame in iter_frames(row["video_path"])]  # BGR -> RGB
    session = new_session(state, ["eng_Latn"], None)
    assert isinstance(session.stream.engine, zerogpu.DeviceEngine)
    for index, frame in enumerate(frames):
        session.push_frame(frame, time_s=index / row["fps"])
    _, session_after = live_finish(session)
    assert session_after is None
    methods = {method for method, _ in zero_gpu.calls}
    assert methods == {"clip_features", "embed", "decode"}, methods
    on_gpu = [c.texts["eng_Latn"] for c in session.captions]
    assert len(on_gpu) == len(row["segments"])

    from slt.live import LiveCaptionSession

    engine = state.loader.wait()
    plain = LiveCaptionSession(engine, ["eng_Latn"], preprocess=state.preprocess_config(engine))
    for index, frame in enumerate(frames):
        plain.push_frame(frame, time_s=index / row["fps"])
    plain.finish()
    assert [c.texts["eng_Latn"] for c in plain.captions] == on_gpu
    # The frame handler works over the wrapped session as the app calls it.
    captions_html, live_session = live_frame(state, frames[0], None, ["eng_Latn"], None)
    assert isinstance(live_session.stream.engine, zerogpu.DeviceEngine)


def test_encoders_added_at_run_time_reach_the_worker(zero_gpu, demo_bundle_dir):
    """A trained system is added to the app's engine when Compare first runs it; a ZeroGPU worker forked earlier
    lacks it, so the call carries its checkpoints and the worker adds it to its own copy first."""
    from slt.engine import TranslationEngine
    from slt.registry import resolve_model_set

    # The worker's copy of the engine, forked before the system was added.
    worker_engine = TranslationEngine(resolve_model_set("demo"), device="cpu")
    key = zerogpu.register_engine(lambda: worker_engine)
    # The app's side: its own engine with the system added (not the process's shared engine, which other tests use).
    app_engine = TranslationEngine(resolve_model_set("demo"), device="cpu")
    app_engine.add_encoder("system:copy", app_engine.model_set.encoders["fine-tuned"])
    assert "system:copy" not in worker_engine.encoder_names
    clip = SAMPLES / "instructional_1.webm"
    added = zerogpu.encoder_sources(app_engine, ["fine-tuned", "system:copy"])
    result = zerogpu.run_engine(key, "translate_batch", [clip], ["eng_Latn"], encoders=["system:copy", "fine-tuned"],
                                added=added)[0]
    assert "system:copy" in worker_engine.encoder_names
    assert result.translations["system:copy"] == result.translations["fine-tuned"]
    assert zero_gpu.calls == [("translate_batch", zerogpu.ENGINE_METHOD_SECONDS["translate_batch"])]
