"""MovieLens-1M in one process: the tutorial's pipeline, movierec, and the numpy/scipy floor,
side by side, interleaved round by round so that machine noise hits all of them alike."""

from __future__ import annotations

import gc
import inspect
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench import proposals
from bench import tutorial_baseline as tb
from bench.floor import Floor
from bench.measure import Samples, repeat
from movierec import ingest, movielens, recommend
from movierec.config import Settings
from movierec.store import open_reader
from movierec.vectors import RatingStats, user_vectors

LIKES = [2571, 329, 260, 1, 356, 2116]
DISLIKES = [2288, 1721, 296, 1291, 1036]
MY_RATINGS = {m: 1 for m in LIKES} | {m: -1 for m in DISLIKES}
REFERENCE_TOP5 = [1196, 1210, 1197, 1198, 2762]


# recommend.recommend grew a `model` argument (its default model may not be the tutorial's);
# looked up once: inspect.signature costs 14 us, a third of a store query.
_HAS_MODEL = "model" in inspect.signature(recommend.recommend).parameters


def tutorial_recommend(store, ratings, **kwargs):
    """recommend.recommend in the tutorial's mode (the library's default model may differ)."""
    if _HAS_MODEL:
        kwargs.setdefault("model", "tutorial")
    return recommend.recommend(store, ratings, **kwargs)


def settings_for(path: Path) -> Settings:
    return Settings(qdrant_url=None, qdrant_api_key=None, qdrant_path=path, movielens_dir=None)


def ingest_movierec(data: Path, store: Path) -> dict:
    """The project's ingest into a fresh embedded store, then open it and answer one query."""
    shutil.rmtree(store, ignore_errors=True)
    settings = settings_for(store)
    start = time.perf_counter()
    report = ingest.run(settings, "ml-1m", data, progress=False)
    written = time.perf_counter()
    reader = open_reader(settings)
    answer = tutorial_recommend(reader, recommend.tutorial_query(LIKES, DISLIKES))
    ready = time.perf_counter()
    reader.close()
    assert [r.movie.movie_id for r in answer.items] == REFERENCE_TOP5
    s = report.seconds
    return {"parse": s["parse"], "vectors": s["vectors"], "write": s["write"],
            "ready": ready - written, "total": ready - start}


def ingest_tutorial(data: Path):
    """The tutorial's pipeline as written, up to its first answer."""
    start = time.perf_counter()
    users, movies, ratings = tb.load(data)
    parsed = time.perf_counter()
    vectors = tb.user_sparse_vectors(ratings)
    built = time.perf_counter()
    client = tb.QdrantClient(":memory:")
    tb.upload(client, users, vectors)
    written = time.perf_counter()
    top = tb.recommend(client, movies, MY_RATINGS)
    ready = time.perf_counter()
    assert top[0][0].startswith("Star Wars: Episode V")
    times = {"parse": parsed - start, "vectors": built - parsed, "write": written - built,
             "ready": ready - written, "total": ready - start}
    return times, client, movies


def ingest_floor(data: Path):
    """Parse (the project's parser) + sparse matrices in memory: no store at all."""
    start = time.perf_counter()
    dataset = movielens.load(data, "ml-1m")
    parsed = time.perf_counter()
    vectors = user_vectors(dataset.user_ids, dataset.movie_ids, dataset.ratings,
                           RatingStats.of(dataset.ratings))
    floor = Floor(vectors)
    built = time.perf_counter()
    best, _ = floor.recommend(np.array(sorted(LIKES + DISLIKES)),
                              np.array([MY_RATINGS[m] for m in sorted(LIKES + DISLIKES)]))
    ready = time.perf_counter()
    assert best.tolist() == REFERENCE_TOP5
    return {"parse": parsed - start, "vectors": built - parsed, "write": 0.0,
            "ready": ready - built, "total": ready - start}, floor


