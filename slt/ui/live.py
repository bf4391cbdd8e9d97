"""Live captions in the Translate tab: the webcam streams frames, captions appear as each sentence ends.

Gradio's streaming image input (`gr.Image(sources=["webcam"], streaming=True)` with `.stream`) sends the
browser's camera frames to a handler every `STREAM_EVERY` seconds over the app's existing queue; that is all live
captions need (frames in, text out, ~10 frames per second is plenty for a 12.5-samples-per-second model that
repeats a frame when one is late), so fastrtc's WebRTC transport (lower latency for audio/video *out*, an extra
dependency and a TURN server on many networks) would add nothing here.

Each visitor's frames go to their own :class:`slt.live.LiveCaptionSession`, kept in a `gr.State` (one per
browser session), over the app's one shared engine: several visitors caption at once, and their model calls take
turns on the engine's lock. Frame times are the server's arrival times, so the latency shown (end of a sentence to
its caption) is what the visitor sees, minus the network.
"""

from __future__ import annotations

import html
import time

import gradio as gr

from slt.ui import zerogpu
from slt.ui.common import user_errors
from slt.ui.state import AppState

STREAM_EVERY = 0.1  # seconds between two frames sent by the browser
STREAM_LIMIT_S = 600  # one streaming request lasts at most this long (the browser then restarts it)
IDLE_HTML = "<em>Start the camera: captions appear here as each sentence ends.</em>"


def captions_html(captions) -> str:
    """The captions so far, newest last, each with its times and latency; escaped."""
    if not captions:
        return IDLE_HTML
    rows = []
    for caption in captions:
        latency = "" if caption.latency_s is None else f" · caption {caption.latency_s:.1f} s after the sentence"
        texts = " · ".join(f"<span class='slt-text'>{html.escape(text)}</span>" for text in caption.texts.values())
        rows.append(f"<div class='slt-live-caption' data-index='{caption.index}'>"
                    f"<code>{_clock(caption.start_s)}–{_clock(caption.end_s)}</code> {texts}"
                    f"<small class='slt-latency'>{latency}</small></div>")
    return "\n".join(rows)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{secs:05.2f}"


def new_session(state: AppState, languages, encoder):
    from slt.live import LiveCaptionSession

    engine = state.engine()
    # The session (frames, crops, the open sentence) stays in the app; on ZeroGPU only its model calls get the GPU
    # (a frame handler holding the session could not cross to ZeroGPU's worker process: see slt.ui.zerogpu).
    return LiveCaptionSession(zerogpu.device_engine(engine, state.engine_key), list(languages or ["eng_Latn"]),
                              encoder or None, preprocess=state.preprocess_config(engine))


def live_frame(state: AppState, frame, session, languages, encoder) -> tuple[str, object]:
    """One webcam frame (RGB numpy) into this visitor's session; returns (captions HTML, session)."""
    if frame is None:
        return gr.update(), session
    if session is None:
        session = new_session(state, languages, encoder)
    session.push_frame(frame, wall_s=time.monotonic())
    return captions_html(session.captions), session


def live_finish(session) -> tuple[str, None]:
    """The visitor stopped: caption the sentence still open, then forget the session (the next frame starts anew)."""
    if session is None:
        return gr.update(), None
    session.finish()
    return captions_html(session.captions), None


def build(state: AppState, languages: gr.components.Component, encoder: gr.components.Component) -> None:
    """The Live panel (inside the Translate tab's layout); uses the tab's language and encoder choices."""
    with gr.Accordion("Live captions (webcam)", open=False):
        with gr.Row():
            with gr.Column(scale=1):
                camera = gr.Image(label="Camera", sources=["webcam"], streaming=True, type="numpy",
                                  webcam_options=gr.WebcamOptions(mirror=False), elem_id="slt-live-camera")
                finish = gr.Button("Finish sentence and reset", elem_id="slt-live-finish")
            with gr.Column(scale=1):
                captions = gr.HTML(value=IDLE_HTML, elem_id="slt-live-captions")
        session = gr.State(None)

    @user_errors
    def on_frame(frame, current, languages_chosen, encoder_name):
        return live_frame(state, frame, current, languages_chosen, encoder_name)

    camera.stream(on_frame, [camera, session, languages, encoder], [captions, session],
                  stream_every=STREAM_EVERY, time_limit=STREAM_LIMIT_S, concurrency_limit=8, concurrency_id="live",
                  show_progress="hidden", api_visibility="private")
    finish.click(live_finish, [session], [captions, session], api_visibility="private", show_progress="hidden")
