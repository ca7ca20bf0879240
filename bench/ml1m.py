"""MovieLens-1M: the default path first -- `movierec ingest --dataset ml-1m` as a person runs
it, and the answer a request without options gets -- then every served model, with the
tutorial's own pipeline and the numpy/scipy floor beside them, interleaved round by round so
that machine noise hits all of them alike."""

from __future__ import annotations

import cProfile
import gc
import importlib
import pkgutil
import pstats
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench import tutorial_baseline as tb
from bench.floor import Floor
from bench.measure import ROOT, run_process
from harness.latency import interleaved, interleaved_over, over, repeat
from harness.queries import TUTORIAL_RATINGS, popular_pool, random_people
from movierec import ingest, movielens, recommend
from movierec.models import REGISTRY
from movierec.config import Settings
from movierec.store import open_reader, open_writer
from movierec.vectors import RatingStats, query_vector, user_vectors

REFERENCE_TOP5 = [1196, 1210, 1197, 1198, 2762]
DEFAULT = "default"  # the label of an answer asked without naming a model
NEW_PERSON_RATINGS = (1, 5, 20)


def settings_for(path: Path) -> Settings:
    return Settings(qdrant_url=None, qdrant_api_key=None, qdrant_path=path, movielens_dir=None)


def movierec_command() -> str:
    return str(Path(sys.executable).parent / "movierec")


# --- ingest ---------------------------------------------------------------------------------

_TIMINGS = re.compile(r"(\w+) ([\d.]+)s")


def ingest_process(data: Path, store: Path, *flags: str, dataset: str = "ml-1m",
                   timeout: float = 3600) -> dict:
    """`movierec ingest --dataset ml-1m` in its own process into a fresh embedded store: wall
    time from start to exit (imports and the interpreter included), its peak RSS, and the
    stages it reports itself."""
    shutil.rmtree(store, ignore_errors=True)
    done = run_process([movierec_command(), "ingest", "--dataset", dataset, "--data", str(data),
                        *flags],
                       env={"QDRANT_PATH": str(store), "QDRANT_URL": "", "MOVIELENS_DIR": ""},
                       timeout=timeout)
    if done.returncode != 0:
        what = " ".join(["movierec ingest", *flags])
        why = (f"killed after its {timeout:g} s limit" if done.returncode == -9
               else f"exit {done.returncode}: {done.stderr.strip()[-2000:]}")
        raise RuntimeError(f"{what} failed ({why})")
    reported = done.stdout.rsplit("(version", 1)[-1]
    stages = {k: float(v) for k, v in _TIMINGS.findall(reported)}
    return {"total": done.seconds, "peak_rss_mb": done.peak_rss_mb,
            "reported": stages, "startup": done.seconds - stages.get("total", 0.0)}


def learners() -> list[tuple[str, object]]:
    """(model, its trainer) for each registered model that learns at ingest: what `movierec
    ingest` without --no-item-model runs besides building the user vectors."""
    out = []
    for model in REGISTRY:
        if model.trainer:
            module, _, function = model.trainer.partition(":")
            out.append((model.name, getattr(importlib.import_module(module), function)))
    return out


def ingest_stages(data: Path, store: Path) -> dict:
    """The default ingest in this process, stage by stage: parse, vectors (validation,
    z-scores, sparse vectors, payloads: ingest.stage), learning each learned model (what
    ingest.prepare adds to it, timed model by model), writing, and opening the store to give
    the first default answer ("ready"). The stages run here one after the other; `movierec
    ingest` (ingest_process) learns while it writes the users."""
    shutil.rmtree(store, ignore_errors=True)
    settings = settings_for(store)
    learners()  # the trainers imported (scipy) before the clock starts, as a warm process has
    start = time.perf_counter()
    dataset = movielens.load(data, "ml-1m")
    parsed = time.perf_counter()
    prepared, staged = ingest.stage(dataset)
    built = time.perf_counter()
    learning, learned = {}, []
    for model in staged.models:
        t = time.perf_counter()
        learned += ingest.Learning(dataset, staged.stats, [model]).learn()
        learning[f"learning {model.name}"] = time.perf_counter() - t
    ingest.Learning.apply(prepared, learned)
    del dataset, staged
    t = time.perf_counter()
    ingest.write(open_writer(settings), prepared, progress=False)
    written = time.perf_counter()
    with open_reader(settings) as reader:
        recommend.recommend(reader, TUTORIAL_RATINGS, limit=10)
    ready = time.perf_counter()
    return {"parse": parsed - start, "vectors": built - parsed, **learning,
            "learning": sum(learning.values()), "write": written - t, "ready": ready - written,
            "total": (parsed - start) + (built - parsed) + sum(learning.values()) + (ready - t)}


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
    top = tb.recommend(client, movies, TUTORIAL_RATINGS)
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
    best, _ = floor.recommend(*_arrays(TUTORIAL_RATINGS))
    ready = time.perf_counter()
    assert best.tolist() == REFERENCE_TOP5
    return {"parse": parsed - start, "vectors": built - parsed, "write": 0.0,
            "ready": ready - built, "total": ready - start}, floor


