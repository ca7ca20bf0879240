"""Replicated collections: what the ingest asks Qdrant for on a cluster of each size, what it
refuses (more copies than peers) before it creates anything, and what /readyz and `movierec
check` say about shards and replicas where there are none (embedded, local mode).
"""

from __future__ import annotations

import pytest

from movierec import ingest
from movierec.errors import ConfigError
from movierec.store.server import Replication, describe_cluster
from tests.conftest import settings_for
from tests.recovery.conftest import cli, one_error_line
from tests.service_helpers import running

URL = "http://qdrant:6333"


@pytest.mark.parametrize(("peers", "expected"), [
    (None, {"replication_factor": 1, "write_consistency_factor": 1}),  # local mode
    (1, {"replication_factor": 1, "write_consistency_factor": 1}),
    (2, {"replication_factor": 2, "write_consistency_factor": 2}),
    (3, {"replication_factor": 2, "write_consistency_factor": 2}),
    (5, {"replication_factor": 2, "write_consistency_factor": 2}),
])
def test_default_is_two_copies_wherever_there_are_two_peers(peers, expected):
    assert Replication().collection_params(peers, URL) == expected


def test_settings_reach_create_collection_as_qdrant_names_them():
    replication = Replication(shards=6, replication_factor=3, write_consistency=1)
    assert replication.collection_params(3, URL) == {
        "shard_number": 6, "replication_factor": 3, "write_consistency_factor": 1}


def test_more_copies_than_peers_is_refused_with_one_line():
    with pytest.raises(ConfigError) as refused:
        Replication(replication_factor=3).collection_params(2, URL)
    assert str(refused.value) == ("QDRANT_REPLICATION_FACTOR=3 is more copies than the 2 Qdrant "
                                  f"peers at {URL} can hold: set it to 2 or less, or add Qdrant "
                                  "nodes")


def test_write_consistency_above_the_copies_is_refused():
    with pytest.raises(ConfigError, match=r"^QDRANT_WRITE_CONSISTENCY=3 is more than the 2 "
                       r"copies of each shard \(QDRANT_REPLICATION_FACTOR\): set it to 2 or less$"):
        Replication(write_consistency=3).collection_params(3, URL)


def test_ingest_refuses_a_replication_factor_local_mode_cannot_hold_and_creates_nothing(
    tmp_path, datasets
):
    env = {"QDRANT_URL": f"local:{tmp_path / 'local'}", "QDRANT_REPLICATION_FACTOR": "2"}
    line = one_error_line(cli(env, "ingest", "--data", str(datasets[0]), "--no-item-model"))
    assert line == ("error: QDRANT_REPLICATION_FACTOR=2 is more copies than qdrant-client local "
                    "mode (one copy) can hold: set it to 1 or less, or add Qdrant nodes")
    from movierec.store import open_reader

    client = open_reader(settings_for(qdrant_url=f"local:{tmp_path / 'local'}")).client
    assert client.get_collections().collections == []


def test_an_empty_setting_means_the_default(tmp_path, datasets):
    env = {"QDRANT_URL": f"local:{tmp_path / 'local'}", "QDRANT_REPLICATION_FACTOR": "",
           "QDRANT_SHARDS": "", "QDRANT_WRITE_CONSISTENCY": ""}
    done = cli(env, "ingest", "--data", str(datasets[0]), "--no-item-model")
    assert done.returncode == 0, done.stderr


def test_check_says_the_embedded_store_has_no_replicas(tmp_path, datasets):
    ingest.run(settings_for(qdrant_path=tmp_path / "q"), "a", datasets[0], progress=False)
    done = cli({"QDRANT_PATH": str(tmp_path / "q")}, "check")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ready: 300 users, 120 movies (version ")
    assert lines[1] == ("cluster: the embedded engine is one process on one disk: no shards or "
                        "replicas (back it up with `movierec snapshot`)")


def test_check_says_local_mode_has_no_replicas(tmp_path, datasets):
    env = {"QDRANT_URL": f"local:{tmp_path / 'local'}"}
    assert cli(env, "ingest", "--data", str(datasets[0]), "--no-item-model").returncode == 0
    done = cli(env, "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == ("cluster: qdrant-client local mode keeps one copy: no "
                                           "shards, replicas or peers to report")


def test_readyz_reports_the_cluster_section(tmp_path, datasets):
    ingest.run(settings_for(qdrant_path=tmp_path / "q"), "a", datasets[0], progress=False)
    with running({"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}, tmp_path / "serve.log",
                 wait_for="/readyz") as service:
        ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["cluster"] == {
        "mode": "embedded",
        "detail": "the embedded engine is one process on one disk: no shards or replicas "
                  "(back it up with `movierec snapshot`)"}


def test_a_replica_that_is_not_active_is_named_in_the_check_line():
    cluster = {"mode": "server", "peers": 3, "all_active": False, "collections": {
        "movielens": {"shards": 3, "replicas": 2, "inactive": [
            {"shard": 1, "peer": 42, "state": "Dead"}]},
        "movies": {"shards": 3, "replicas": 2, "inactive": []}}}
    assert describe_cluster(cluster) == (
        "3 peers; movielens: 3 shards x 2 replicas, NOT ACTIVE: shard 1 on peer 42 Dead; "
        "movies: 3 shards x 2 replicas, all active")


def test_a_cluster_that_did_not_answer_is_said_so_in_one_line():
    cluster = {"mode": "server", "detail": "cluster information unavailable: Qdrant at "
               "http://qdrant:6333 answered HTTP 403"}
    assert describe_cluster(cluster) == cluster["detail"]
