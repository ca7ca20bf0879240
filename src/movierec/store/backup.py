"""`movierec snapshot` / `movierec restore`: a checksummed copy of the live version, and making
such a copy live again, for each of the three stores.

A snapshot is a folder: `manifest.json` (the store kind, the version and its metadata, every file
with its SHA-256 and size) and the files it lists. What the files are depends on the engine:

- embedded: qdrant-edge can load a shard snapshot but has no call to make one, so the snapshot
  is the committed version directory itself (both shards, users.csr, meta.json) in one tar. No
  process writes a version after its commit, and the copy is made holding the ingest lock, so
  no ingest or garbage collection runs meanwhile.
- local (qdrant-client local mode): it has no snapshot API either; every point of both live
  collections (vectors and payloads) and their metadata, as gzipped JSON lines.
- server: Qdrant's own collection snapshots, made on every peer (a snapshot holds only the shards
  of the peer it is made on). They stay in Qdrant's snapshot storage (the S3 bucket when
  `snapshots_config` points there); with an output folder they are downloaded too, and restore
  uploads each one to the peer it came from.

A restore checks every checksum before it writes anything, writes a new version beside the live
one, verifies its point counts, then switches it in like an ingest: the version live before it
is kept, so `movierec rollback` undoes a restore.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from movierec import schema
from movierec.config import Settings
from movierec.errors import DataError, StoreUnavailable
from movierec.store.base import new_version
from movierec.store.files import FileLock, write_atomic

MANIFEST = "manifest.json"
KINDS = {"embedded": "the embedded store", "points": "qdrant-client local mode",
         "server": "a Qdrant server"}
FORMAT = 1
CHUNK = 1 << 20
POINT_BATCH = 1_000


@dataclass
class Done:
    kind: str
    version: str
    size: int
    seconds: float
    where: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(folder: Path, kind: str, version: str, meta: dict, files: dict,
                    extra: dict | None = None) -> int:
    entries = {name: {"sha256": sha256_of(folder / name), "bytes": (folder / name).stat().st_size}
               for name in files}
    manifest = {"format": FORMAT, "kind": kind, "version": version, "meta": meta,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": entries, **(extra or {})}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return sum(e["bytes"] for e in entries.values())


def read_manifest(folder: Path, kind: str) -> dict[str, Any]:
    """The manifest, after every file it lists matched its checksum (else one-line DataError)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        found = manifest["kind"]
    except FileNotFoundError:
        raise DataError(f"{folder} is not a movierec snapshot (no {MANIFEST})") from None
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{folder / MANIFEST} is damaged; nothing was restored") from None
    if found != kind:
        raise DataError(f"{folder} is a snapshot of {KINDS.get(found, found)}, this is "
                        f"{KINDS[kind]}: restore it into the kind of store it was made from")
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing from the snapshot; nothing was restored")
        if path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
            raise DataError(f"{path}: checksum mismatch, the snapshot is damaged; nothing was "
                            "restored")
    return manifest


def _kind(settings: Settings) -> str:
    return settings.store_kind


def _output(output: Path | None, kind: str, version: str) -> Path:
    if output is None:
        raise DataError(f"give a folder to write the snapshot into (`movierec snapshot DIR`); "
                        f"only a Qdrant server keeps snapshots itself")
    folder = Path(output)
    if folder.exists() and any(folder.iterdir()):
        raise DataError(f"{folder} is not empty: give a new folder for the snapshot")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def snapshot(settings: Settings, output: Path | None, keep: int | None = None) -> Done:
    start = time.perf_counter()
    kind = _kind(settings)
    if kind == "embedded":
        version, size, where = _snapshot_embedded(settings, output)
    elif kind == "local":
        version, size, where = _snapshot_points(settings, output)
    else:
        version, size, where = _snapshot_server(settings, output, keep)
    return Done(kind, version, size, time.perf_counter() - start, where)


