"""Both webcam modes through a real browser camera: chromium's fake capture device plays a synthetic long video
(a y4m file written here, a red marker in its top-left corner) into the app, driven by Playwright.

- Record-a-clip (Translate tab): the recorded clip keeps the marker on the left, i.e. it is not mirrored.
- Live captions: captions appear while the "camera" signs, in order, each with its latency, and keep appearing
  for a stream of more than LONG_STREAM_S seconds (chromium loops the 17-s file), in one session.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright

from slt.data.synth.long import generate_long_videos, read_long_manifest
from tests.helpers.app import app_settings, free_port, launched_app

CHROMIUM = "/usr/bin/chromium"
MARKER = (4, 4, 40, 40)  # x0, y0, x1, y1 of the red square drawn into every camera frame
# A manual probe once saw live captions stop after ~22 s of camera; the test streams well past that, and past
# the end of the camera file (chromium then plays it again from the start).
LONG_STREAM_S = 40.0
# The start time of the newest caption, in seconds of the session's clock ("MM:SS.ss–MM:SS.ss").
LAST_START_JS = """() => {
  const times = document.querySelectorAll('#slt-live-captions .slt-live-caption code');
  if (!times.length) return -1;
  const m = times[times.length - 1].textContent.match(/(\\d+):(\\d+\\.\\d+)/);
  return m ? parseInt(m[1]) * 60 + parseFloat(m[2]) : -1;
}"""


def write_y4m(video: str, target: Path) -> Path:
    """The video as a YUV4MPEG2 file (4:2:0, what chromium's fake camera reads), with the red marker drawn on."""
    capture = cv2.VideoCapture(video)
    with target.open("wb") as out:
        first = True
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            cv2.rectangle(frame, MARKER[:2], MARKER[2:], (0, 0, 255), -1)  # BGR red
            if first:
                height, width = frame.shape[:2]
                out.write(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode())
                first = False
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    capture.release()
    assert not first, video
    return target


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("camera")
    row = read_long_manifest(generate_long_videos(root, "studio", 1, seed=3, min_sentences=4, max_sentences=4))[0]
    return write_y4m(row["video_path"], root / "camera.y4m")


@pytest.fixture(scope="module")
def app(demo_bundle_dir, tmp_path_factory):
    with launched_app(app_settings(demo_bundle_dir, tmp_path_factory.mktemp("runs"), free_port())) as (url, state):
        yield url, state


@pytest.fixture(scope="module")
def page(app, camera_file):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_file}"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(app[0])
        expect(page.locator("#slt-model-status")).to_contain_text("ready", timeout=120_000)
        yield page
        browser.close()


def test_recorded_clip_is_not_mirrored(page, tmp_path):
    block = page.locator(".block", has=page.get_by_text("Signed clip", exact=True)).last
    block.get_by_role("button", name="Capture from camera").click()
    block.get_by_text("Click to Access Webcam").click()
    record = block.get_by_role("button", name="start recording")  # the same button reads "Record", then "Stop"
    expect(record).to_have_text("Record")
    record.click()
    expect(record).to_have_text("Stop")
    time.sleep(2.0)
    record.click()
    player = block.locator("video[src]").first  # the recorded clip, uploaded to the app
    expect(player).to_be_attached(timeout=60_000)
    source = player.get_attribute("src")
    body = page.request.get(source if source.startswith("http") else page.url.rstrip("/") + "/" + source.lstrip("/"))
    assert body.ok, source
    clip = tmp_path / "recorded.webm"
    clip.write_bytes(body.body())
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert frames, "the recorded clip has no decodable frames"
    frame = frames[len(frames) // 2].astype(np.float32)
    height, width = frame.shape[:2]
    redness = frame[..., 2] - frame[..., :2].mean(axis=2)  # BGR: red minus the other channels
    top = redness[: height // 6]
    left, right = top[:, : width // 6].mean(), top[:, -(width // 6):].mean()
    assert left > 60 and right < 20, (left, right)  # the marker stayed on the left: not mirrored


def test_live_captions_appear_in_order(page):
    page.get_by_text("Live captions (webcam)").click()
    camera = page.locator("#slt-live-camera")
    camera.get_by_text("Click to Access Webcam").click()
    camera.get_by_role("button", name="capture photo").click()  # Gradio's label for "Record" on a streaming image
    captions = page.locator("#slt-live-captions .slt-live-caption")
    expect(captions.nth(2)).to_be_attached(timeout=90_000)  # the fake camera signs a sentence every ~4 s
    # Keep streaming: a caption of a sentence that starts after LONG_STREAM_S seconds of camera must still come.
    page.wait_for_function(f"({LAST_START_JS})() >= {LONG_STREAM_S}", timeout=150_000, polling=1000)
    texts = [captions.nth(i).inner_text() for i in range(captions.count())]
    starts = [float(m.group(1)) * 60 + float(m.group(2)) for m in (re.match(r"(\d+):(\d+\.\d+)", t) for t in texts)]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), texts
    assert all(re.search(r"caption \d+\.\d s after the sentence", t) for t in texts), texts
    indices = [int(captions.nth(i).get_attribute("data-index")) for i in range(captions.count())]
    assert indices == list(range(len(indices)))  # one session all along (a restarted stream would start at 0)
    assert starts[-1] >= LONG_STREAM_S and len(starts) >= 6, texts
