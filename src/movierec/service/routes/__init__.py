"""The API's routes, one module per resource; each route validates, calls the library through
`on_store`, and shapes JSON."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import anyio
from fastapi import Request

from movierec.store import StoreReader


async def on_store(request: Request, operation: str, fn: Callable, *args, **kwargs):
    """fn(store, *args, **kwargs), timed as `operation`. A store that answers in-process (the
    embedded engine: sub-millisecond) runs inline; one that waits on a network gets a thread."""
    store: StoreReader = request.app.state.store
    start = time.perf_counter()
    try:
        if store.answers_in_process:
            return fn(store, *args, **kwargs)
        return await anyio.to_thread.run_sync(partial(fn, store, *args, **kwargs))
    finally:
        request.app.state.metrics.store_latency.labels(operation).observe(
            time.perf_counter() - start)
