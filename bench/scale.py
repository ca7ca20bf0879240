"""Scale: MovieLens-shaped synthetic ratings at 1M, 25M and 100M, through the real ingest.

Each size runs as child processes, one after the other, so that each one's peak RSS is its
own: `generate` (synthetic.generate + write_csv, cached on disk, not timed as ingest), the
default ingest (`movierec ingest --data DIR`, as a person runs it), `ready` (open the store and
give one default answer) and `query` (random people against every model, the default first,
the models taking turns over slices of the people; the tutorial mode's tie-heavy queries; the
floor).

    python -m bench.scale generate --size 25m --out DIR
    movierec ingest --dataset synthetic-25m --data DIR     (QDRANT_PATH=STORE)
    python -m bench.scale ready --store STORE
    python -m bench.scale query --store STORE [--n 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench.measure import ROOT, peak_rss_mb, run_json
from harness.latency import interleaved_over, over
from harness.queries import popular_pool, random_people

# users, movies, ratings: ML-1M's shape, ML-25M's shape, and 100M ratings from 1M users.
SIZES = {
    "1m": (6_040, 3_706, 1_000_209),
    "25m": (162_541, 59_047, 25_000_095),
    "100m": (1_000_000, 59_047, 100_000_000),
}
SEED = 0
# The default ingest learns the item model; a size it cannot finish in this long is reported.
INGEST_TIMEOUT = 1800


def _generator_stamp(size: str) -> str:
    source = (ROOT / "src" / "movierec" / "synthetic.py").read_bytes()
    return json.dumps({"shape": SIZES[size], "seed": SEED,
                       "generator": hashlib.sha256(source).hexdigest()[:16]})


def shape_of(user_ids: np.ndarray, movie_ids: np.ndarray) -> dict:
    """The numbers that make ratings 'MovieLens-shaped' (bench prints ML-1M's beside them)."""
    per_user = np.bincount(user_ids)
    per_user = per_user[per_user > 0]
    per_movie = np.sort(np.bincount(movie_ids))[::-1]
    per_movie = per_movie[per_movie > 0]
    n = int(user_ids.size)
    return {
        "ratings": n, "users": int(per_user.size), "movies": int(per_movie.size),
        "per_user_min": int(per_user.min()), "per_user_median": float(np.median(per_user)),
        "per_user_mean": float(per_user.mean()), "per_user_p99": float(np.percentile(per_user, 99)),
        "per_user_max": int(per_user.max()),
        "top_movie_users_share": float(per_movie[0] / per_user.size),
        "top10_share": float(per_movie[:10].sum() / n),
        "top100_share": float(per_movie[:100].sum() / n),
        "per_movie_median": float(np.median(per_movie)),
    }


def cmd_generate(args) -> dict:
    from movierec import synthetic

    out = Path(args.out)
    stamp = out / ".stamp"
    if stamp.exists() and stamp.read_text() == _generator_stamp(args.size) \
            and (out / "shape.json").exists():
        return {"cached": True, **json.loads((out / "shape.json").read_text())}
    shutil.rmtree(out, ignore_errors=True)
    users, movies, ratings = SIZES[args.size]
    start = time.perf_counter()
    data = synthetic.generate(users, movies, ratings, seed=SEED, name=f"synthetic-{args.size}")
    generated = time.perf_counter()
    synthetic.write_csv(data, out)
    written = time.perf_counter()
    result = {"generate_s": generated - start, "write_csv_s": written - generated,
              "csv_bytes": (out / "ratings.csv").stat().st_size,
              "shape": shape_of(data.user_ids, data.movie_ids), "peak_rss_mb": peak_rss_mb()}
    (out / "shape.json").write_text(json.dumps(result))
    stamp.write_text(_generator_stamp(args.size))
    return {"cached": False, **result}


def _settings(store: Path):
    from movierec.config import Settings

    return Settings(qdrant_url=None, qdrant_api_key=None, qdrant_path=store, movielens_dir=None)


def _du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())  # on disk