def restore(settings: Settings, folder: Path) -> Done:
    start = time.perf_counter()
    kind = _kind(settings)
    manifest = read_manifest(folder, "points" if kind == "local" else kind)
    if kind == "embedded":
        version = _restore_embedded(settings, Path(folder), manifest)
    elif kind == "local":
        version = _restore_points(settings, Path(folder), manifest)
    else:
        version = _restore_server(settings, Path(folder), manifest)
    return Done(kind, version, 0, time.perf_counter() - start, str(folder))


# --- embedded ---------------------------------------------------------------------------------

TAR = "version.tar"


def _snapshot_embedded(settings: Settings, output: Path | None) -> tuple[str, int, str]:
    from movierec.store import embedded

    root = Path(settings.qdrant_path)
    if embedded.read_history(root)[0] is None:
        raise StoreUnavailable(f"no data in the embedded store at {root}: nothing to snapshot")
    lock = FileLock(root / embedded.INGEST_LOCK,
                          f"an ingest is writing to {root}; wait for it, then snapshot")
    try:
        version, _ = embedded.read_history(root)
        source = root / embedded.VERSIONS / version
        meta = json.loads((source / embedded.META).read_text())
        folder = _output(output, "embedded", version)
        with tarfile.open(folder / TAR, "w") as tar:
            for path in sorted(source.rglob("*")):
                if path.name == embedded.VERSION_LOCK or not path.is_file():
                    continue
                tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    finally:
        lock.release()
    size = _write_manifest(folder, "embedded", version, meta, [TAR])
    return version, size, str(folder)


def _restore_embedded(settings: Settings, folder: Path, manifest: dict) -> str:
    import qdrant_edge as qe

    from movierec.store import embedded

    root = Path(settings.qdrant_path)
    (root / embedded.VERSIONS).mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / embedded.INGEST_LOCK,
                          f"an ingest is writing to {root}; wait for it, then restore")
    version = new_version()
    staging = root / embedded.VERSIONS / version
    try:
        staging.mkdir()
        version_lock = FileLock(staging / embedded.VERSION_LOCK, "")
        try:
            with tarfile.open(folder / TAR) as tar:
                tar.extractall(staging, filter="data")  # no absolute paths, links or `..`
            meta = dict(json.loads((staging / embedded.META).read_text()), version=version,
                        restored_from=manifest["version"])
            counts = []
            for name in ("users", "movies"):
                shard = qe.EdgeShard.load(str(staging / name))
                try:
                    counts.append(shard.count(qe.CountRequest(exact=True)))
                finally:
                    shard.close()
            if counts != [meta.get("users"), meta.get("movies")]:
                raise DataError(f"{folder}: the restored shards hold {counts[0]} users and "
                                f"{counts[1]} movies, the snapshot says {meta.get('users')} and "
                                f"{meta.get('movies')}; nothing was switched in")
            write_atomic(staging / embedded.META, json.dumps(meta, indent=2).encode())
        finally:
            version_lock.release()
        try:
            live, previous = embedded.read_history(root)
        except StoreUnavailable:
            live, previous = None, []
        from movierec.store.base import kept_history

        kept = [v for v in kept_history(live, previous, settings.keep_previous_versions)
                if embedded._complete(root, v)]
        embedded.write_current(root, version, kept)
        embedded.collect_garbage_locked(root)
        return version
    except BaseException:
        if embedded.read_history(root)[0] != version:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        lock.release()


# --- qdrant-client local mode: every point ----------------------------------------------------

def _client(settings: Settings):
    from movierec.store import _client as make

    return make(settings)


def _points_file(alias: str) -> str:
    return f"{alias}.jsonl.gz"


