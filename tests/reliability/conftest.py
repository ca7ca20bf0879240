"""Shared pieces of the reliability suite: a served ml-1m store, a small synthetic dataset, raw
sockets for requests no well-behaved client would send, and loopback listeners standing in for a
Qdrant that hangs or is gone (they speak no Qdrant API: they only accept, hang or refuse).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from movierec import ingest, synthetic
from movierec.store import open_writer
from tests.conftest import settings_for
from tests.service_helpers import Service, start


@pytest.fixture(scope="package")
def ml1m_store(tmp_path_factory, ml1m_prepared) -> Path:
    """ml-1m ingested once into an embedded store (the path; a service opens it)."""
    root = tmp_path_factory.mktemp("reliability") / "q"
    ingest.write(open_writer(settings_for(qdrant_path=root)), ml1m_prepared, progress=False)
    return root


@pytest.fixture(scope="package")
def served(ml1m_store, tmp_path_factory) -> Service:
    """One real `movierec serve` on the ml-1m store for the whole package."""
    log = tmp_path_factory.mktemp("served") / "serve.log"
    service = start({"QDRANT_PATH": str(ml1m_store), "QDRANT_URL": ""}, log)
    yield service
    service.stop()


@pytest.fixture(scope="package")
def small_dir(tmp_path_factory) -> Path:
    data = synthetic.generate(n_users=300, n_movies=120, n_ratings=9_000, seed=1, name="small")
    return synthetic.write_dat(data, tmp_path_factory.mktemp("small"))


def host_port(service: Service) -> tuple[str, int]:
    host, port = service.url.removeprefix("http://").split(":")
    return host, int(port)


def raw_exchange(service: Service, payload: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send bytes as they are; return everything the server answers until it closes, and when."""
    sock = socket.create_connection(host_port(service), timeout=timeout)
    start_at = time.monotonic()
    try:
        if payload:
            sock.sendall(payload)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            answer += chunk
            if _complete(answer):
                break
        return answer, time.monotonic() - start_at
    finally:
        sock.close()


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Listener:
    """A real TCP listener on loopback that accepts connections and never answers (a hung
    Qdrant), optionally recording what it was sent; `close()` makes the port refuse."""

    def __init__(self, port: int = 0, record: bool = False):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.received = bytearray()
        self._record = record
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(conn)
            if self._record:
                threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.received += data

    def close(self) -> None:
        # shutdown() first: a close() alone leaves the port listening while accept() blocks.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self._lock:
            for conn in self._held:
                conn.close()
            self._held.clear()


def run_ingest(env: dict, data: Path | None = None, *extra: str, timeout: float = 120):
    """`movierec ingest` in its own process, as a person (or the Job) runs it."""
    args = ["--data", str(data)] if data else []
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", "ingest", *args, "--no-item-model", *extra],
        env={**os.environ, "MOVIELENS_DIR": "", **env}, capture_output=True, text=True,
        timeout=timeout)
