"""`movierec serve` as a child process on a free loopback port: started, waited for, stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A running `movierec serve`: its process, URL, log file and an HTTP client for it."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc = proc
        self.url = url
        self.log = log
        self.port = int(url.rsplit(":", 1)[1])
        self.client = httpx.Client(base_url=url, timeout=30)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_mb(self) -> float:
        """The server's resident memory now (Linux /proc)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def start(env: dict, log: Path, wait_for: str = "/healthz", timeout: float = 60,
          log_level: str = "info") -> Service:
    """Start `movierec serve` with `env` over this process's environment, its output in `log`;
    return once `wait_for` answers below 500 (/healthz: the process serves; /readyz: the store
    is open and holds data)."""
    port = free_port()
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": log_level,
                **env}
    with open(log, "wb") as out:
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
            proc.wait()
            raise RuntimeError(f"service did not start within {timeout:g} s:\n{log.read_text()}")
        time.sleep(0.05)


@contextmanager
def running(env: dict, log: Path, **kw):
    """`start`, and stop it at the end of the block."""
    service = start(env, log, **kw)
    try:
        yield service
    finally:
        service.stop()
