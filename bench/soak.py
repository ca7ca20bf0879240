"""Soak: the real service on ml-1m at ~80% of its measured maximum throughput for minutes.

    python -m bench.soak [--seconds 300] [--data DIR] [--write-benchmarks BENCHMARKS.md]

1. Ingest ml-1m into a fresh embedded store (a temporary folder) and start `movierec serve`.
2. Warm up, then measure the maximum throughput of a realistic mix (closed loop, keep-alive).
3. Run an open loop at `--fraction` (0.8) of that rate for `--seconds`: requests are sent on a
   fixed schedule and each latency is counted from its scheduled time, so a stalled server
   shows up as latency instead of hiding behind fewer requests (no coordinated omission).
4. Every 30 s window: requests, errors, p50/p99, and the server's RSS from /proc.

Passes (exit 0) when there is no error at all (every answer 200, no transport error), the
server's RSS grew less than 10% over the soak, and p99 is stable: the last minute's p99 is
within 1.5x of the first minute's, and no window's p99 exceeds 3x the median window's.
Traffic goes to 127.0.0.1 only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import loadgen
from harness.latency import percentile_ms
from harness.queries import body, random_people
from harness.service import Service, running

WINDOW = 30.0
MIX = {"recommend": 0.6, "user": 0.15, "search": 0.15, "movie": 0.10}


# --- the server ----------------------------------------------------------------------------

def ingest(store: Path, data: Path | None) -> None:
    env = {**os.environ, "QDRANT_PATH": str(store), "QDRANT_URL": ""}
    args = [sys.executable, "-m", "movierec.cli", "ingest", "--dataset", "ml-1m",
            "--no-item-model"]
    if data:
        args += ["--data", str(data)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        sys.exit(f"ingest failed: {done.stderr.strip()}")
    print(done.stdout.strip(), file=sys.stderr)


# --- the requests ----------------------------------------------------------------------------

def request_mix(data: Path, n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """`n` raw HTTP/1.1 requests drawn from the mix, all of which must be answered 200."""
    rng = np.random.default_rng(seed)
    movies = (data / "movies.dat").read_text(encoding="latin-1").splitlines()
    ids = [int(line.split("::", 1)[0]) for line in movies]
    titles = [line.split("::")[1] for line in movies]
    words = sorted({w.lower() for t in titles for w in re.findall(r"[A-Za-z]{4,}", t)})
    rated = np.array(ids[:800])  # the first 800 movies by id: all in the catalog, most often rated
    kinds, weights = zip(*MIX.items())
    out = []
    for kind in rng.choice(kinds, size=n, p=weights).tolist():
        if kind == "recommend":
            ratings = random_people(rated, 1, rng, most=15, least=3)[0]
            out.append((kind, loadgen.post("/recommendations",
                                           body(ratings, limit=int(rng.choice([5, 10, 20]))))))
            continue
        if kind == "user":
            path = f"/users/{rng.integers(1, 6041)}/recommendations?limit=10"
        elif kind == "search":
            path = f"/movies?search={words[rng.integers(len(words))]}&limit=10"
        else:
            path = f"/movies/{ids[rng.integers(len(ids))]}"
        out.append((kind, loadgen.get(path)))
    return out


class Record:
    def __init__(self):
        self.done: list[tuple[float, float]] = []  # (finished at, latency s)
        self.errors: list[str] = []


async def _closed_loop(port: int, requests, connections: int, seconds: float) -> Record:
    record = Record()
    stop_at = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.perf_counter() < stop_at:
                kind, raw = requests[i % len(requests)]
                i += connections
                started = time.perf_counter()
                try:
                    status = await loadgen.exchange(reader, writer, raw)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    record.errors.append(f"{kind}: {type(exc).__name__}")
                    return
                now = time.perf_counter()
                record.done.append((now, now - started))
                if status != 200:
                    record.errors.append(f"{kind}: HTTP {status}")
        finally:
            writer.close()

    await asyncio.gather(*[worker(k) for k in range(connections)])
    return record


async def _open_loop(port: int, requests, rate: float, seconds: float, connections: int,
                     on_window) -> Record:
    """Request k is due at start + k/rate; connection c sends requests c, c+C, c+2C, ..."""
    record = Record()
    start = time.perf_counter() + 0.5
    total = int(rate * seconds)

    async def worker(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for k in range(c, total, connections):
                due = start + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind, raw = requests[k % len(requests)]
                try:
                    status = await asyncio.wait_for(loadgen.exchange(reader, writer, raw), 30)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    record.errors.append(f"{kind}: {type(exc).__name__}")
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                now = time.perf_counter()
                record.done.append((now, now - due))
                if status != 200:
                    record.errors.append(f"{kind}: HTTP {status}")
        finally:
            writer.close()

    async def sampler() -> None:
        t = start
        while t < start + seconds + 5:
            t += WINDOW
            await asyncio.sleep(max(0.0, t - time.perf_counter()))
            on_window()

    tasks = [asyncio.create_task(worker(c)) for c in range(connections)]
    sample = asyncio.create_task(sampler())
    await asyncio.gather(*tasks)
    sample.cancel()
    return record


# --- the run -------------------------------------------------------------------------------

def soak(args) -> dict:
    data = Path(args.data) if args.data else None
    if data is None or not (data / "movies.dat").exists():
        sys.exit("--data must name a folder with the ml-1m files (movies.dat, ratings.dat)")
    work = Path(tempfile.mkdtemp(prefix="movierec-soak-"))
    try:
        ingest(work / "q", data)
        env = {"QDRANT_PATH": str(work / "q"), "QDRANT_URL": ""}
        with running(env, work / "serve.log", wait_for="/readyz", log_level="warning") as server:
            return _measure(args, server, request_mix(data, 20_000))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(args, server: Service, requests) -> dict:
    print("warming up (10 s) ...", file=sys.stderr)
    asyncio.run(_closed_loop(server.port, requests, 8, 10))
    record = asyncio.run(_closed_loop(server.port, requests, args.connections, args.max_seconds))
    if record.errors:
        sys.exit(f"errors while measuring the maximum: {record.errors[:5]}")
    max_rps = len(record.done) / args.max_seconds
    rate = args.fraction * max_rps
    print(f"maximum {max_rps:.0f} req/s (closed loop, {args.connections} connections, "
          f"p99 {percentile_ms([x for _, x in record.done], 99):.1f} ms); soaking at "
          f"{rate:.0f} req/s for {args.seconds:.0f} s ...", file=sys.stderr)
    load_start = os.getloadavg()[0]
    rss_start = server.rss_mb()
    rss_samples = [(0.0, rss_start)]
    started = time.perf_counter()
    # Per window: the server's share of one core and the machine's load, so that a slowdown
    # caused by other work on a shared machine (server CPU share drops, load rises) can be told
    # from one caused by the server itself (CPU share stays at 100%).
    machine: list[dict] = []
    last = [started, server.cpu_seconds()]

    def on_window() -> None:
        now, cpu = time.perf_counter(), server.cpu_seconds()
        rss_samples.append((now - started, server.rss_mb()))
        machine.append({"server_cpu_pct": round(100 * (cpu - last[1]) / (now - last[0])),
                        "load": round(os.getloadavg()[0], 1)})
        last[:] = [now, cpu]
        print(f"  {rss_samples[-1][0]:5.0f} s  RSS {rss_samples[-1][1]:.1f} MB  server CPU "
              f"{machine[-1]['server_cpu_pct']}%  load {machine[-1]['load']}", file=sys.stderr)

    record = asyncio.run(_open_loop(server.port, requests, rate, args.seconds,
                                    args.open_connections, on_window))
    rss_end = server.rss_mb()
    t0 = min(t for t, _ in record.done)
    windows = []
    n_windows = int(np.ceil(args.seconds / WINDOW))
    for w in range(n_windows):
        lat = [x for t, x in record.done if w * WINDOW <= t - t0 < (w + 1) * WINDOW]
        windows.append({"from_s": int(w * WINDOW), "requests": len(lat),
                        "rps": round(len(lat) / WINDOW, 1),
                        "p50_ms": round(percentile_ms(lat, 50), 2),
                        "p99_ms": round(percentile_ms(lat, 99), 2),
                        **(machine[w] if w < len(machine) else {})})
    first = [x for t, x in record.done if t - t0 < 60]
    last = [x for t, x in record.done if t - t0 >= args.seconds - 60]
    p99s = [w["p99_ms"] for w in windows if w["requests"]]
    result = {
        "command": f"python -m bench.soak --seconds {args.seconds:g}",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}",
        "max_rps": round(max_rps, 1),
        "target_rps": round(rate, 1),
        "achieved_rps": round(len(record.done) / args.seconds, 1),
        "requests": len(record.done),
        "errors": len(record.errors),
        "error_samples": record.errors[:10],
        "p50_ms": round(percentile_ms([x for _, x in record.done], 50), 2),
        "p99_ms": round(percentile_ms([x for _, x in record.done], 99), 2),
        "p99_first_minute_ms": round(percentile_ms(first, 99), 2),
        "p99_last_minute_ms": round(percentile_ms(last, 99), 2),
        "p99_worst_window_ms": max(p99s),
        "p99_median_window_ms": float(np.median(p99s)),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_max_mb": round(max(r for _, r in rss_samples + [(0, rss_end)]), 1),
        "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 2),
        "load_average": f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "windows": windows,
    }
    result["checks"] = {
        "zero errors": result["errors"] == 0,
        "RSS growth under 10%": result["rss_growth_pct"] < 10,
        "p99 last minute within 1.5x of first": (
            result["p99_last_minute_ms"] <= 1.5 * result["p99_first_minute_ms"]),
        "no 30 s window p99 above 3x the median window": (
            result["p99_worst_window_ms"] <= 3 * result["p99_median_window_ms"]),
    }
    result["passed"] = all(result["checks"].values())
    return result


def markdown(r: dict) -> str:
    rows = "\n".join(f"| {w['from_s']}-{w['from_s'] + int(WINDOW)} s | {w['rps']} | "
                     f"{w['p50_ms']} | {w['p99_ms']} | {w.get('server_cpu_pct', '')} | "
                     f"{w.get('load', '')} |" for w in r["windows"])
    checks = "\n".join(f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in r["checks"].items())
    mix = ", ".join(f"{int(100 * v)}% {k}" for k, v in MIX.items())
    return f"""## Soak