def _median(runs: list[dict]) -> dict:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def run_ingest(data: Path, workdir: Path, rounds: int, tmpfs: bool = True) -> dict:
    """`rounds` interleaved rounds of the three pipelines; medians in seconds."""
    runs: dict[str, list[dict]] = {"tutorial": [], "movierec": [], "floor": []}
    if tmpfs and Path("/dev/shm").is_dir():
        runs["movierec_tmpfs"] = []
    for _ in range(rounds):
        gc.collect()
        times, _, _ = ingest_tutorial(data)
        runs["tutorial"].append(times)
        gc.collect()
        runs["movierec"].append(ingest_movierec(data, workdir / "ingest-store"))
        gc.collect()
        times, _ = ingest_floor(data)
        runs["floor"].append(times)
        if "movierec_tmpfs" in runs:
            gc.collect()
            shm = Path("/dev/shm") / f"movierec-bench-{workdir.name}"
            try:
                runs["movierec_tmpfs"].append(ingest_movierec(data, shm))
            finally:
                shutil.rmtree(shm, ignore_errors=True)
    medians = {name: _median(r) for name, r in runs.items()}
    return {"rounds": rounds, "median_s": medians, "runs": runs,
            "speedup_vs_tutorial": medians["tutorial"]["total"] / medians["movierec"]["total"]}


def _random_queries(reader, count: int, seed: int = 7) -> list[dict[int, float]]:
    """Like a person's ratings: 1 to 15 of the 1,000 most rated movies, liked or disliked."""
    rng = np.random.default_rng(seed)
    catalog = reader.catalog()
    counts = np.array([m.rating_count for m in catalog.take(catalog.ids)])
    pool = catalog.ids[np.argsort(-counts, kind="stable")[:1000]]
    queries = []
    for _ in range(count):
        n = int(rng.integers(1, 16))
        picked = rng.choice(pool, size=n, replace=False)
        signs = rng.choice([-1.0, 1.0], size=n)
        queries.append({int(m): float(s) for m, s in zip(picked, signs)})
    return queries


