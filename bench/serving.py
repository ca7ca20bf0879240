"""HTTP: `movierec serve` on the embedded store (ml-1m) under a real load generator on loopback.

wrk (C, one thread, keep-alive connections) when installed, otherwise bench/loadgen.py. The
server and the load generator share the machine's cores: at 2 cores the generator's CPU is
the server's loss, so throughput is measured as a pair, and wrk is much lighter than Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench import loadgen
from bench.measure import ROOT

BODY = {"ratings": {"2571": 1, "329": 1, "260": 1, "1": 1, "356": 1, "2116": 1,
                    "2288": -1, "1721": -1, "296": -1, "1291": -1, "1036": -1}, "limit": 5,
        "model": "tutorial"}
PATH = "/recommendations"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`movierec serve` in a child process, its log in a file, stopped with SIGTERM."""

    def __init__(self, store: Path, log: Path, proposals: bool = False):
        self.port = free_port()
        self.log = open(log, "w")
        env = {**os.environ, "QDRANT_PATH": str(store), "QDRANT_URL": "", "MOVIELENS_DIR": ""}
        program = ([sys.executable, "-m", "bench.serve_patched"] if proposals
                   else [str(Path(sys.executable).parent / "movierec")])
        self.proc = subprocess.Popen(
            [*program, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=self.log, stderr=self.log, cwd=ROOT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"movierec serve did not become ready; see {log}") from None
                time.sleep(0.1)

    def post(self) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{PATH}", data=json.dumps(BODY).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNIT[unit]


def wrk(port: int, concurrency: int, seconds: float, script: Path) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def lua_script(folder: Path) -> Path:
    body = json.dumps(BODY).replace("\\", "\\\\").replace("'", "\\'")
    path = folder / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n"
    )
    return path


def run(store: Path, workdir: Path, concurrencies=(1, 8, 64), seconds: float = 10.0,
        rounds: int = 3, profile: Path | None = None, proposals: bool = False) -> dict:
    """Latency and throughput of POST /recommendations at each concurrency, `rounds` times
    interleaved; medians over rounds. `proposals`: the server runs bench/serve_patched.py."""
    use_wrk = shutil.which("wrk") is not None
    script = lua_script(workdir) if use_wrk else None
    server = Server(store, workdir / "serve.log", proposals=proposals)
    results: dict[int, list[dict]] = {c: [] for c in concurrencies}
    try:
        answer = server.post()
        top = [(i["movie_id"], round(i["score"], 6)) for i in answer["items"]]
        body = json.dumps(BODY).encode()
        for c in concurrencies:  # warm up every concurrency once
            if use_wrk:
                wrk(server.port, c, 1, script)
            else:
                loadgen.run("127.0.0.1", server.port, PATH, body, c, 1)
        for _ in range(rounds):
            for c in concurrencies:
                if use_wrk:
                    results[c].append(wrk(server.port, c, seconds, script))
                else:
                    results[c].append(loadgen.run("127.0.0.1", server.port, PATH, body, c,
                                                  seconds))
        if profile is not None:
            _profile_server(server, profile, script, body, use_wrk)
    finally:
        server.stop()
    summary = {}
    for c, runs in results.items():
        summary[c] = {
            "p50_ms": float(np.median([r["p50_ms"] for r in runs])),
            "p99_ms": float(np.median([r["p99_ms"] for r in runs])),
            "rps": float(np.median([r["rps"] for r in runs])),
            "errors": sum(r["errors"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "runs": runs,
        }
    return {"loadgen": "wrk 1 thread (C)" if use_wrk else "bench/loadgen.py (Python asyncio)",
            "seconds": seconds, "rounds": rounds, "top5": top, "by_concurrency": summary}


def _profile_server(server: Server, out: Path, script, body: bytes, use_wrk: bool) -> None:
    """py-spy on the server while it is under load (concurrency 8): where its time goes."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        out.write_text("py-spy is not installed: no server profile\n")
        return
    raw = out.with_suffix(".raw")
    load = (subprocess.Popen(["wrk", "-t1", "-c8", "-d8s", "-s", str(script),
                              f"http://127.0.0.1:{server.port}{PATH}"],
                             stdout=subprocess.DEVNULL)
            if use_wrk else None)
    try:
        time.sleep(1)
        subprocess.run([spy, "record", "-p", str(server.proc.pid), "-d", "5", "-r", "200",
                        "-f", "raw", "-o", str(raw)], capture_output=True, timeout=60)
    finally:
        if load is not None:
            load.wait()
    if raw.exists():
        out.write_text(summarize_raw(raw.read_text()))
        raw.unlink()


def summarize_raw(text: str, top: int = 40) -> str:
    """py-spy raw (collapsed) stacks -> inclusive time per function, the top lines."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0]
            where = frame.rsplit("/", 1)[-1].rstrip(")") if "/" in frame else ""
            key = f"{name} ({where.split(':')[0]})" if where else name
            if key not in seen:
                seen.add(key)
                inclusive[key] = inclusive.get(key, 0) + n
    lines = [f"py-spy, {total} samples of the server under wrk -c8; inclusive share per function"]
    for key, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / total:5.1f}%  {key}")
    return "\n".join(lines) + "\n"