`make soak` ({r['command']}; {r['date']}, {r['machine']}): ml-1m on the embedded store, one
`movierec serve` process, a Python asyncio load generator on the same machine. Request mix: {mix}
(recommend = POST /recommendations with 3-15 random likes/dislikes among the first 800 movies by id;
user = GET /users/{{id}}/recommendations; search = GET /movies?search=word; movie = GET
/movies/{{id}}). Maximum throughput measured closed-loop, then an open loop at 80% of it;
latency counted from each request's scheduled send time. Load average of the machine (other
work included): {r['load_average']}.

| measure | value |
|---|---|
| maximum throughput | {r['max_rps']} req/s |
| soak rate (target / achieved) | {r['target_rps']} / {r['achieved_rps']} req/s |
| requests / errors | {r['requests']} / {r['errors']} |
| latency p50 / p99 (whole soak) | {r['p50_ms']} / {r['p99_ms']} ms |
| p99 first minute / last minute | {r['p99_first_minute_ms']} / {r['p99_last_minute_ms']} ms |
| server RSS start / end / max | {r['rss_start_mb']} / {r['rss_end_mb']} / {r['rss_max_mb']} MB |
| RSS growth | {r['rss_growth_pct']}% |

{checks}

| window | req/s | p50 ms | p99 ms | server CPU % of a core | load average |
|---|---|---|---|---|---|
{rows}
"""


def write_section(path: Path, section: str) -> None:
    """Replace this file's own "## Soak" section (or append it at the end); nothing else."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    match = re.search(r"^## Soak\n", text, flags=re.M)
    if match:
        rest = re.search(r"^## ", text[match.end():], flags=re.M)
        end = match.end() + rest.start() if rest else len(text)
        text = text[: match.start()] + section + ("\n" + text[end:] if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--fraction", type=float, default=0.8)
    parser.add_argument("--max-seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=8, help="closed loop (maximum)")
    parser.add_argument("--open-connections", type=int, default=32, help="open loop (soak)")
    parser.add_argument("--data", default=os.environ.get("MOVIELENS_DIR"))
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--write-benchmarks", type=Path, help="update this file's Soak section")
    args = parser.parse_args()
    result = soak(args)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.write_benchmarks:
        write_section(args.write_benchmarks, markdown(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
