"""Downloads over real HTTP (a local server on 127.0.0.1): resume, atomic rename, records, offline errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import pytest

from slt.download import RemoteFile, ensure_file, read_records
from slt.errors import ModelUnavailableError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /model.pt with Range support; /cut.pt stops half-way once (a dropped connection)."""

    cut_once = True
    requests: list[str] = []

    def do_GET(self):
        RangeHandler.requests.append(self.headers.get("Range") or "")
        if self.path not in ("/model.pt", "/cut.pt"):
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/cut.pt" and RangeHandler.cut_once:
            RangeHandler.cut_once = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the client sees a short read
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.delenv("SLT_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    RangeHandler.cut_once = True
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_is_atomic_and_recorded(server, tmp_path):
    remote = RemoteFile("model.pt", f"{server}/model.pt", "test model")
    seen = []
    path = ensure_file(remote, tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD
    assert not list(tmp_path.glob("*.part"))
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    record = read_records(tmp_path)["model.pt"]
    assert record == {"url": remote.url, "size": len(PAYLOAD), "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    # a second call uses the cache: no new request
    before = len(RangeHandler.requests)
    assert ensure_file(remote, tmp_path) == path
    assert len(RangeHandler.requests) == before


def test_cut_download_leaves_only_part_and_resumes_with_range(server, tmp_path):
    remote = RemoteFile("cut.pt", f"{server}/cut.pt")
    with pytest.raises(ModelUnavailableError, match="cut.pt"):
        ensure_file(remote, tmp_path)
    assert not (tmp_path / "cut.pt").exists(), "a half download must never appear under the final name"
    part = tmp_path / "cut.pt.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    path = ensure_file(remote, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert RangeHandler.requests[-1] == f"bytes={len(PAYLOAD) // 2}-", "the second attempt must resume, not restart"


def test_sha_mismatch_is_rejected_and_removed(server, tmp_path):
    remote = RemoteFile("model.pt", f"{server}/model.pt", sha256="0" * 64)
    with pytest.raises(ModelUnavailableError, match="sha256"):
        ensure_file(remote, tmp_path)
    assert not list(tmp_path.iterdir()) or not (tmp_path / "model.pt").exists()


def test_offline_error_names_file_url_and_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("SLT_OFFLINE", "1")
    remote = RemoteFile("dm_70h_ub_sonar_encoder.pth", "https://example.invalid/dm_70h_ub_sonar_encoder.pth", "encoder")
    with pytest.raises(ModelUnavailableError) as error:
        ensure_file(remote, tmp_path)
    message = str(error.value)
    assert "dm_70h_ub_sonar_encoder.pth" in message and remote.url in message and str(tmp_path) in message


def test_unreachable_host_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SLT_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    remote = RemoteFile("x.pt", "http://127.0.0.1:9/x.pt")  # port 9 (discard): connection refused
    with pytest.raises(ModelUnavailableError, match="could not be downloaded"):
        ensure_file(remote, tmp_path, timeout_s=2)


def test_models_command_lists_official_files_with_urls(isolated_cache, tmp_path, monkeypatch):
    from slt.__main__ import main

    monkeypatch.setenv("SLT_DEMO_DIR", str(tmp_path / "no-demo"))
    (isolated_cache).mkdir()
    (isolated_cache / "dm_70h_ub_signhiera.pth").write_bytes(b"x" * 10)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models", "--json"]) == 0
    listing = json.loads(out.getvalue())
    by_file = {row["file"]: row for row in listing["files"]}
    assert by_file["dm_70h_ub_signhiera.pth"]["cached"] is True
    assert by_file["dm_70h_ub_signhiera.pth"]["size_bytes"] == 10
    assert by_file["dm_70h_ub_sonar_encoder.pth"]["cached"] is False
    assert by_file["dm_70h_ub_sonar_encoder.pth"]["url"].endswith("/SONAR/asl/dm_70h_ub_sonar_encoder.pth")
    assert by_file["demo.json"]["cached"] is False
    # The official text decoder and tokenizer: where the transformers backend keeps them (fairseq2 has its own).
    decoder = by_file["sonar_text_decoder.pt"]
    assert decoder["role"] == "decoder" and decoder["cached"] is False
    assert decoder["url"] == "https://dl.fbaipublicfiles.com/SONAR/sonar_text_decoder.pt"
    assert decoder["path"] == str(isolated_cache / "sonar_text" / "sonar_text_decoder.pt")
    assert by_file["sentencepiece.source.256000.model"]["role"] == "tokenizer"
    (isolated_cache / "sonar_text").mkdir()
    (isolated_cache / "sonar_text" / "sonar_text_decoder.pt").write_bytes(b"x" * 7)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models"]) == 0
    line = next(line for line in out.getvalue().splitlines() if "sonar_text_decoder.pt" in line)
    assert line.split()[:3] == ["official", "decoder", "cached"]


def test_extract_features_names_the_official_signhiera_file_when_offline(isolated_cache, tmp_path):
    """`--signhiera official` resolves through the registry; offline it says which file to fetch and from where."""
    import subprocess
    import sys

    manifest = tmp_path / "m.tsv"
    manifest.write_text("id\tvideo_path\tn_frames\ttranslation\n")
    out = subprocess.run([sys.executable, "-m", "slt", "extract-features", "--manifest", str(manifest), "--out",
                          str(tmp_path / "f"), "--signhiera", "official"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "dm_70h_ub_signhiera.pth" in out.stderr and "/SONAR/asl/dm_70h_ub_signhiera.pth" in out.stderr
    assert str(isolated_cache) in out.stderr and "Traceback" not in out.stderr