def _snapshot_points(settings: Settings, output: Path | None) -> tuple[str, int, str]:
    from movierec.store.server import _aliases, _history

    client = _client(settings)
    version, _ = _history(_aliases(client, settings.qdrant_url))
    if version is None:
        raise StoreUnavailable(f"no movierec data in Qdrant at {settings.qdrant_url}: "
                               "nothing to snapshot")
    folder = _output(output, "points", version)
    collections = {}
    meta: dict = {}
    for alias in (schema.USERS, schema.MOVIES):
        name = schema.versioned(alias, version)
        info = client.get_collection(name)
        meta = dict(info.config.metadata or {})
        sparse = sorted((info.config.params.sparse_vectors or {}).keys())
        collections[alias] = {"sparse_vectors": sparse, "metadata": meta}
        with gzip.open(folder / _points_file(alias), "wt", compresslevel=1) as fh:
            offset = None
            while True:
                records, offset = client.scroll(name, limit=POINT_BATCH, offset=offset,
                                                with_payload=True, with_vectors=True)
                for r in records:
                    vectors = {k: {"indices": list(v.indices), "values": list(v.values)}
                               for k, v in (r.vector or {}).items()}
                    fh.write(json.dumps({"id": r.id, "vector": vectors, "payload": r.payload}))
                    fh.write("\n")
                if offset is None:
                    break
    size = _write_manifest(folder, "points", version, meta,
                           [_points_file(a) for a in collections],
                           {"collections": collections})
    return version, size, str(folder)


def _restore_points(settings: Settings, folder: Path, manifest: dict) -> str:
    from qdrant_client import models

    from movierec.store.server import switch_to

    client = _client(settings)
    version = new_version()
    created: list[str] = []
    try:
        for alias, spec in manifest["collections"].items():
            name = schema.versioned(alias, version)
            meta = dict(spec["metadata"], version=version, restored_from=manifest["version"])
            client.create_collection(
                name, vectors_config={},
                sparse_vectors_config={v: models.SparseVectorParams()
                                       for v in spec["sparse_vectors"]},
                metadata=meta)
            created.append(name)
            batch: list = []
            with gzip.open(folder / _points_file(alias), "rt") as fh:
                for line in fh:
                    p = json.loads(line)
                    batch.append(models.PointStruct(
                        id=p["id"], payload=p["payload"],
                        vector={k: models.SparseVector(**v) for k, v in p["vector"].items()}))
                    if len(batch) == POINT_BATCH:
                        client.upsert(name, points=batch, wait=True)
                        batch = []
            if batch:
                client.upsert(name, points=batch, wait=True)
            expected = spec["metadata"].get("users" if alias == schema.USERS else "movies")
            got = client.count(name, exact=True).count
            if got != expected:
                raise DataError(f"{folder}: restored {got} points into {alias}, the snapshot "
                                f"says {expected}; the live version stays live")
        switch_to(client, settings.qdrant_url, version, settings.keep_previous_versions)
        return version
    except BaseException:
        for name in created:
            try:
                client.delete_collection(name)
            except Exception:  # noqa: BLE001 (best effort; the next ingest drops it)
                pass
        raise


# --- a Qdrant server: its own snapshot API on every peer --------------------------------------

def peer_rest_url(qdrant_url: str, p2p_uri: str) -> str:
    """The REST URL of a peer: its p2p URI's host, with QDRANT_URL's scheme and port. The
    official chart's peers call each other by names relative to their own namespace
    (qdrant-0.qdrant-headless); from another namespace they need its domain, which QDRANT_URL
    carries (qdrant.qdrant.svc -> qdrant-0.qdrant-headless.qdrant.svc)."""
    base = urlparse(qdrant_url)
    port = base.port or (443 if base.scheme == "https" else 6333)
    host = urlparse(p2p_uri).hostname or ""
    base_host = base.hostname or ""
    domain = base_host.split(".", 1)[1] if base_host.count(".") >= 2 else ""
    if domain and host.count(".") <= 1 and not host.endswith(domain):
        host = f"{host}.{domain}"
    return f"{base.scheme}://{host}:{port}"


def _peers(settings: Settings, client) -> list[tuple[int | None, str]]:
    """(peer id, REST URL) of every Qdrant peer, in peer-id order; one entry for a single node."""
    from movierec.store.server import peer_uris

    uris = peer_uris(client) or {}
    if not uris:
        return [(None, settings.qdrant_url)]
    return [(peer, peer_rest_url(settings.qdrant_url, uri)) for peer, uri in sorted(uris.items())]


def _http(settings: Settings):
    import httpx

    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return httpx.Client(headers={"api-key": key} if key else {}, timeout=httpx.Timeout(
        settings.qdrant_timeout, read=600))


