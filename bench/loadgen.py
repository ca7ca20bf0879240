"""A Python HTTP/1.1 load generator, used when wrk is not installed.

Closed loop like wrk: `concurrency` keep-alive connections, each sending the next request as
soon as the previous answer is read. It runs on the same 2 cores as the server, so it costs
the server CPU that wrk (C) would not: its throughput numbers are a lower bound.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np


async def _worker(host: str, port: int, request: bytes, stop_at: float, latencies: list,
                  errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            status = int(head.split(b" ", 2)[1])
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _run(host: str, port: int, path: str, body: bytes, concurrency: int,
               seconds: float) -> dict:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*[_worker(host, port, request, stop_at, latencies, errors)
                           for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1e3
    return {"requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "errors": len(errors)}


def run(host: str, port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict:
    return asyncio.run(_run(host, port, path, body, concurrency, seconds))
