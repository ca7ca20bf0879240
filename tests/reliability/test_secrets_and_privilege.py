"""Least privilege and secrets: the service's store handle cannot write, and neither Qdrant's
API key nor the service's own token ever shows in logs, error bodies, headers or /metrics.
(That the chart gives the service pod only the read-only key is checked on the rendered chart
in tests/k8s/test_rendered_objects.py.)
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import time
from pathlib import Path

import movierec.service
from movierec.store import StoreReader, base, open_reader
from movierec.store import server as server_store
from tests.conftest import settings_for
from tests.reliability.conftest import Listener
from tests.service_helpers import TUTORIAL_BODY, running

QDRANT_KEY = "qdrant-RO-key-7f3a9c1e5b2d4068"
SERVICE_KEY = "svc-token-0b9e8d7c6a5f4e3d2c1b"

# What the service may ask of Qdrant: reads only (qdrant-client method names).
READ_API = {"get_aliases", "get_collection", "get_collections", "count", "scroll",
            "query_points", "query_batch_points", "retrieve", "close"}
WRITE_WORDS = ("upsert", "delete", "create", "update", "recreate", "set_payload", "overwrite",
               "clear", "upload", "write", "commit", "begin", "abort", "snapshot")


def client_calls(cls) -> set[str]:
    """Every `self.client.<name>` a class's source mentions."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "client"):
            names.add(node.attr)
    return names


def test_the_readers_have_no_write_path():
    for cls in (StoreReader, server_store.ServerReader):
        public = {name for name in dir(cls) if not name.startswith("_")}
        assert not {n for n in public if any(w in n for w in WRITE_WORDS)}, cls
    assert client_calls(server_store.ServerReader) <= READ_API
    reader = open_reader(settings_for(qdrant_url="http://127.0.0.1:9"))
    assert type(reader) is server_store.ServerReader
    assert not isinstance(reader, base.StoreWriter)


def test_the_service_package_never_opens_a_writer():
    folder = Path(movierec.service.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 for a in node.names}
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        assert not names & {"open_writer", "ServerWriter", "EmbeddedWriter", "StoreWriter"}, path


def test_keys_never_appear_in_logs_bodies_headers_or_metrics(tmp_path):
    qdrant = Listener(record=True)  # a Qdrant that hangs: every error path, with the key sent
    env = {"QDRANT_URL": qdrant.url, "QDRANT_API_KEY": QDRANT_KEY, "QDRANT_TIMEOUT": "1",
           "SERVICE_API_KEY": SERVICE_KEY, "LOG_LEVEL": "debug",
           "CORS_ORIGINS": "https://a.example"}
    seen: list[str] = []
    try:
        with running(env, tmp_path / "serve.log") as service:
            good = {"authorization": f"Bearer {SERVICE_KEY}"}
            bad = [{}, {"authorization": f"Bearer {SERVICE_KEY[:-1]}"},
                   {"authorization": f"Bearer {QDRANT_KEY}"}]
            requests = [("GET", "/readyz", {}), ("GET", "/healthz", {}),
                        ("POST", "/recommendations", TUTORIAL_BODY),
                        ("POST", "/recommendations", {"ratings": {"x": 1}}),
                        ("GET", "/users/1/recommendations", None), ("GET", "/movies/1", None),
                        ("GET", "/movies?search=a", None), ("GET", "/nope", None),
                        ("GET", "/openapi.json", None), ("GET", "/metrics", None)]
            for headers in [good, *bad]:
                for method, path, body in requests:
                    r = service.client.request(method, path, headers={
                        **headers, "origin": "https://a.example"}, json=body)
                    assert r.status_code < 500 or r.status_code == 503
                    seen.append(str(r.headers) + r.text)
                    time.sleep(0.05)
            time.sleep(1.2)  # past the fail-fast window: one more real attempt
            seen.append(service.client.get("/readyz").text)
            metrics = service.client.get("/metrics", headers=good).text
            seen.append(metrics)
            assert "movierec_http_requests_total" in metrics
        log = service.logs()
    finally:
        qdrant.close()
    # The key was really in use: Qdrant received it ...
    assert f"api-key: {QDRANT_KEY}".lower().encode() in bytes(qdrant.received).lower()
    # ... and the debug log really is verbose (so its silence about keys means something).
    assert '"logger": "httpcore.http11"' in log
    assert any("cannot reach Qdrant" in text for text in seen)
    everything = "\n".join([*seen, log])
    for secret in (QDRANT_KEY, SERVICE_KEY):
        for piece in (secret, secret[:12], secret[-12:]):
            assert piece not in everything, piece
