"""`movierec ingest | recommend | movies search | serve | check | rollback | snapshot | restore |
evaluate`: thin shells over the library.

Errors a person can cause print one line (`error: ...`) and exit 1; never a traceback
(set MOVIEREC_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

from movierec.config import Settings, get_settings
from movierec.errors import MovierecError


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _progress() -> bool:
    return sys.stderr.isatty()


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from movierec import ingest

    # The objects so far (the modules, ~800 of them with pandas and numpy) never become garbage:
    # frozen, the collector's passes during the ingest and at exit skip them (0.3 s of the exit).
    gc.freeze()
    report = ingest.run(
        settings,
        dataset_name=args.dataset,
        data_dir=args.data,
        wait_seconds=args.wait,
        progress=_progress(),
        models=_models_to_ingest(args),
        log=lambda m: print(m, file=sys.stderr),
    )
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in report.seconds.items())
    print(
        f"ingested {report.dataset}: {report.users} users, {report.movies} movies, "
        f"{report.ratings} ratings into {_where(settings)} (version {report.version}; {timings})"
    )
    gc.freeze()  # the same for what the ingest imported (scipy): the process exits next
    return 0


def _models_to_ingest(args: argparse.Namespace) -> list[str]:
    """Every registered model but those skipped (learned models take the longest to ingest)."""
    from movierec.models import REGISTRY

    skipped = set(args.skip_model or ())
    if args.no_item_model:
        skipped.add("item")
    return [name for name in REGISTRY.names() if name not in skipped]


def _where(settings: Settings) -> str:
    if settings.store_kind == "embedded":
        return f"the embedded store at {settings.qdrant_path}"
    return f"Qdrant at {settings.qdrant_url}"


def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    from movierec import recommend
    from movierec.store import open_reader

    scale = "unit"
    ratings = recommend.tutorial_query(args.like or [], args.dislike or [])
    with open_reader(settings) as store:
        if args.ratings_file is not None:
            ratings, scale = _imported(store, args), "stars"
        answer = recommend.recommend(store, ratings, limit=args.limit, neighbors=args.neighbors,
                                     model=args.model, scale=scale)
    items = [r.to_dict() for r in answer.items]
    if args.json:
        print(json.dumps(items, indent=2))
    else:
        width = max((len(i["title"]) for i in items), default=5)
        print(f"{'score':>12}  {'title':<{width}}  movie_id")
        for i in items:
            print(f"{i['score']:>12.8f}  {i['title']:<{width}}  {i['movie_id']}")
    return 0


def _imported(store, args: argparse.Namespace) -> dict[int, float]:
    """The file's matched ratings in stars (--like/--dislike add to them: 5 and 1 stars); every
    row that did not match is reported on stderr, one line each."""
    from movierec import imports, recommend

    try:
        data = args.ratings_file.read_bytes()
    except OSError as exc:
        raise imports.ExportError(f"{args.ratings_file}: {exc.strerror or exc}") from None
    result = imports.read_ratings(store.catalog(), data, args.format,
                                  max_ratings=recommend.MAX_RATINGS)
    for row in result.unmatched:
        named = f" {row.title!r}" if row.title else ""
        year = f" ({row.year})" if row.year else ""
        print(f"{args.ratings_file}:{row.line}:{named}{year} not used: {row.reason}",
              file=sys.stderr)
    print(f"{args.ratings_file}: {result.format} export, {len(result.matched)} of {result.rows} "
          "rows matched", file=sys.stderr)
    ratings = result.ratings
    ratings.update({m: 5.0 for m in args.like or []})
    ratings.update({m: 1.0 for m in args.dislike or []})
    return ratings


def cmd_movies_search(args: argparse.Namespace, settings: Settings) -> int:
    from movierec.store import open_reader

    with open_reader(settings) as store:
        found = store.catalog().search(" ".join(args.text), limit=args.limit)
    if args.json:
        print(json.dumps([m.to_dict() for m in found], indent=2))
    elif not found:
        print("no movie title contains that text", file=sys.stderr)
        return 1
    else:
        for m in found:
            print(f"{m.movie_id:>8}  {m.title}  [{'|'.join(m.genres)}]")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from movierec.store import open_reader

    deadline = time.monotonic() + args.wait
    while True:
        try:
            with open_reader(settings) as store:
                status = store.status()
        except MovierecError as exc:
            from movierec.store import StoreStatus

            status = StoreStatus(ready=False, detail=str(exc))
        if status.ready:
            from movierec.store.server import describe_cluster

            print(f"ready: {status.users} users, {status.movies} movies (version {status.version})")
            print(f"cluster: {describe_cluster(status.cluster)}")
            return 0
        if time.monotonic() >= deadline:
            _err(f"not ready: {status.detail}")
            return 1
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from movierec.store import rollback

    rolled_from, to = rollback(settings)
    print(f"rolled back {_where(settings)} from version {rolled_from} to {to}; running services "
          "switch within seconds, as after an ingest")
    return 0


def cmd_snapshot(args: argparse.Namespace, settings: Settings) -> int:
    from movierec.store.backup import snapshot

    done = snapshot(settings, args.output, keep=args.keep)
    print(f"snapshot of version {done.version} ({done.kind}, {done.size / 1e6:.1f} MB, "
          f"{done.seconds:.2f}s) in {done.where}")
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from movierec.store.backup import restore

    done = restore(settings, args.snapshot)
    print(f"restored version {done.version} into {_where(settings)} ({done.seconds:.2f}s); "
          "`movierec rollback` undoes it")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from movierec.service.server import serve

    return serve(settings, host=args.host, port=args.port)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from movierec import evaluate, movielens

    name = args.dataset or settings.movielens_dataset
    folder = movielens.dataset_folder(settings, name, args.data, progress=_progress())
    started = time.perf_counter()
    # --data without --dataset: the folder names the dataset in the reports.
    dataset = movielens.load(Path(folder), None if args.data and not args.dataset else name)
    if args.protocol == "new-people":
        return _evaluate_new_people(args, dataset, started)
    if (args.seeds or 1) > 1:
        return _evaluate_seeds(args, dataset, started)
    split = evaluate.prepare_split(dataset.user_ids, dataset.movie_ids, dataset.ratings)
    results, info = evaluate.evaluate_all(dataset, split, quick=args.quick, progress=_progress())
    info["seconds"] = round(time.perf_counter() - started, 1)
    notes = evaluate.run_notes(info)
    print(notes[0])
    print(evaluate.format_table(results))
    for line in notes[1:]:
        print(line)
    if args.output is not None:
        evaluate.write_results(results, args.output, split, notes=notes)
        print(f"wrote {args.output / 'results.json'} and {args.output / 'results.md'}")
    return 0


def _evaluate_new_people(args: argparse.Namespace, dataset, started: float) -> int:
    from movierec.evaluate import newpeople, report

    seeds = tuple(range(1, (args.seeds or len(newpeople.SEEDS)) + 1))
    results, withheld, info = newpeople.evaluate_new_people(
        dataset, seeds=seeds, people=args.people, quick=args.quick, progress=_progress())
    info["seconds"] = round(time.perf_counter() - started, 1)
    notes = report.people_notes(info)
    print(notes[0])
    print(report.format_people_table(results))
    print("\n".join(report.people_verdicts(results)))
    if args.output is not None:
        paths = report.write_people_results(
            results, withheld, args.output, notes=notes,
            title=f"{dataset.name}: new people, recall@20 against ratings given")
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _evaluate_seeds(args: argparse.Namespace, dataset, started: float) -> int:
    from movierec.evaluate import SEED, report, served

    seeds = [SEED + s for s in range(args.seeds)]
    runs = served.evaluate_seeds(dataset, seeds, quick=args.quick, progress=_progress())
    summary = served.seed_summary(runs)
    text = report.format_seeds_markdown(summary)
    print(f"{dataset.name}: existing users over split seeds {', '.join(map(str, seeds))} "
          f"({time.perf_counter() - started:.0f} s in all)")
    print(text)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "seeds.json").write_text(json.dumps(
            {"seeds": seeds, "ndcg@10": summary,
             "runs": [[r.row() for r in run] for run in runs]}, indent=2) + "\n")
        (args.output / "seeds.md").write_text(text)
        print(f"wrote {args.output / 'seeds.json'} and {args.output / 'seeds.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from movierec.models import REGISTRY

    parser = argparse.ArgumentParser(prog="movierec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="load a MovieLens dataset into Qdrant")
    p.add_argument("--dataset", default=None, help="ml-100k, ml-1m (default), ml-10m, ml-20m, "
                   "ml-25m, ml-32m or ml-latest-small (env MOVIELENS_DATASET)")
    p.add_argument("--data", type=Path, default=None,
                   help="folder with the dataset's files; skips the download (env MOVIELENS_DIR)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="retry reaching a Qdrant server for up to this long first")
    p.add_argument("--skip-model", action="append", choices=REGISTRY.names(), metavar="MODEL",
                   help="do not prepare this model (repeatable): " + ", ".join(REGISTRY.names()))
    p.add_argument("--no-item-model", action="store_true",
                   help="the same as --skip-model item (learning it is most of an ingest)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("recommend", help="the tutorial's recommendation for likes and dislikes")
    p.add_argument("--like", type=int, action="append", metavar="MOVIE_ID")
    p.add_argument("--dislike", type=int, action="append", metavar="MOVIE_ID")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--neighbors", type=int, default=None,
                   help="similar users to use (default 20; user-knn 100)")
    p.add_argument("--model", default="tutorial", choices=REGISTRY.names(),
                   help="the model: " + ", ".join(REGISTRY.names()) + " (default: tutorial)")
    p.add_argument("--ratings-file", type=Path, default=None, metavar="FILE",
                   help="ratings exported from Letterboxd (ratings.csv), IMDb, or a "
                   "movie_id,rating csv (stars)")
    p.add_argument("--format", default="auto", choices=("auto", "letterboxd", "imdb", "csv"),
                   help="the file's format (default: recognised by its header)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("movies", help="the movie catalog")
    movies = p.add_subparsers(dest="movies_command", required=True)
    s = movies.add_parser("search", help="find movie ids by title")
    s.add_argument("text", nargs="+")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_movies_search)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", default=None, help="bind address (env HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (env PORT, default 8000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="exit 0 when the store is reachable and holds data")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("rollback", help="make the previous complete version live again")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("snapshot", help="back up the live version (checksummed)")
    p.add_argument("output", type=Path, nargs="?", default=None,
                   help="folder to write the snapshot into (a Qdrant server: also download "
                   "the server's snapshots there; without it they stay in Qdrant's snapshot "
                   "storage, S3 when configured)")
    p.add_argument("--keep", type=int, default=None, metavar="N",
                   help="Qdrant server: delete all but the newest N snapshots of our collections")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("restore", help="make a snapshot live again (checksums verified first)")
    p.add_argument("snapshot", type=Path, help="a folder written by `movierec snapshot`")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("evaluate", help="offline evaluation of every model against baselines")
    p.add_argument("--dataset", default=None)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--output", type=Path, default=None, help="write results.json/results.md here")
    p.add_argument("--quick", action="store_true", help="fewer parameter settings")
    p.add_argument("--protocol", choices=["existing", "new-people"], default="existing",
                   help="existing: dataset users with 80%% of their ratings (default); "
                   "new-people: people held out of the store, each giving k ratings")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="random seeds to average over (existing: 1, each seed a full run; "
                   "new-people: 3)")
    p.add_argument("--people", type=int, default=300, metavar="N",
                   help="new-people: people held out per seed, half validation, half test")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except Exception as exc:  # noqa: BLE001 (pydantic ValidationError: a bad environment variable)
        errors = getattr(exc, "errors", list)()
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in errors
        ) or str(exc).splitlines()[0]
        _err(f"invalid configuration: {detail}")
        return 2
    if args.command == "recommend" and not (args.like or args.dislike or args.ratings_file):
        _err("an empty query: give at least one --like or --dislike movie id, or --ratings-file")
        return 1
    try:
        return args.func(args, settings)
    except MovierecError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("MOVIEREC_DEBUG"):
            raise
        _err(f"unexpected {type(exc).__name__}: {exc} (set MOVIEREC_DEBUG=1 for a traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
