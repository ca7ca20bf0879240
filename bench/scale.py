"""Scale: MovieLens-shaped synthetic ratings at 1M, 25M and 100M, through the real ingest.

Each size runs as three child processes, one after the other, so that each one's peak RSS is
its own: `generate` (synthetic.generate + write_csv, cached on disk, not timed as ingest),
`ingest` (the project's ingest of the csv files into a fresh embedded store, then open it and
answer one query: "ready to query") and `query` (random queries: the engine, the library,
the proposals, the floor).

    python -m bench.scale generate --size 25m --out DIR
    python -m bench.scale ingest --data DIR --store DIR
    python -m bench.scale query --store DIR [--n 2000]
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

from bench.measure import ROOT, Samples, peak_rss_mb, run_json

# users, movies, ratings: ML-1M's shape, ML-25M's shape, and 100M ratings from 1M users.
SIZES = {
    "1m": (6_040, 3_706, 1_000_209),
    "25m": (162_541, 59_047, 25_000_095),
    "100m": (1_000_000, 59_047, 100_000_000),
}
SEED = 0


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


def cmd_ingest(args) -> dict:
    from bench.ml1m import tutorial_recommend
    from movierec import ingest
    from movierec.store import open_reader

    store = Path(args.store)
    shutil.rmtree(store, ignore_errors=True)
    settings = _settings(store)
    start = time.perf_counter()
    report = ingest.run(settings, "synthetic", Path(args.data), progress=False)
    written = time.perf_counter()
    reader = open_reader(settings)
    catalog = reader.catalog()
    top = catalog.most_rated(11)
    query = {m.movie_id: (1.0 if k % 2 == 0 else -1.0) for k, m in enumerate(top)}
    tutorial_recommend(reader, query)
    ready = time.perf_counter()
    reader.close()
    return {"seconds": report.seconds, "ready_s": ready - written, "total_s": ready - start,
            "users": report.users, "movies": report.movies, "ratings": report.ratings,
            "peak_rss_mb": peak_rss_mb(), "store_bytes": _du(store)}


def _queries(reader, count: int, seed: int = 11) -> list[dict[int, float]]:
    rng = np.random.default_rng(seed)
    pool = np.array([m.movie_id for m in reader.catalog().most_rated(1000)])
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 16))
        picked = rng.choice(pool, size=n, replace=False)
        signs = rng.choice([-1.0, 1.0], size=n)
        out.append({int(m): float(s) for m, s in zip(picked, signs)})
    return out


def cmd_query(args) -> dict:
    from bench import proposals
    from bench.floor import Floor
    from bench.ml1m import _default_model, tutorial_recommend
    from movierec import recommend
    from movierec.store import open_reader

    start = time.perf_counter()
    reader = open_reader(_settings(Path(args.store)))
    reader.catalog()
    opened = time.perf_counter() - start
    queries = _queries(reader, args.n)
    top = reader.catalog().most_rated(11)
    heavy = {m.movie_id: (1.0 if k % 2 == 0 else -1.0) for k, m in enumerate(top)}
    heavies = [heavy] * max(50, args.n // 10)
    results: dict = {"open_s": opened, "n": len(queries)}

    def measure(fn, qs) -> dict:
        for q in qs[:20]:
            fn(q)
        samples = Samples()
        for q in qs:
            t = time.perf_counter()
            fn(q)
            samples.add(time.perf_counter() - t)
        return samples.summary()

    validated = {id(q): recommend.validate_ratings(reader, q, "unit") for q in queries}
    results["engine_ms"] = measure(lambda q: reader.similar_users(validated[id(q)], 25), queries)
    results["recommend_ms"] = measure(lambda q: tutorial_recommend(reader, q), queries)
    results["heavy_query_ms"] = measure(lambda q: tutorial_recommend(reader, q), heavies)
    single = [{m.movie_id: 1.0} for m in reader.catalog().most_rated(50)]
    results["single_movie_ms"] = measure(lambda q: tutorial_recommend(reader, q), single)
    with proposals.patched():
        results["recommend_proposed_ms"] = measure(lambda q: tutorial_recommend(reader, q),
                                                   queries)
        results["single_movie_proposed_ms"] = measure(lambda q: tutorial_recommend(reader, q),
                                                      single)
    default = _default_model(reader)
    if default != "tutorial":
        results["default_model"] = default
        results["default_model_ms"] = measure(lambda q: recommend.recommend(reader, q), queries)
        with proposals.patched():
            results["default_model_proposed_ms"] = measure(
                lambda q: recommend.recommend(reader, q), queries)
    results["rss_after_queries_mb"] = peak_rss_mb()
    vectors = reader._open.vectors if getattr(reader, "_open", None) else None  # noqa: SLF001
    if vectors is not None:
        t = time.perf_counter()
        floor = Floor(vectors)
        results["floor_build_s"] = time.perf_counter() - t

        def floor_query(q):
            idx = np.array(sorted(q))
            return floor.recommend(idx, np.array([q[m] for m in idx]))

        results["floor_ms"] = measure(floor_query, queries)
        results["floor_heavy_ms"] = measure(floor_query, heavies)
    reader.close()
    results["peak_rss_mb"] = peak_rss_mb()
    return results


def run(sizes: list[str], workdir: Path, n_queries: int, log=print) -> dict:
    """Every size in turn (never two at once: 2 cores, and 100M needs most of the memory)."""
    out = {}
    for size in sizes:
        data = workdir / f"synthetic-{size}"
        store = workdir / f"store-{size}"
        log(f"scale {size}: generating (cached across runs)")
        generated = run_json(["-m", "bench.scale", "generate", "--size", size, "--out", str(data)])
        log(f"scale {size}: ingesting")
        ingested = run_json(["-m", "bench.scale", "ingest", "--data", str(data),
                             "--store", str(store)])
        log(f"scale {size}: {ingested['total_s']:.1f}s, peak {ingested['peak_rss_mb']:.0f} MiB;"
            " querying")
        queried = run_json(["-m", "bench.scale", "query", "--store", str(store),
                            "--n", str(n_queries)])
        shutil.rmtree(store, ignore_errors=True)
        out[size] = {"shape": SIZES[size], "generate": generated, "ingest": ingested,
                     "query": queried}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--size", choices=SIZES, required=True)
    g.add_argument("--out", required=True)
    i = sub.add_parser("ingest")
    i.add_argument("--data", required=True)
    i.add_argument("--store", required=True)
    q = sub.add_parser("query")
    q.add_argument("--store", required=True)
    q.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)
    command = {"generate": cmd_generate, "ingest": cmd_ingest, "query": cmd_query}[args.command]
    result = command(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
