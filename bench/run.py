"""`make bench`: movierec against the tutorial's pipeline and the numpy/scipy floor, in one run.

    python -m bench.run                 full run; results into BENCHMARKS.md (between markers)
    python -m bench.run --quick         under 2 minutes; prints the report, writes nothing
    python -m bench.run --only ingest,recommend,http,scale [--sizes 1m,25m,100m]

Sections: ingest ml-1m (three pipelines, interleaved rounds), one recommendation in-process
(tutorial query and random queries), HTTP (movierec serve under wrk), scale (synthetic 1M,
25M, 100M ratings, each in its own processes). Medians everywhere; ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from bench import ml1m, scale, serving
from bench.measure import ROOT, machine, table

BEGIN = "<!-- bench:results:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"

TARGETS = {
    "ingest_s": 1.0, "ingest_ratio": 3.0, "rec_p50_ms": 0.5, "rec_ratio": 300.0,
    "http_p50_ms": 2.0, "http_p99_ms": 10.0, "http_rps": 1000.0,
    "25m_ingest_s": 60.0, "25m_p99_ms": 10.0, "25m_rss_gb": 3.0,
    "100m_ingest_s": 300.0, "100m_p99_ms": 25.0, "100m_rss_gb": 8.0,
}


def ml1m_folder() -> Path:
    from movierec import movielens
    from movierec.config import Settings

    env = os.environ.get("MOVIELENS_DIR")
    for candidate in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data" / "ml-1m"]:
        if (candidate / "ratings.dat").exists():
            return candidate
    settings = Settings()
    return movielens.fetch("ml-1m", settings.movielens_cache, progress=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small repeats, 1M scale only")
    parser.add_argument("--only", default="ingest,recommend,http,scale")
    parser.add_argument("--sizes", default=None, help="scale sizes (default 1m,25m,100m)")
    parser.add_argument("--output", default=None,
                        help="markdown file to update (default: BENCHMARKS.md, none with --quick)")
    parser.add_argument("--workdir", default=str(ROOT / ".movierec" / "bench"))
    parser.add_argument("--http-seconds", type=float, default=None)
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    quick = args.quick
    sizes = (args.sizes or ("1m" if quick else "1m,25m,100m")).split(",")
    output = Path(args.output) if args.output else (None if quick else ROOT / "BENCHMARKS.md")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    command = "make bench-quick" if quick else "make bench"
    argv_text = " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    info = machine(workdir)
    results: dict = {}
    data = ml1m_folder()
    if "ingest" in only:
        log("ingest ml-1m: tutorial pipeline, movierec, floor (interleaved rounds)")
        results["ingest"] = ml1m.run_ingest(data, workdir, rounds=2 if quick else 5)
    if "recommend" in only:
        log("one recommendation in-process: tutorial, movierec, proposals, floor")
        results["recommend"] = ml1m.run_recommend(
            data, workdir, n=1000 if quick else 5000, n_tutorial=5 if quick else 30,
            n_random=300 if quick else 2000)
    if "http" in only:
        log("HTTP: movierec serve on the embedded store (ml-1m) under load")
        store = workdir / "http-store"
        ml1m.ingest_movierec(data, store)
        profile = None if quick else ROOT / "bench" / "profiles" / "http-server.txt"
        if profile:
            profile.parent.mkdir(parents=True, exist_ok=True)
        results["http"] = serving.run(
            store, workdir, seconds=args.http_seconds or (3 if quick else 10),
            rounds=1 if quick else 3, profile=profile)

    if "scale" in only:
        log(f"scale: synthetic {', '.join(sizes)}")
        results["scale"] = scale.run(sizes, workdir, n_queries=300 if quick else 2000, log=log)
        results["ml1m_shape"] = _ml1m_shape(data)
    if not quick and "recommend" in only:
        log("profiles (pyinstrument)")
        results["profiles"] = [str(p.relative_to(ROOT)) for p in
                               ml1m.profiles(data, workdir, ROOT / "bench" / "profiles")]
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["wall_s"] = time.perf_counter() - started
    report = render(results, info, command, argv_text, quick)
    print(report)
    if output is not None:
        write_report(output, report)
        (ROOT / "bench" / "results.json").write_text(json.dumps(
            {"machine": info, "results": results}, indent=1, default=float))
        log(f"wrote {output} and bench/results.json")
    log("done")
    return 0


def _ml1m_shape(data: Path) -> dict:
    from movierec import movielens

    d = movielens.load(data, "ml-1m")
    return scale.shape_of(d.user_ids, d.movie_ids)


def write_report(path: Path, report: str) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{report}\n{END}{tail}")


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def render(results: dict, info: dict, command: str, argv_text: str, quick: bool) -> str:
    out: list[str] = []
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.append(f"Run {when}: `{command}` (= `.venv/bin/python -m bench.run {argv_text}`), "
               f"{info['wall_s'] / 60:.1f} min.")
    pk = info["packages"]
    out.append(
        f"Machine: {info['cpu']} ({info['simd']}), {info['cores']} cores, "
        f"{info['memory_gib']} GiB RAM, Linux {info['kernel']}, Python {info['python']}; "
        f"numpy {pk['numpy']}, scipy {pk['scipy']}, pandas {pk['pandas']}, qdrant-edge-py "
        f"{pk['qdrant-edge-py']}, qdrant-client {pk['qdrant-client']}, fastapi {pk['fastapi']}, "
        f"uvicorn {pk['uvicorn']}. Disk: a 4 KiB write + fsync takes {info['fsync_ms']} ms "
        f"(median). Load average at start {info['load_average']}, at end "
        f"{info['load_average_end']} (other engineers share this machine)."
    )
    out.append("")
    out.append("### Targets")
    out.append("")
    out.append(table(["target", "goal", "measured", "verdict"], _targets(results)))
    if "ingest" in results:
        out += ["", "### Ingest ml-1m (parse + vectors + write + ready to query)", ""]
        out.append(_ingest_table(results["ingest"]))
    if "recommend" in results:
        out += ["", "### One recommendation in-process (ml-1m)", ""]
        out.append(_recommend_tables(results["recommend"]))
    if "http" in results:
        out += ["", "### HTTP `POST /recommendations` (embedded store, ml-1m, loopback)", ""]
        out.append(_http_table(results["http"]))
    if "http_proposals" in results:
        out += ["", "The same, the server running the proposed recommend.py "
                "(`python -m bench.serve_patched serve`):", ""]
        out.append(_http_table(results["http_proposals"]))
    if "scale" in results:
        out += ["", "### Scale: synthetic MovieLens-shaped ratings", ""]
        out.append(_scale_tables(results["scale"], results.get("ml1m_shape")))
    if results.get("profiles"):
        out += ["", "Profiles of this run: " + ", ".join(
            f"`{p}`" for p in results["profiles"] + (["bench/profiles/http-server.txt"]
                                                     if "http" in results else [])) + "."]
    return "\n".join(out)


def _targets(r: dict) -> list[list]:
    rows = []
    t = TARGETS
    if "ingest" in r:
        m = r["ingest"]["median_s"]["movierec"]["total"]
        ratio = r["ingest"]["speedup_vs_tutorial"]
        rows.append(["ingest ml-1m, ready to query", f"<= {t['ingest_s']} s",
                     f"{m:.2f} s", _verdict(m <= t["ingest_s"])])
        rows.append(["ingest ml-1m vs tutorial pipeline", f">= {t['ingest_ratio']:.0f}x",
                     f"{ratio:.1f}x", _verdict(ratio >= t["ingest_ratio"])])
    if "recommend" in r:
        rec = r["recommend"]["tutorial_query_ms"]
        p50 = rec["movierec"]["p50"]
        rows.append(["one recommendation in-process, p50", f"<= {t['rec_p50_ms']} ms",
                     f"{p50:.3f} ms", _verdict(p50 <= t["rec_p50_ms"])])
        ratio = r["recommend"]["speedup_vs_tutorial"]
        rows.append(["one recommendation vs tutorial", f">= {t['rec_ratio']:.0f}x",
                     f"{ratio:,.0f}x", _verdict(ratio >= t["rec_ratio"])])
    if "http" in r:
        by = r["http"]["by_concurrency"]
        c1 = by.get(1) or by.get("1")
        if c1:
            rows.append(["HTTP p50 at concurrency 1", f"<= {t['http_p50_ms']} ms",
                         f"{c1['p50_ms']:.2f} ms", _verdict(c1["p50_ms"] <= t["http_p50_ms"])])
            rows.append(["HTTP p99 at concurrency 1", f"<= {t['http_p99_ms']} ms",
                         f"{c1['p99_ms']:.2f} ms", _verdict(c1["p99_ms"] <= t["http_p99_ms"])])
        best_c, best = max(by.items(), key=lambda kv: kv[1]["rps"])
        rows.append(["HTTP throughput, best concurrency", f">= {t['http_rps']:,.0f} req/s",
                     f"{best['rps']:,.0f} req/s (c={best_c})",
                     _verdict(best["rps"] >= t["http_rps"])])
    for size, label in (("25m", "25M"), ("100m", "100M")):
        s = r.get("scale", {}).get(size)
        if not s:
            continue
        ing, q = s["ingest"], s["query"]
        rows.append([f"{label}: ingest, ready to query", f"<= {t[size + '_ingest_s']:.0f} s",
                     f"{ing['total_s']:.1f} s", _verdict(ing["total_s"] <= t[size + "_ingest_s"])])
        p99 = q["recommend_ms"]["p99"]
        extra = f"with proposal C {q['recommend_proposed_ms']['p99']:.1f}"
        if "default_model_ms" in q:
            extra += (f"; default model {q['default_model']}: {q['default_model_ms']['p99']:.1f},"
                      f" with C {q['default_model_proposed_ms']['p99']:.1f}")
        rows.append([f"{label}: query p99 (random queries, tutorial mode)",
                     f"<= {t[size + '_p99_ms']:.0f} ms", f"{p99:.1f} ms ({extra})",
                     _verdict(p99 <= t[size + "_p99_ms"])])
        rss = ing["peak_rss_mb"] / 1024
        rows.append([f"{label}: ingest peak RSS", f"<= {t[size + '_rss_gb']:.0f} GB",
                     f"{rss:.2f} GiB", _verdict(rss <= t[size + "_rss_gb"])])
    return rows


def _ingest_table(r: dict) -> str:
    med = r["median_s"]
    names = {"tutorial": "tutorial pipeline (pandas python engine, itertuples, local mode)",
             "movierec": "movierec (`ingest.run` + open store + first answer)",
             "movierec_tmpfs": "movierec, store on tmpfs (no disk fsync; for comparison)",
             "floor": "floor: parse + scipy CSR/CSC in memory, no store"}
    rows = []
    base = med["movierec"]["total"]
    for key, label in names.items():
        if key not in med:
            continue
        m = med[key]
        rows.append([label, m["parse"], m["vectors"], m["write"], m["ready"], m["total"],
                     f"{m['total'] / base:.2f}"])
    text = table(["pipeline", "parse s", "vectors s", "write s", "ready s", "total s",
                  "x movierec"], rows)
    return text + (f"\n\nMedians of {r['rounds']} interleaved rounds; movierec is "
                   f"**{r['speedup_vs_tutorial']:.1f}x** faster than the tutorial pipeline. "
                   "\"vectors\" is the tutorial's itertuples loop, movierec's `prepare` "
                   "(validation, z-scores, CSR, payloads), the floor's CSR/CSC build.")


def _recommend_tables(r: dict) -> str:
    tq = r["tutorial_query_ms"]
    default = r.get("default_model", "")
    labels = {"tutorial": "tutorial (local mode query_points + Python loop)",
              "movierec": "movierec `recommend` (tutorial mode, embedded store)",
              "movierec_with_proposals": "movierec with proposal C (tie handling)",
              "floor_inverted": "floor: numpy, inverted index (CSC postings)",
              "floor_brute": "floor: scipy CSR mat-vec over all ratings",
              "movierec_default_model": f"movierec, default model ({default})",
              "movierec_default_model_with_proposals":
                  f"movierec, default model ({default}), with proposal C"}
    base = tq["tutorial"]["p50"]
    rows = [[labels[k], v["n"], v["p50"], v["p99"], f"{base / v['p50']:,.0f}x"]
            for k, v in tq.items()]
    out = [table(["the tutorial query", "n", "p50 ms", "p99 ms", "vs tutorial"], rows)]
    rq = r["random_queries_ms"]
    rows = [[labels[k], v["n"], v["p50"], v["p99"]] for k, v in rq.items()]
    out += ["", "Random queries (1-15 of the 1,000 most rated movies, liked or disliked):", "",
            table(["random queries", "n", "p50 ms", "p99 ms"], rows)]
    rows = [[k, v["p50"], v["p99"]] for k, v in r["stages_us"].items()]
    out += ["", "Where movierec's time goes (tutorial query):", "",
            table(["stage", "p50 us", "p99 us"], rows)]
    out += ["", "Proposal C returns the same neighbours, movies, bit-identical scores and "
            "explanations on every random query, both models: "
            f"**{r['proposals_identical']}**."]
    return "\n".join(out)


def _http_table(r: dict) -> str:
    rows = []
    for c, v in r["by_concurrency"].items():
        rows.append([c, v["p50_ms"], v["p99_ms"], f"{v['rps']:,.0f}", v["requests"],
                     v["errors"]])
    text = table(["concurrency", "p50 ms", "p99 ms", "req/s", "requests", "non-2xx"], rows)
    return text + (f"\n\nLoad generator: {r['loadgen']}, {r['rounds']} rounds of "
                   f"{r['seconds']:g} s per concurrency, interleaved; medians over rounds. "
                   f"The answer checked: {r['top5']}.")


def _scale_tables(s: dict, ml1m_shape: dict | None) -> str:
    rows = []
    shapes = []
    prev = None
    for size, v in s.items():
        ing, q, gen = v["ingest"], v["query"], v["generate"]
        sec = ing["seconds"]
        n = ing["ratings"]
        grow = (f"{(ing['total_s'] / prev['total_s']) / (n / prev['ratings']):.2f}"
                if prev else "-")
        rows.append([size, f"{v['shape'][0]:,} x {v['shape'][1]:,}", f"{n:,}", sec["parse"],
                     sec["vectors"], sec["write"], ing["ready_s"], ing["total_s"], grow,
                     ing["peak_rss_mb"] / 1024, ing["store_bytes"] / 2**30])
        prev = {"total_s": ing["total_s"], "ratings": n}
        shapes.append([size, *_shape_row(gen["shape"])])
    out = [table(["size", "users x movies", "ratings", "parse s", "vectors s", "write s",
                  "ready s", "ingest total s", "time growth / ratings growth",
                  "peak RSS GiB", "store GiB"], rows)]
    nan = {"p50": float("nan"), "p99": float("nan")}
    rows, rows_default = [], []
    for size, v in s.items():
        q = v["query"]
        single, single_c = q.get("single_movie_ms", nan), q.get("single_movie_proposed_ms", nan)
        rows.append([size, f"{q['engine_ms']['p50']:.2f} / {q['engine_ms']['p99']:.2f}",
                     f"{q['recommend_ms']['p50']:.2f} / {q['recommend_ms']['p99']:.2f}",
                     f"{q['recommend_proposed_ms']['p50']:.2f} / "
                     f"{q['recommend_proposed_ms']['p99']:.2f}",
                     f"{single['p50']:.2f} / {single_c['p50']:.2f}",
                     f"{q['heavy_query_ms']['p50']:.2f}",
                     f"{q.get('floor_ms', nan)['p50']:.2f} / {q.get('floor_ms', nan)['p99']:.2f}",
                     q["open_s"]])
        if "default_model_ms" in q:
            d, dp = q["default_model_ms"], q["default_model_proposed_ms"]
            rows_default.append([size, f"{d['p50']:.2f} / {d['p99']:.2f}",
                                 f"{dp['p50']:.2f} / {dp['p99']:.2f}"])
    first = s[next(iter(s))]["query"]
    out += ["", f"Queries, tutorial mode, p50 / p99 in ms ({first['n']} random queries per size: "
            "1-15 of the 1,000 most rated movies, liked or disliked). \"engine\" is "
            "store.similar_users alone (Qdrant + vectors, 25 users); \"C\" the library with "
            "proposal C (tie handling); \"1 movie\" = each of the 50 most rated movies alone "
            "(ties: thousands of users), p50 library / C; \"heavy\" = the 11 most rated, "
            "liked/disliked alternately, p50:", "",
            table(["size", "engine", "library", "C", "1 movie", "heavy", "floor",
                   "open store s"], rows)]
    if rows_default:
        out += ["", f"The service's default model ({first.get('default_model')}), same queries, "
                "p50 / p99 ms:", "",
                table(["size", "library", "C"], rows_default)]
    if ml1m_shape:
        shapes.insert(0, ["ML-1M (real)", *_shape_row(ml1m_shape)])
    out += ["", "Shape of the generated data beside ML-1M's:", "",
            table(["data", "ratings", "users", "movies", "per user min/median/mean/p99/max",
                   "top movie rated by", "top 10 / top 100 movies' share"], shapes)]
    return "\n".join(out)


def _shape_row(sh: dict) -> list:
    return [f"{sh['ratings']:,}", f"{sh['users']:,}", f"{sh['movies']:,}",
            f"{sh['per_user_min']}/{sh['per_user_median']:.0f}/{sh['per_user_mean']:.0f}/"
            f"{sh['per_user_p99']:.0f}/{sh['per_user_max']}",
            f"{sh['top_movie_users_share']:.0%} of users",
            f"{sh['top10_share']:.1%} / {sh['top100_share']:.1%}"]


if __name__ == "__main__":
    sys.exit(main())
