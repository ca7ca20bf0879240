"""The tests' service helpers: the shared harness (harness.service: the real service on a free
loopback port) plus serving a prepared store, which only tests do."""

from __future__ import annotations

from pathlib import Path

from harness.queries import body
from harness.service import Service, free_port, running, start

__all__ = ["TUTORIAL_BODY", "Service", "free_port", "running", "serve_prepared", "start"]

TUTORIAL_BODY = body(model="tutorial")


def serve_prepared(prepared, root: Path) -> Service:
    """Write `prepared` (an ingest.Prepared) into an embedded store under root, and serve it."""
    from movierec import ingest
    from movierec.config import Settings
    from movierec.store import open_writer

    settings = Settings(qdrant_url=None, qdrant_path=root / "q")
    ingest.write(open_writer(settings), prepared, progress=False)
    return start({"QDRANT_PATH": str(root / "q"), "QDRANT_URL": ""}, root / "serve.log")
