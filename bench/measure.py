"""Measurement helpers of the benchmarks: timers, child processes, the machine, tables
(latency samples and percentiles: harness.latency)."""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fsync_latency_ms(folder: Path, n: int = 30) -> float:
    """Median time of a 4 KiB write + fsync where the stores live: what durable writes cost."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            start = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return float(np.median(times) * 1e3)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def machine(workdir: Path) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = "AVX-512" if "avx512f" in text else ("AVX2" if "avx2" in text else "")
    except OSError:
        pass
    return {
        "cpu": cpu,
        "simd": flags,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "fsync_ms": round(fsync_latency_ms(workdir), 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "packages": {p: _version(p) for p in ("numpy", "scipy", "pandas", "qdrant-edge-py",
                                               "qdrant-client", "fastapi", "uvicorn")},
    }


@dataclass(frozen=True)
class Process:
    """A finished child process: how long it ran, its own peak RSS, and what it printed."""

    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


# Linux starts a forked child's peak RSS at its parent's RSS at the fork, and exec keeps it; so
# the command is forked from this small launcher, not from the benchmark (hundreds of MiB),
# which reports the command's own rusage (wait4) and wall time on its last stderr line.
_LAUNCHER = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\\n" + json.dumps({"seconds": time.perf_counter() - start,
    "maxrss_kib": usage.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status)}) + "\\n")
"""


def run_process(args: list[str], env: dict | None = None, timeout: float = 3600) -> Process:
    """Run a command as a person would (its own process): its wall time from start to exit and
    its peak RSS from the kernel's accounting (wait4), not from sampling."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, *args], stdout=out,
                                stderr=err, cwd=ROOT, env={**os.environ, **(env or {})},
                                start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    body, _, last = stderr.rstrip("\n").rpartition("\n")
    try:
        usage = json.loads(last)
    except ValueError:  # killed before it could report
        return Process(float(timeout), float("nan"), -9, stdout, stderr)
    return Process(usage["seconds"], usage["maxrss_kib"] / 1024, usage["returncode"], stdout,
                   body)


def run_json(args: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run a bench worker subprocess (python -m ...) that prints one JSON object last."""
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table."""
    def cell(v) -> str:
        if isinstance(v, float):
            if v != v:
                return "-"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            if abs(v) >= 1:
                return f"{v:.2f}"
            return f"{v:.3f}"
        return str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
