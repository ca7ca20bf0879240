"""`movierec snapshot` / `movierec restore` on what runs here (the embedded store and
qdrant-client local mode): snapshot, wipe, restore, the same answers; a damaged snapshot is
refused before anything is written; a restore is undone by `movierec rollback`.
"""

from __future__ import annotations

import json
import shutil

import pytest

from movierec import ingest
from movierec.errors import DataError
from movierec.store import open_reader, rollback
from movierec.store.backup import MANIFEST, restore, snapshot
from movierec.store.embedded import CURRENT, VERSIONS
from tests.conftest import settings_for
from tests.recovery.conftest import answer_of, cli, one_error_line


def test_embedded_snapshot_wipe_restore_gives_the_same_answers(tmp_path, datasets):
    root = tmp_path / "q"
    env = {"QDRANT_PATH": str(root)}
    settings = settings_for(qdrant_path=root)
    live = ingest.run(settings, "a", datasets[0], progress=False)
    with open_reader(settings) as store:
        before = answer_of(store)
        meta = store.meta()

    done = cli(env, "snapshot", str(tmp_path / "backup"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"snapshot of version {live.version} (embedded, ")
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert (manifest["kind"], manifest["version"]) == ("embedded", live.version)
    assert set(manifest["files"]) == {"version.tar"}
    assert len(manifest["files"]["version.tar"]["sha256"]) == 64

    shutil.rmtree(root)  # the disk is lost
    done = cli(env, "restore", str(tmp_path / "backup"))
    assert done.returncode == 0, done.stderr
    with open_reader(settings) as store:
        status = store.status()
        assert (status.users, status.movies) == (300, 120)
        assert status.version != live.version  # written as a new version, switched in
        assert status.meta.rating_stats == meta.rating_stats
        assert status.meta.dataset == meta.dataset
        assert answer_of(store) == before


def test_a_damaged_snapshot_is_refused_and_nothing_is_written(tmp_path, datasets):
    root = tmp_path / "q"
    settings = settings_for(qdrant_path=root)
    ingest.run(settings, "a", datasets[0], progress=False)
    snapshot(settings, tmp_path / "backup")
    tar = tmp_path / "backup" / "version.tar"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    before = ((root / CURRENT).read_text(), sorted(p.name for p in (root / VERSIONS).iterdir()))
    line = one_error_line(cli({"QDRANT_PATH": str(root)}, "restore", str(tmp_path / "backup")))
    assert line == (f"error: {tar}: checksum mismatch, the snapshot is damaged; nothing was "
                    "restored")
    after = ((root / CURRENT).read_text(), sorted(p.name for p in (root / VERSIONS).iterdir()))
    assert after == before


def test_restore_is_undone_by_rollback(tmp_path, datasets):
    root = tmp_path / "q"
    settings = settings_for(qdrant_path=root)
    ingest.run(settings, "a", datasets[0], progress=False)
    with open_reader(settings) as store:
        answers_a = answer_of(store)
    snapshot(settings, tmp_path / "backup")
    b = ingest.run(settings, "b", datasets[1], progress=False)
    with open_reader(settings) as store:
        answers_b = answer_of(store)
    restored = restore(settings, tmp_path / "backup")
    with open_reader(settings) as store:
        assert answer_of(store) == answers_a
    assert rollback(settings) == (restored.version, b.version)
    with open_reader(settings) as store:
        assert answer_of(store) == answers_b


def test_snapshot_needs_a_new_folder_and_a_store_with_data(tmp_path, datasets):
    env = {"QDRANT_PATH": str(tmp_path / "q")}
    line = one_error_line(cli(env, "snapshot", str(tmp_path / "backup")))
    assert line == f"error: no data in the embedded store at {tmp_path / 'q'}: nothing to snapshot"
    ingest.run(settings_for(qdrant_path=tmp_path / "q"), "a", datasets[0], progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    line = one_error_line(cli(env, "snapshot", str(tmp_path / "full")))
    assert line == f"error: {tmp_path / 'full'} is not empty: give a new folder for the snapshot"
    line = one_error_line(cli(env, "restore", str(tmp_path / "full")))
    assert line == f"error: {tmp_path / 'full'} is not a movierec snapshot (no manifest.json)"


# --- qdrant-client local mode (the server code path, which has no snapshot API there) -------


def test_local_mode_snapshot_wipe_restore_gives_the_same_answers(tmp_path, datasets):
    settings = settings_for(qdrant_url=f"local:{tmp_path / 'local'}")
    live = ingest.run(settings, "a", datasets[0], progress=False)
    reader = open_reader(settings)
    before = answer_of(reader)
    done = snapshot(settings, tmp_path / "backup")
    assert (done.kind, done.version) == ("local", live.version)
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["kind"] == "points"
    assert set(manifest["files"]) == {"movielens.jsonl.gz", "movies.jsonl.gz"}

    client = reader.client
    for c in client.get_collections().collections:  # wipe: every collection and alias gone
        client.delete_collection(c.name)
    assert client.get_aliases().aliases == []

    restored = restore(settings, tmp_path / "backup")
    reader.refresh(force=True)
    status = reader.status()
    assert (status.version, status.users, status.movies) == (restored.version, 300, 120)
    assert status.meta.rating_stats == open_reader_meta_of(manifest)
    assert answer_of(reader) == before
    assert status.cluster["mode"] == "local"


def open_reader_meta_of(manifest: dict):
    """The rating statistics the snapshot's metadata recorded."""
    from movierec.meta import IngestMeta

    return IngestMeta.from_dict(manifest["meta"], "the snapshot").rating_stats


def test_a_snapshot_restores_only_into_the_kind_of_store_it_came_from(tmp_path, datasets):
    embedded = settings_for(qdrant_path=tmp_path / "q")
    ingest.run(embedded, "a", datasets[0], progress=False)
    snapshot(embedded, tmp_path / "backup")
    local = settings_for(qdrant_url=f"local:{tmp_path / 'local'}")
    with pytest.raises(DataError, match="is a snapshot of the embedded store, this is qdrant-client local mode: "
                       "restore it into the kind of store it was made from"):
        restore(local, tmp_path / "backup")


@pytest.mark.parametrize(("qdrant_url", "p2p_uri", "rest_url"), [
    # The official chart, reached from the movierec namespace.
    ("http://qdrant.qdrant.svc:6333", "http://qdrant-1.qdrant-headless:6335/",
     "http://qdrant-1.qdrant-headless.qdrant.svc:6333"),
    # Already a full name: kept.
    ("http://qdrant.qdrant.svc:6333", "http://qdrant-2.qdrant-headless.qdrant.svc.cluster.local:6335",
     "http://qdrant-2.qdrant-headless.qdrant.svc.cluster.local:6333"),
    # A short QDRANT_URL (same namespace): nothing to add.
    ("https://qdrant:6333", "http://qdrant-0.qdrant-headless:6335", "https://qdrant-0.qdrant-headless:6333"),
])
def test_each_peer_is_reached_on_its_rest_port_from_another_namespace(qdrant_url, p2p_uri, rest_url):
    from movierec.store.backup import peer_rest_url

    assert peer_rest_url(qdrant_url, p2p_uri) == rest_url
