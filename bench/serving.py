"""HTTP: `movierec serve` on the embedded store (ml-1m) under a real load generator on loopback.

Each model the service offers is measured as a person calls it: first the default request (no
"model" field: whatever GET /models says is `default` answers it), then each model by name.
wrk (C, one thread, keep-alive connections) when installed, otherwise bench/loadgen.py. The
server and the load generator share the machine's cores: at 2 cores the generator's CPU is
the server's loss, so throughput is measured as a pair, and wrk is much lighter than Python.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import loadgen
from harness.queries import body
from harness.service import Service, start

PATH = "/recommendations"
DEFAULT = "default"  # the label of the request without a "model" field


def served_models(service: Service) -> tuple[str, list[str]]:
    """(the default model, every model the live data offers) as GET /models says."""
    answer = service.client.get("/models").raise_for_status().json()
    return answer["default"], [m["name"] for m in answer["models"]]


def bodies_for(default: str, names: list[str], limit: int = 10) -> dict[str, dict]:
    """label -> body: the default request first, then each named model (the tutorial's ratings;
    the default model again by name too, so the cost of naming it shows)."""
    out = {DEFAULT: body(limit=limit)}
    out.update({name: body(model=name, limit=limit) for name in names})
    return out


def start_server(store: Path, log: Path) -> Service:
    """`movierec serve` as it runs by default: LOG_LEVEL info, one JSON access line a request
    (into `log`)."""
    return start({"QDRANT_PATH": str(store), "QDRANT_URL": "", "MOVIELENS_DIR": ""}, log,
                 wait_for="/readyz")


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNIT[unit]


def wrk(port: int, concurrency: int, seconds: float, script: Path) -> dict:
    """One wrk run (whole seconds: wrk takes no fractions)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "-s",
         str(script),
         f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout
    # No latency lines when no request finished (a stalled server): nan, and the errors say why.
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(latency["50"]) if "50" in latency else float("nan"),
        "p99_ms": _ms(latency["99"]) if "99" in latency else float("nan"),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def lua_script(folder: Path, name: str, payload: dict) -> Path:
    text = json.dumps(payload).replace("\\", "\\\\").replace("'", "\\'")
    path = folder / f"post-{name}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{text}'\n"
    )
    return path


def run(service: Service, workdir: Path, bodies: dict[str, dict], concurrencies=(1, 8, 64),
        seconds: float = 5.0, rounds: int = 3, profile: Path | None = None) -> dict:
    """Latency and throughput of POST /recommendations for each body at each concurrency,
    `rounds` times interleaved (concurrency by concurrency, body by body); medians over rounds.
    `profile`: py-spy on the server under the first body (the default request)."""
    use_wrk = shutil.which("wrk") is not None
    scripts = {label: lua_script(workdir, re.sub(r"\W", "_", label), b)
               for label, b in bodies.items()} if use_wrk else {}

    def load(label: str, c: int, s: float) -> dict:
        if use_wrk:
            return wrk(service.port, c, s, scripts[label])
        return loadgen.run(service.port, PATH, bodies[label], c, s)

    checked = {}
    for label, b in bodies.items():
        start = time.perf_counter()  # the first body's: the first request the server answers
        answer = service.client.post(PATH, json=b).raise_for_status().json()
        checked[label] = {"model": answer.get("model"), "first_ms":
                          (time.perf_counter() - start) * 1e3,
                          "top": [(i["movie_id"], round(i["score"], 6)) for i in answer["items"]]}
        for c in concurrencies:  # warm up
            load(label, c, 1)
    results: dict[str, dict[int, list[dict]]] = {label: {c: [] for c in concurrencies}
                                                 for label in bodies}
    # Concurrency by concurrency, every body in turn: the requests compared (the default's
    # against the tutorial mode's) are measured seconds apart, not a whole body's cells apart,
    # on a machine whose speed drifts by tens of percent within minutes.
    for _ in range(rounds):
        for c in concurrencies:
            for label in bodies:
                results[label][c].append(load(label, c, seconds))
    if profile is not None:
        first = next(iter(bodies))
        _profile_server(service, profile, scripts.get(first), use_wrk)
    summary = {}
    for label, by_c in results.items():
        summary[label] = {"answer": checked[label], "by_concurrency": {
            c: {"p50_ms": float(np.median([r["p50_ms"] for r in runs])),
                "p99_ms": float(np.median([r["p99_ms"] for r in runs])),
                "rps": float(np.median([r["rps"] for r in runs])),
                "errors": sum(r["errors"] for r in runs),
                "requests": sum(r["requests"] for r in runs),
                "runs": runs}
            for c, runs in by_c.items()}}
    return {"loadgen": "wrk 1 thread (C)" if use_wrk else "bench/loadgen.py (Python asyncio)",
            "seconds": seconds, "rounds": rounds, "bodies": bodies, "by_request": summary}


def _profile_server(service: Service, out: Path, script: Path | None, use_wrk: bool) -> None:
    """py-spy on the server while it is under load (concurrency 8): where its time goes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists() or not use_wrk:
        out.write_text("no server profile: py-spy or wrk is not installed\n")
        return
    raw = out.with_suffix(".raw")
    load = subprocess.Popen(["wrk", "-t1", "-c8", "-d8s", "-s", str(script),
                             f"http://127.0.0.1:{service.port}{PATH}"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        subprocess.run([spy, "record", "-p", str(service.proc.pid), "-d", "5", "-r", "200",
                        "-f", "raw", "-o", str(raw)], capture_output=True, timeout=60)
    finally:
        load.wait()
    if raw.exists():
        out.write_text(summarize_raw(raw.read_text()))
        raw.unlink()


def summarize_raw(text: str, top: int = 40) -> str:
    """py-spy raw (collapsed) stacks -> inclusive time per function, the top lines (file names
    only, so the profile reads the same on every machine)."""
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
    lines = [f"py-spy, {total} samples of the server under wrk -c8 (the default request); "
             "inclusive share per function"]
    for key, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / max(total, 1):5.1f}%  {key}")
    return "\n".join(lines) + "\n"