def _checked(response, url: str):
    if response.status_code >= 400:
        raise StoreUnavailable(f"Qdrant at {url} answered HTTP {response.status_code}: "
                               f"{response.text[:200]}")
    return response


def _snapshot_server(settings: Settings, output: Path | None, keep: int | None
                     ) -> tuple[str, int, str]:
    from movierec.store.server import _aliases, _history

    client = _client(settings)
    version, _ = _history(_aliases(client, settings.qdrant_url))
    if version is None:
        raise StoreUnavailable(f"no movierec data in Qdrant at {settings.qdrant_url}: "
                               "nothing to snapshot")
    meta = dict(client.get_collection(schema.versioned(schema.USERS, version)).config.metadata
                or {})
    folder = _output(output, "server", version) if output is not None else None
    snapshots, files, size = [], [], 0
    with _http(settings) as http:
        for index, (peer, url) in enumerate(_peers(settings, client)):
            for alias in (schema.USERS, schema.MOVIES):
                name = schema.versioned(alias, version)
                made = _checked(http.post(f"{url}/collections/{name}/snapshots",
                                          params={"wait": "true"}), url).json()["result"]
                entry = {"alias": alias, "collection": name, "peer": peer, "peer_index": index,
                         "snapshot": made["name"], "checksum": made.get("checksum"),
                         "bytes": made.get("size")}
                size += made.get("size") or 0
                if folder is not None:
                    entry["file"] = f"{name}@{index}.snapshot"
                    _download(http, f"{url}/collections/{name}/snapshots/{made['name']}",
                              folder / entry["file"], made.get("checksum"))
                    files.append(entry["file"])
                snapshots.append(entry)
                if keep is not None:
                    _prune(http, url, name, keep)
    if folder is None:
        where = f"Qdrant's snapshot storage at {settings.qdrant_url}: " + ", ".join(
            f"{s['snapshot']} (peer {s['peer']})" for s in snapshots)
        return version, size, where
    size = _write_manifest(folder, "server", version, meta, files, {"snapshots": snapshots})
    return version, size, str(folder)


def _download(http, url: str, path: Path, checksum: str | None) -> None:
    digest = hashlib.sha256()
    with http.stream("GET", url) as response, open(path, "wb") as fh:
        _checked(response, url)
        for chunk in response.iter_bytes(CHUNK):
            digest.update(chunk)
            fh.write(chunk)
    if checksum and digest.hexdigest() != checksum:
        raise StoreUnavailable(f"{url}: the downloaded snapshot does not match Qdrant's checksum")


def _prune(http, url: str, collection: str, keep: int) -> None:
    listed = _checked(http.get(f"{url}/collections/{collection}/snapshots"), url).json()["result"]
    listed.sort(key=lambda s: s.get("creation_time") or "", reverse=True)
    for old in listed[max(keep, 1):]:
        _checked(http.delete(f"{url}/collections/{collection}/snapshots/{old['name']}",
                             params={"wait": "true"}), url)


def _restore_server(settings: Settings, folder: Path, manifest: dict) -> str:
    from movierec.store.server import switch_to

    client = _client(settings)
    peers = _peers(settings, client)
    wanted = {s["peer_index"] for s in manifest["snapshots"]}
    if len(peers) != len(wanted):
        raise DataError(f"{folder} was made on {len(wanted)} Qdrant peers, {settings.qdrant_url} "
                        f"has {len(peers)}: restore it into a cluster of the same size")
    with _http(settings) as http:
        for entry in manifest["snapshots"]:
            _, url = peers[entry["peer_index"]]
            # Each peer recovers its own shards from the snapshot made on it, into the
            # collection's original name; the snapshot carries the collection's configuration.
            with open(folder / entry["file"], "rb") as fh:
                _checked(http.post(
                    f"{url}/collections/{entry['collection']}/snapshots/upload",
                    params={"wait": "true", "priority": "snapshot",
                            "checksum": manifest["files"][entry["file"]]["sha256"]},
                    files={"snapshot": (entry["file"], fh)}), url)
    version = manifest["version"]
    switch_to(client, settings.qdrant_url, version, settings.keep_previous_versions)
    return version