def cmd_query(args) -> dict:
    """Random people against every model the store offers (the default first), the tutorial
    mode's hard cases (one popular movie alone: thousands of users tie), and the floor. The
    engine alone and the models take turns over 10 slices of the people (harness.latency.
    interleaved_over), as in the ml-1m answers: whichever went first alone paid for the store's
    first touch of its pages and for any slow minute (25M: the default's p99 10.6 ms, the same
    model's next in the same run 8.0 ms)."""
    from bench.floor import Floor
    from movierec import recommend
    from movierec.store import open_reader
    from movierec.vectors import query_vector

    start = time.perf_counter()
    reader = open_reader(_settings(Path(args.store)))
    catalog = reader.catalog()
    opened = time.perf_counter() - start
    people = random_people(popular_pool(catalog), args.n, np.random.default_rng(11))
    top = catalog.most_rated(11)
    heavy = {m.movie_id: (1.0 if k % 2 == 0 else -1.0) for k, m in enumerate(top)}
    heavies = [heavy] * max(50, args.n // 10)
    single = [{m.movie_id: 1.0} for m in catalog.most_rated(50)]
    default = recommend.default_model(reader)
    names = recommend.available_models(reader)
    results: dict = {"open_s": opened, "n": len(people), "default_model": default,
                     "models": names}

    def answer(model):
        return lambda q: recommend.recommend(reader, q, limit=10, model=model)

    queries = {id(q): query_vector(q) for q in people}
    fns = {"engine": lambda q: reader.similar_users(queries[id(q)], 25), "default": answer(None),
           **{name: answer(name) for name in names}}
    timed = interleaved_over(fns, people)
    results["engine_ms"] = timed.pop("engine").summary()
    results["by_model_ms"] = {label: samples.summary() for label, samples in timed.items()}
    tutorial = answer("tutorial")
    results["single_movie_ms"] = over(tutorial, single).summary()
    results["heavy_query_ms"] = over(tutorial, heavies).summary()
    results["rss_after_queries_mb"] = peak_rss_mb()
    vectors = reader._open.vectors if getattr(reader, "_open", None) else None  # noqa: SLF001
    if vectors is not None:
        t = time.perf_counter()
        floor = Floor(vectors)
        results["floor_build_s"] = time.perf_counter() - t

        def floor_query(q):
            idx = np.array(sorted(q))
            return floor.recommend(idx, np.array([q[m] for m in idx]))

        results["floor_ms"] = over(floor_query, people).summary()
        results["floor_heavy_ms"] = over(floor_query, heavies).summary()
    reader.close()
    results["peak_rss_mb"] = peak_rss_mb()
    return results


def _ingest(data: Path, store: Path) -> dict:
    """The default ingest (`movierec ingest`, item model included) in its own process, then
    opening the store and answering one default request in another ("ready to query")."""
    from bench.ml1m import ingest_process

    try:
        done = ingest_process(data, store, dataset=data.name, timeout=INGEST_TIMEOUT)
    except RuntimeError as exc:
        return {"failed": str(exc)[-500:]}
    ready = run_json(["-m", "bench.scale", "ready", "--store", str(store)])
    return {**done, "ready_s": ready["ready_s"], "store_bytes": _du(store),
            "total_s": done["total"] + ready["ready_s"]}


def cmd_ready(args) -> dict:
    from movierec import recommend
    from movierec.store import open_reader

    start = time.perf_counter()
    with open_reader(_settings(Path(args.store))) as reader:
        top = reader.catalog().most_rated(11)
        recommend.recommend(reader, {m.movie_id: 1.0 for m in top}, limit=10)
    return {"ready_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def run(sizes: list[str], workdir: Path, n_queries: int, log=print) -> dict:
    """Every size in turn (never two at once: 2 cores, and 100M needs most of the memory)."""
    out = {}
    for size in sizes:
        data = workdir / f"synthetic-{size}"
        store = workdir / f"store-{size}"
        log(f"scale {size}: generating (cached across runs)")
        generated = run_json(["-m", "bench.scale", "generate", "--size", size, "--out", str(data)])
        log(f"scale {size}: the default ingest (movierec ingest)")
        ingested = _ingest(data, store)
        if "failed" in ingested:
            log(f"scale {size}: the default ingest failed; the store without the item model "
                "answers the queries")
            ingested["without_item_model"] = _without_item_model(data, store)
        log(f"scale {size}: {ingested.get('total_s', float('nan')):.1f}s, peak "
            f"{ingested.get('peak_rss_mb', float('nan')):.0f} MiB; querying")
        queried = run_json(["-m", "bench.scale", "query", "--store", str(store),
                            "--n", str(n_queries)])
        shutil.rmtree(store, ignore_errors=True)
        out[size] = {"shape": SIZES[size], "generate": generated, "ingest": ingested,
                     "query": queried}
    return out


def _without_item_model(data: Path, store: Path) -> dict:
    from bench.ml1m import ingest_process

    return ingest_process(data, store, "--no-item-model", dataset=data.name, timeout=3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--size", choices=SIZES, required=True)
    g.add_argument("--out", required=True)
    r = sub.add_parser("ready")
    r.add_argument("--store", required=True)
    q = sub.add_parser("query")
    q.add_argument("--store", required=True)
    q.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)
    command = {"generate": cmd_generate, "ready": cmd_ready, "query": cmd_query}[args.command]
    result = command(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
