"""Start the real service as a subprocess on a free loopback port, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

TUTORIAL_BODY = {
    "ratings": {"2571": 1, "329": 1, "260": 1, "1": 1, "356": 1, "2116": 1,
                "2288": -1, "1721": -1, "296": -1, "1291": -1, "1036": -1},
    "limit": 5,
    "model": "tutorial",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc = proc
        self.url = url
        self.log = log
        self.client = httpx.Client(base_url=url, timeout=30)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(env: dict, log: Path, wait_for: str = "/healthz", timeout: float = 60) -> Service:
    port = free_port()
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "info", **env}
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "movierec.cli", "serve"], env=full_env,
                            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + wait_for, timeout=1).status_code < 500:
                return Service(proc, url, log)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"service did not start:\n{log.read_text()}")
        time.sleep(0.05)


def serve_prepared(prepared, root: Path) -> Service:
    """Write `prepared` (an ingest.Prepared) into an embedded store under root, and serve it."""
    from movierec import ingest
    from movierec.config import Settings
    from movierec.store import open_writer

    settings = Settings(qdrant_url=None, qdrant_path=root / "q")
    ingest.write(open_writer(settings), prepared, progress=False)
    return start({"QDRANT_PATH": str(root / "q"), "QDRANT_URL": ""}, root / "serve.log")


@contextmanager
def running(env: dict, log: Path, **kw):
    service = start(env, log, **kw)
    try:
        yield service
    finally:
        service.stop()
