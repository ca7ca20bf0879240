"""A Python HTTP/1.1 load generator: the soak's, and the HTTP benchmark's when wrk is missing.

Closed loop like wrk: `concurrency` keep-alive connections, each sending the next request as
soon as the previous answer is read. It runs on the same 2 cores as the server, so it costs
the server CPU that wrk (C) would not: its throughput numbers are a lower bound.
"""

from __future__ import annotations

import asyncio
import json
import time

from harness.latency import percentile_ms


def post(path: str, body: dict, host: str = "127.0.0.1") -> bytes:
    """A raw HTTP/1.1 POST of a JSON body, ready to send on a keep-alive connection."""
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def get(path: str, host: str = "127.0.0.1") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> int:
    """Send one raw request on an open connection and read its whole answer; the status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, request: bytes, stop_at: float, latencies: list,
                  errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            status = await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _run(host: str, port: int, request: bytes, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*[_worker(host, port, request, stop_at, latencies, errors)
                           for _ in range(concurrency)])
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99),
            "errors": len(errors)}


def run(port: int, path: str, body: dict, concurrency: int, seconds: float,
        host: str = "127.0.0.1") -> dict:
    """POST `body` to `path` from `concurrency` connections for `seconds`: latency and rate."""
    return asyncio.run(_run(host, port, post(path, body, host), concurrency, seconds))
