"""The neighbour search's tie handling against an earlier revision's, on one store: the same
neighbours, bit-identical scores and vectors on every query, and the time of each, interleaved.

    python -m bench.ties --store DIR --before REV [-n 300]

REV's src/movierec/models/neighbors.py is loaded from git as it was (its similar_users calls
the store through the interface both share). Queries: `n` random people (1-15 of the 1,000 most
rated movies, liked or disliked) and each of the 50 most rated movies alone (the tie-heavy
case), for the tutorial mode (20 neighbours) and user-knn (100, liked vectors).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.measure import ROOT
from harness.latency import Samples
from harness.queries import popular_pool, random_people
from movierec import schema
from movierec.config import Settings
from movierec.models import neighbors
from movierec.models.user_knn import liked_query
from movierec.store import open_reader
from movierec.vectors import query_vector


def module_at(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:src/movierec/models/neighbors.py"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(source)
    spec = importlib.util.spec_from_file_location(f"neighbors_{rev}", fh.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    Path(fh.name).unlink()
    return module


def same(a, b) -> bool:
    return ([x.user_id for x in a] == [x.user_id for x in b]
            and [x.score for x in a] == [x.score for x in b]
            and all(np.array_equal(x.vector.indices, y.vector.indices)
                    and np.array_equal(x.vector.values, y.vector.values) for x, y in zip(a, b)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ties", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args(argv)
    before = module_at(args.before)
    reader = open_reader(Settings(qdrant_url=None, qdrant_api_key=None, qdrant_path=args.store,
                                  movielens_dir=None))
    catalog = reader.catalog()
    sets = {"random people": random_people(popular_pool(catalog), args.n,
                                           np.random.default_rng(11)),
            "1 movie": [{m.movie_id: 1.0} for m in catalog.most_rated(50)]}
    models = {"tutorial": (query_vector, schema.RATINGS_VECTOR, 20),
              "user-knn": (liked_query, schema.LIKED_VECTOR, 100)}
    out: dict = {"identical": True}
    for label, people in sets.items():
        for model, (make_query, using, k) in models.items():
            old, new = Samples(), Samples()
            for ratings in people:
                query = make_query(ratings)
                t = time.perf_counter()
                a = before.similar_users(reader, query, k, using=using)
                old.add(time.perf_counter() - t)
                t = time.perf_counter()
                b = neighbors.similar_users(reader, query, k, using=using)
                new.add(time.perf_counter() - t)
                if not same(a, b):
                    out["identical"] = False
                    print(f"different: {model}, {ratings}", file=sys.stderr)
            out[f"{model}, {label}"] = {"before": old.summary(), "now": new.summary()}
    reader.close()
    for key, v in out.items():
        if key != "identical":
            print(f"{key:26s} p50 {v['before']['p50']:7.2f} -> {v['now']['p50']:7.2f} ms, "
                  f"p99 {v['before']['p99']:7.2f} -> {v['now']['p99']:7.2f} ms", file=sys.stderr)
    print(json.dumps(out))
    return 0 if out["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
