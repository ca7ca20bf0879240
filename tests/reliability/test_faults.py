"""Faults: a Qdrant that hangs, disappears and comes back as another peer; a damaged embedded
store; a corrupted, truncated or interrupted download; a second process on the embedded store.
Each test names the protection it checks; `python -m tests.reliability.mutations` takes each
protection out of a copy of the code and shows that its test then fails.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from movierec.store import server as server_store
from movierec.store.embedded import CURRENT, VERSIONS
from tests.reliability.conftest import Listener, run_ingest
from tests.service_helpers import TUTORIAL_BODY, running

QDRANT_TIMEOUT = 2


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def wait_out_fail_fast() -> None:
    time.sleep(server_store.FAIL_FAST_SECONDS + 0.2)


def test_hung_then_gone_then_different_qdrant_gives_bounded_503s_and_reconnects(tmp_path):
    """Protections: QDRANT_TIMEOUT on every call; fail-fast after a failure (no pile-up behind the
    reader's lock); a fresh connection per attempt (no restart needed when the peer changes)."""
    hung = Listener()
    url = hung.url
    env = {"QDRANT_URL": url, "QDRANT_TIMEOUT": str(QDRANT_TIMEOUT), "QDRANT_API_KEY": "k"}
    with running(env, tmp_path / "serve.log") as service:
        pid = service.proc.pid
        c = service.client
        # 1. Qdrant accepts connections and never answers: 503 once the timeout is spent.
        r, took = timed(c.get, "/readyz")
        assert r.status_code == 503
        assert r.json()["detail"] == f"cannot reach Qdrant at {url}: timed out"
        assert QDRANT_TIMEOUT - 0.2 < took < QDRANT_TIMEOUT + 1.5
        wait_out_fail_fast()

        # 60 requests at once: none waits for the others' timeouts (no queue behind one lock).
        def recommend(_):
            return timed(httpx.post, f"{service.url}/recommendations", json=TUTORIAL_BODY,
                         timeout=60)

        with concurrent.futures.ThreadPoolExecutor(60) as pool:
            answers = list(pool.map(recommend, range(60)))
        assert {(r.status_code, r.json()["error"], r.headers["retry-after"])
                for r, _ in answers} == {(503, f"cannot reach Qdrant at {url}: timed out", "5")}
        assert max(took for _, took in answers) < 2 * QDRANT_TIMEOUT + 2
        # Liveness never depends on Qdrant.
        r, took = timed(c.get, "/healthz")
        assert r.status_code == 200 and took < 0.5

        # 2. Qdrant is gone (connection refused): 503 at once, with the reason.
        port = hung.port
        hung.close()
        wait_out_fail_fast()
        r, took = timed(c.post, "/recommendations", json=TUTORIAL_BODY)
        assert (r.status_code, r.json()) == (
            503, {"error": f"cannot reach Qdrant at {url}: [Errno 111] Connection refused"})
        assert took < 1.0

        # 3. Something answers on that port again (an HTTP server refusing the key, as Qdrant
        # does for a wrong one): the same process reconnects and reports the new state.
        refusing = RefusingHttp(port)
        try:
            wait_out_fail_fast()
            r, took = timed(c.get, "/readyz")
            assert r.status_code == 503
            assert r.json()["detail"] == (
                f"Qdrant at {url} refused the API key (HTTP 403); check QDRANT_API_KEY")
            assert took < 1.0
            assert refusing.paths and all(p == "/aliases" for p in refusing.paths[:1])
        finally:
            refusing.close()
        assert service.proc.pid == pid and service.proc.poll() is None  # never restarted


class RefusingHttp:
    """A real HTTP server on loopback that answers every request 403 (and records the paths)."""

    def __init__(self, port: int):
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _refuse(self):
                paths.append(self.path)
                body = b'{"status": {"error": "Forbidden"}}'
                self.send_response(403)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _refuse

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_embedded_store_switches_back_to_serving_when_data_appears(tmp_path, small_dir):
    """Recovery without restart: 503 while there is no data, 200 within ~1 s of an ingest."""
    env = {"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}
    with running(env, tmp_path / "serve.log") as service:
        r = service.client.post("/recommendations", json={"ratings": {"1": 1}})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json() == {"error": f"no data in the embedded store at {tmp_path / 'q'}: run "
                                     "`movierec ingest` first"}
        done = run_ingest(env, small_dir)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 5
        while service.client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert service.client.post("/recommendations",
                                   json={"ratings": {"1": 1}}).status_code == 200


def test_a_damaged_current_pointer_is_503_and_an_ingest_repairs_it(tmp_path, small_dir):
    env = {"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}
    assert run_ingest(env, small_dir).returncode == 0
    with running(env, tmp_path / "serve.log") as service:
        (tmp_path / "q" / CURRENT).write_text('{"vers')
        time.sleep(1.2)
        r = service.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["detail"] == (f"{tmp_path / 'q' / CURRENT} is damaged; run `movierec "
                                      "ingest` again")
        done = run_ingest(env, small_dir)
        assert done.returncode == 0, done.stderr
        time.sleep(1.2)
        assert service.client.get("/readyz").status_code == 200


# --- downloads -----------------------------------------------------------------------------

def zip_of(folder: Path, inside: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{inside}/{f.name}")
    return buf.getvalue()


class Mirror:
    """A loopback HTTP mirror serving one archive: whole, corrupted, truncated, or cut mid-way
    (announcing the full Content-Length, then closing the connection)."""

    def __init__(self, data: bytes):
        self.data = data
        self.mode = "whole"
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = mirror.data
                if mirror.mode == "corrupted":
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                elif mirror.mode == "truncated":
                    body = body[: len(body) // 2]
                self.send_response(200)
                self.send_header("content-length", str(len(mirror.data) if mirror.mode == "cut"
                                                       else len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mirror.mode == "cut" else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ml-1m.zip"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served_small(tmp_path, small_dir):
    """A live version in an embedded store, and its state to compare against."""
    env = {"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}
    assert run_ingest(env, small_dir).returncode == 0
    return env, tmp_path / "q"


def store_state(root: Path) -> tuple[str, list[str]]:
    return (root / CURRENT).read_text(), sorted(p.name for p in (root / VERSIONS).iterdir())


@pytest.mark.parametrize("mode", ["corrupted", "truncated", "cut"])
def test_a_bad_download_is_refused_and_writes_nothing(tmp_path, small_dir, served_small, mode):
    """Protection: the checksum check before anything is unpacked or written; the .part file."""
    env, root = served_small
    before = store_state(root)
    mirror = Mirror(zip_of(small_dir, "ml-1m"))
    cache = tmp_path / "cache"
    try:
        mirror.mode = mode
        done = run_ingest({**env, "MOVIELENS_URL": mirror.url, "MOVIELENS_CACHE": str(cache),
                       "MOVIELENS_MD5": hashlib.md5(mirror.data).hexdigest()},
                      None, "--dataset", "ml-1m")
    finally:
        mirror.close()
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr
    if mode != "cut":
        assert lines[0].startswith(f"error: {mirror.url}: checksum mismatch (md5 ")
        assert lines[0].endswith("the download is corrupted or truncated, nothing was written")
    assert list(cache.iterdir()) == []  # no archive, no .part file, no unpacked folder
    assert store_state(root) == before


def test_a_download_cut_mid_way_says_so(tmp_path, small_dir):
    mirror = Mirror(zip_of(small_dir, "ml-1m"))
    mirror.mode = "cut"
    try:
        done = run_ingest({"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": "",
                       "MOVIELENS_URL": mirror.url, "MOVIELENS_CACHE": str(tmp_path / "c"),
                       "MOVIELENS_MD5": hashlib.md5(mirror.data).hexdigest()},
                      None, "--dataset", "ml-1m")
    finally:
        mirror.close()
    assert done.stderr.startswith(f"error: cannot download {mirror.url}")


# --- a second process on the embedded store ------------------------------------------------

@pytest.mark.ml1m
def test_a_second_server_on_a_served_embedded_store_is_refused_and_harms_nothing(
    served, ml1m_store, tmp_path
):
    """Protection: the per-version flock (qdrant-edge allows one process per shard)."""
    before = served.client.post("/recommendations", json=TUTORIAL_BODY).json()
    second = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "serve", "--port", "0"],
        env={**os.environ, "QDRANT_PATH": str(ml1m_store), "QDRANT_URL": ""},
        capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: the embedded store {ml1m_store} is in use by another process; "
                      "stop it first, or point QDRANT_URL at a Qdrant server to share data "
                      "between processes"], second.stderr
    assert "Traceback" not in second.stderr
    assert served.client.post("/recommendations", json=TUTORIAL_BODY).json() == before
    assert served.client.get("/readyz").json()["users"] == 6040