def _median(runs: list[dict]) -> dict:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]
            if isinstance(runs[0][k], float)}


def run_ingest(data: Path, store: Path, rounds: int) -> dict:
    """`rounds` interleaved rounds: the tutorial's pipeline, the default ingest in-process stage
    by stage, the ingest without the item model, the default ingest as a process, the floor.
    `store` holds the last default ingest's store at the end."""
    runs: dict[str, list[dict]] = {"tutorial": [], "default": [], "default_stages": [],
                                   "no_item_model": [], "floor": []}
    for _ in range(rounds):
        gc.collect()
        runs["tutorial"].append(ingest_tutorial(data)[0])
        gc.collect()
        runs["default_stages"].append(ingest_stages(data, store))
        gc.collect()
        runs["no_item_model"].append(ingest_process(data, store, "--no-item-model"))
        gc.collect()
        runs["default"].append(ingest_process(data, store))
        gc.collect()
        runs["floor"].append(ingest_floor(data)[0])
    medians = {name: _median(r) for name, r in runs.items()}
    medians["default"]["reported"] = _median([r["reported"] for r in runs["default"]])
    return {"rounds": rounds, "median_s": medians, "runs": runs,
            "speedup_vs_tutorial": medians["tutorial"]["total"] / medians["default"]["total"]}


# --- answers ----------------------------------------------------------------------------------