def run_recommend(data: Path, workdir: Path, n: int, n_tutorial: int, n_random: int) -> dict:
    """One recommendation in-process: the tutorial's, movierec's (as it is, and with the
    proposed recommend.py), and the floor; the tutorial query and random ones."""
    store = workdir / "ingest-store"
    if not (store / "CURRENT").exists():
        ingest_movierec(data, store)
    _, client, movies = ingest_tutorial(data)
    _, floor = ingest_floor(data)
    reader = open_reader(settings_for(store))
    tutorial_query = recommend.tutorial_query(LIKES, DISLIKES)
    q_idx = np.array(sorted(tutorial_query))
    q_val = np.array([tutorial_query[m] for m in q_idx])
    out: dict = {}
    try:
        query = recommend.validate_ratings(reader, tutorial_query, "unit")
        fetched = reader.similar_users(query, 25)
        found = recommend.similar_users(reader, query, 20)
        stages = {
            "validate (catalog check, query vector)":
                lambda: recommend.validate_ratings(reader, tutorial_query, "unit"),
            "store.similar_users: Qdrant query + vectors (25 users)":
                lambda: reader.similar_users(query, 25),
            "recommend.similar_users (+ exact re-scoring, ties)":
                lambda: recommend.similar_users(reader, query, 20),
        }
        if hasattr(recommend, "_exact_scores"):
            stages["recommend._exact_scores (25 users)"] = \
                lambda: recommend._exact_scores(query, fetched, None)
        if hasattr(recommend, "_aggregate"):
            stages["recommend._aggregate (20 users)"] = lambda: recommend._aggregate(found)
        stages["recommend (the whole call)"] = lambda: tutorial_recommend(reader, tutorial_query)
        out["stages_us"] = {name: repeat(fn, n).summary(1e6) for name, fn in stages.items()}
        tutorial = repeat(lambda: tb.recommend(client, movies, MY_RATINGS), n_tutorial, warmup=1)
        ours = repeat(lambda: tutorial_recommend(reader, tutorial_query), n)
        with proposals.patched():
            proposed = repeat(lambda: tutorial_recommend(reader, tutorial_query), n)
            top = [r.movie.movie_id for r in tutorial_recommend(reader, tutorial_query).items]
        assert top == REFERENCE_TOP5
        floor_inv = repeat(lambda: floor.recommend(q_idx, q_val), n)
        floor_brute = repeat(lambda: floor.recommend(q_idx, q_val, inverted=False), n)
        out["tutorial_query_ms"] = {
            "tutorial": tutorial.summary(), "movierec": ours.summary(),
            "movierec_with_proposals": proposed.summary(),
            "floor_inverted": floor_inv.summary(), "floor_brute": floor_brute.summary(),
        }
        default = _default_model(reader)
        if default != "tutorial":
            out["default_model"] = default
            out["tutorial_query_ms"]["movierec_default_model"] = repeat(
                lambda: recommend.recommend(reader, tutorial_query), n).summary()
        out["speedup_vs_tutorial"] = tutorial.p50 / ours.p50
        out["speedup_with_proposals"] = tutorial.p50 / proposed.p50
        # Random queries: the spread a service sees (p99 over many different queries).
        queries = _random_queries(reader, n_random)
        runners = {
            "movierec": (lambda q: tutorial_recommend(reader, q), _nothing),
            "movierec_with_proposals": (lambda q: tutorial_recommend(reader, q),
                                        proposals.patched),
            "floor_inverted": (lambda q: floor.recommend(*_arrays(q)), _nothing),
        }
        if default != "tutorial":
            runners["movierec_default_model"] = (lambda q: recommend.recommend(reader, q),
                                                 _nothing)
            runners["movierec_default_model_with_proposals"] = (
                lambda q: recommend.recommend(reader, q), proposals.patched)
        for name, (fn, context) in runners.items():
            samples = Samples()
            with context():
                for q in queries[:20]:
                    fn(q)
                for q in queries:
                    start = time.perf_counter()
                    fn(q)
                    samples.add(time.perf_counter() - start)
            out.setdefault("random_queries_ms", {})[name] = samples.summary()
        out["proposals_identical"] = _proposals_identical(reader, queries)
    finally:
        reader.close()
    return out


def _arrays(q: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array(sorted(q))
    return idx, np.array([q[m] for m in idx])


def _default_model(reader) -> str:
    default = getattr(recommend, "default_model", None)
    return default(reader) if default else "tutorial"


@contextmanager
def _nothing():
    yield


def _answer(answer) -> list:
    return [(r.movie.movie_id, r.score, getattr(r, "why", None)) for r in answer.items]


def _proposals_identical(reader, queries) -> bool:
    """The proposals change no answer: same movies, bit-identical scores, same explanations,
    for the tutorial mode and the default model, on every query."""
    models = [lambda q: tutorial_recommend(reader, q)]
    if _default_model(reader) != "tutorial":
        models.append(lambda q: recommend.recommend(reader, q))
    for fn in models:
        before = [_answer(fn(q)) for q in queries]
        with proposals.patched():
            after = [_answer(fn(q)) for q in queries]
        if before != after:
            return False
    return True


def profiles(data: Path, workdir: Path, out: Path) -> list[Path]:
    """pyinstrument text profiles of one ingest and of 2,000 recommendations."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    profiler = Profiler(interval=0.0005)
    profiler.start()
    ingest_movierec(data, workdir / "profile-store")
    profiler.stop()
    path = out / "ingest-ml1m.txt"
    path.write_text(profiler.output_text(unicode=False, color=False))
    written.append(path)
    reader = open_reader(settings_for(workdir / "profile-store"))
    query = recommend.tutorial_query(LIKES, DISLIKES)
    for _ in range(50):
        tutorial_recommend(reader, query)
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(2000):
        tutorial_recommend(reader, query)
    profiler.stop()
    reader.close()
    path = out / "recommend-ml1m.txt"
    path.write_text(profiler.output_text(unicode=False, color=False))
    written.append(path)
    shutil.rmtree(workdir / "profile-store", ignore_errors=True)
    return written