def _arrays(q: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    idx = np.array(sorted(q))
    return idx, np.array([q[m] for m in idx])


def _answer(reader, model: str | None):
    """One answer as the service gives it: limit 10, the model named or (None) the default."""
    return lambda ratings: recommend.recommend(reader, ratings, limit=10, model=model)


_EXPLAINING = re.compile(r"^(_explained|explain|explanation|pulled_up)")


# The store's searches, timed beside the explanations: the engine and its answer as arrays.
SEARCH_STEPS = {"similar_movie_ids": "item-vector searches",
                "similar_movie_ids_batch": "item-vector searches",
                "similar_movies": "item-vector searches",
                "similar_users_block": "similar-users search"}


def explanation_share(fn, ratings, reader=None, calls: int = 300, rounds: int = 10) -> dict:
    """The share of an answer's time spent explaining it, two ways, and (with `reader`, the
    store `fn` answers from) the share of its searches.

    share (the verdict): wall time. Every module-level function of movierec.models whose name is
    `_explained`, `pulled_up` or starts with explain/explanation (blend's `_explained`: the
    liked movies' weights in the answers' vectors, the ones that pulled each answer up, every
    `why`; the item model's `explanations`) is wrapped in a timer for the run; the time inside
    the outermost of them, over `rounds` x `calls` answers, against the answers' own (the
    median of the rounds). The reader's search methods get timers the same way (`steps`). Two
    timer reads per call (~0.1 us) are all this adds.

    cprofile_share: the explaining step's cumulative time under cProfile against `recommend`'s.
    cProfile adds a fixed cost to every Python call, so it weighs Python-heavy steps (the
    explanations) above steps spent in C (the Qdrant searches): a few points above the wall
    share, which is why it is no longer the verdict."""
    inside: dict[str, list] = {}  # step: [seconds inside, depth of its calls now running]

    def timed(original, step: str):
        spent = inside.setdefault(step, [0.0, 0])

        def wrapper(*args, **kwargs):
            spent[1] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[1] -= 1
                if not spent[1]:
                    spent[0] += time.perf_counter() - start
        return wrapper

    wrapped: dict[tuple[object, str], object] = {}
    import movierec.models as models_package
    for info in sorted(pkgutil.iter_modules(models_package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"movierec.models.{info.name}")
        for name, value in vars(module).items():
            if _EXPLAINING.match(name) and callable(value) and not isinstance(value, type):
                wrapped[(module, name)] = value
                setattr(module, name, timed(value, "explanations"))
    searches = [name for name in SEARCH_STEPS if reader is not None and hasattr(reader, name)]
    for name in searches:
        setattr(reader, name, timed(getattr(reader, name), SEARCH_STEPS[name]))
    try:
        for _ in range(20):
            fn(ratings)
        shares: dict[str, list[float]] = {step: [] for step in inside}
        for _ in range(rounds):
            for spent in inside.values():
                spent[0] = 0.0
            start = time.perf_counter()
            for _ in range(calls):
                fn(ratings)
            whole = time.perf_counter() - start
            for step, spent in inside.items():
                shares[step].append(spent[0] / whole)
    finally:
        for (module, name), value in wrapped.items():
            setattr(module, name, value)
        for name in searches:
            delattr(reader, name)  # the class's method again
    functions = sorted({name for _, name in wrapped})
    steps = {step: float(np.median(v)) for step, v in shares.items() if step != "explanations"}
    return {"share": float(np.median(shares["explanations"])), "shares": shares["explanations"],
            "calls": calls * rounds, "functions": functions, "steps": steps,
            "cprofile_share": _cprofile_share(fn, ratings, calls)}


def _cprofile_share(fn, ratings, calls: int) -> float:
    profiler = cProfile.Profile()
    for _ in range(20):
        fn(ratings)
    profiler.enable()
    for _ in range(calls):
        fn(ratings)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    whole = 0.0
    steps: dict[str, float] = {}
    for (path, _, name), (_, _, _, cumulative, _) in stats.items():
        if name == "recommend" and path.endswith("recommend.py"):
            whole = max(whole, cumulative)
        elif "movierec" in path and (_EXPLAINING.match(name) or name == "movie_vectors"):
            steps[name] = steps.get(name, 0.0) + cumulative
    # `_explained` holds the others: counted once.
    explain = steps["_explained"] if "_explained" in steps else sum(steps.values())
    return explain / whole if whole else float("nan")


def run_answers(data: Path, store: Path, default: str, names: list[str], n: int,
                n_tutorial: int, n_random: int, n_people: int) -> dict:
    """Every served model in-process on the default ingest's store: the tutorial's query and
    random people (1-15 ratings), the default answer first; the default answer for new people
    with 1, 5 and 20 ratings; the tutorial's own pipeline and the floor beside them."""
    _, client, movies = ingest_tutorial(data)
    _, floor = ingest_floor(data)
    out: dict = {"default_model": default, "models": names}
    with open_reader(settings_for(store)) as reader:
        got = recommend.recommend(reader, TUTORIAL_RATINGS, limit=5)
        assert got.model == default, f"the library's default is {got.model}, GET /models {default}"
        tutorial = recommend.recommend(reader, TUTORIAL_RATINGS, limit=5, model="tutorial")
        assert [r.movie.movie_id for r in tutorial.items] == REFERENCE_TOP5
        answers = {DEFAULT: _answer(reader, None)} | {m: _answer(reader, m) for m in names}
        pool = popular_pool(reader.catalog())
        people = random_people(pool, n_random, np.random.default_rng(7))
        # Every model, the floor and the engine take turns (10 rounds each): their ratios come
        # from the same minutes. The tutorial's own pipeline (0.5 s a call) is timed apart.
        q_idx, q_val = _arrays(TUTORIAL_RATINGS)
        query = query_vector(TUTORIAL_RATINGS)
        tq_fns = {label: (lambda fn=fn: fn(TUTORIAL_RATINGS)) for label, fn in answers.items()}
        tq_fns["floor inverted"] = lambda: floor.recommend(q_idx, q_val)
        tq_fns["floor brute"] = lambda: floor.recommend(q_idx, q_val, inverted=False)
        tq_fns["engine"] = lambda: reader.similar_users(query, 25)
        timed = interleaved(tq_fns, n)
        tq = {label: timed[label].summary() for label in answers}
        tq["tutorial pipeline"] = repeat(lambda: tb.recommend(client, movies, TUTORIAL_RATINGS),
                                         n_tutorial, warmup=1).summary()
        for label in ("floor inverted", "floor brute", "engine"):
            tq[label] = timed[label].summary()
        out["tutorial_query_ms"] = tq
        rq_fns = dict(answers)
        rq_fns["floor inverted"] = lambda q: floor.recommend(*_arrays(q))
        out["random_people_ms"] = {label: s.summary()
                                   for label, s in interleaved_over(rq_fns, people).items()}
        out["new_person_ms"] = {
            k: over(answers[DEFAULT], random_people(pool, n_people, np.random.default_rng(k),
                                                    most=k, least=k)).summary()
            for k in NEW_PERSON_RATINGS}
        out["explanations"] = explanation_share(answers[DEFAULT], TUTORIAL_RATINGS, reader)
    return out


# --- profiles ---------------------------------------------------------------------------------

def _relative(text: str) -> str:
    """A profile as it reads on any machine: no absolute paths of this checkout."""
    return text.replace(str(ROOT) + "/", "")


def profiles(data: Path, workdir: Path, out: Path) -> list[Path]:
    """pyinstrument text profiles of one default ingest (in-process) and of 2,000 default
    answers to the tutorial's ratings."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return []
    out.mkdir(parents=True, exist_ok=True)
    store = workdir / "profile-store"
    profiler = Profiler(interval=0.0005)
    profiler.start()
    ingest_stages(data, store)
    profiler.stop()
    written = [out / "ingest-ml1m.txt", out / "recommend-ml1m.txt"]
    written[0].write_text(_relative(profiler.output_text(unicode=False, color=False)))
    with open_reader(settings_for(store)) as reader:
        answer = _answer(reader, None)
        for _ in range(50):
            answer(TUTORIAL_RATINGS)
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(2000):
            answer(TUTORIAL_RATINGS)
        profiler.stop()
    written[1].write_text(_relative(profiler.output_text(unicode=False, color=False)))
    shutil.rmtree(store, ignore_errors=True)
    return written



# --- quality ----------------------------------------------------------------------------------

# NDCG@10 on test of the item model learned in numpy (the RecBole ML-1M protocol, the served
# setting, every weight of every movie), before its learning was made faster: README's Quality
# table, "item-numpy".
ITEM_NDCG_BEFORE = 0.2942


def served_item_ranker(train):
    """A numpy ranker for the item model exactly as ingest serves it, learned from `train` (a
    users x movies matrix of stars): only the movies ingest models (enough liked ratings), each
    vector pruned as served; the other movies are never recommended (they have no vector)."""
    import scipy.sparse as sp

    from movierec import evaluate
    from movierec.schema import LIKED_STARS
    from movierec.training import item as itemmodel

    train = sp.csr_matrix(train)
    liked = train.multiply(train >= LIKED_STARS).tocsr()
    liked.eliminate_zeros()
    columns = itemmodel.served_movies(liked.indices)
    model = itemmodel.served_item_model(liked[:, columns])

    def rank(history, excluded, k):
        scores = np.full(history.shape, -np.inf)
        scores[:, columns] = model.scores(sp.csr_matrix(history)[:, columns])
        return evaluate.top_k(scores, excluded, k)

    return rank


def item_model_quality(data: Path) -> dict:
    """The item model's NDCG@10 on the evaluation protocol (what a faster learner must keep):
    the model ingest serves (its movies, its pruned vectors), learned in numpy from the split's
    train part with the served setting, tuned on nothing, scored on test; beside it the same
    model with every weight ("unpruned", the evaluation's item-numpy)."""
    start = time.perf_counter()
    try:
        from movierec import evaluate

        d = movielens.load(data, "ml-1m")
        split = evaluate.prepare_split(d.user_ids, d.movie_ids, d.ratings)
        served = evaluate.evaluate_model(
            evaluate.Model("item-served", served_item_ranker), split)
        model = next(m for m in evaluate.baseline_models(quick=True)
                     if m.name == evaluate.NUMPY_ITEM)
        unpruned = evaluate.evaluate_model(model, split)
    except (ImportError, AttributeError, StopIteration) as exc:
        return {"failed": f"the evaluation's API changed: {type(exc).__name__}: {exc}"}
    return {"ndcg": served.test.ndcg, "unpruned": unpruned.test.ndcg, "before": ITEM_NDCG_BEFORE,
            "seconds": time.perf_counter() - start}
