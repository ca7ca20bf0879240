"""`make bench`: the default path first -- `movierec ingest` and the answer to a request without
options -- then every served model, beside the tutorial's own pipeline and the numpy/scipy floor,
in one run; the targets and their verdicts written by the run itself.

    python -m bench.run                 full run; results into BENCHMARKS.md, README's headline
                                        and bench/results.json
    python -m bench.run --quick         a short run (1M scale only); prints, writes nothing
    python -m bench.run --only ingest,answers,http,quality,scale [--sizes 1m,25m,100m]

Sections: ingest ml-1m (the default ingest as a process and stage by stage, without the item
model, the tutorial's pipeline, the floor; interleaved rounds), answers in-process (every model
the service offers, the default first; new people with 1, 5 and 20 ratings), HTTP (`movierec
serve` under wrk: the default request, then each model by name), the item model's quality,
scale (synthetic 1M, 25M and 100M ratings, each step in its own process). Medians everywhere;
ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench import ml1m, scale, serving
from bench.measure import ROOT, machine, table

BEGIN = "<!-- bench:results:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"
HEADLINE_BEGIN = "<!-- bench:headline:begin (written by `make bench`) -->"
HEADLINE_END = "<!-- bench:headline:end -->"
SECTIONS = ("ingest", "answers", "http", "quality", "scale")

# The targets (medians, both sides measured in the same run on this machine).
TARGETS = {
    "ingest_ratio": 3.5,  # default ingest of ml-1m, whole process, vs the tutorial's pipeline
    "ingest_s": 2.0,  # ... and its aim in seconds
    "item_model_s": 1.0,  # learning the item model
    "item_ndcg_drop": 0.001,  # ... with the same quality
    "answer_p50_ms": 0.6,  # the default answer in-process
    "http_rps": 1000.0,  # the default request over HTTP, concurrency 8 (and >= the tutorial's)
    "http_c1_p50_ms": 1.2,
    "explain_share": 0.1,  # explanations: at most a tenth of the answer
    "25m_ingest_s": 60.0, "25m_rss_gb": 3.0, "25m_default_p99_ms": 10.0,
    "25m_tutorial_p99_ms": 15.0,
    "100m_ingest_s": 300.0, "100m_rss_gb": 8.0, "100m_default_p99_ms": 25.0,
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
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--sizes", default=None, help="scale sizes (default 1m,25m,100m)")
    parser.add_argument("--output", default=None,
                        help="markdown file to update (default: BENCHMARKS.md, none with --quick)")
    parser.add_argument("--workdir", default=str(ROOT / ".movierec" / "bench"))
    parser.add_argument("--http-seconds", type=float, default=None)
    parser.add_argument("--from-results", action="store_true",
                        help="measure nothing: write BENCHMARKS.md and README's headline again "
                        "from bench/results.json (the last whole run), after a change to the "
                        "report's layout")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]!r}: choose from {', '.join(SECTIONS)}")
    quick = args.quick
    sizes = (args.sizes or ("1m" if quick else "1m,25m,100m")).split(",")
    output = Path(args.output) if args.output else (None if quick else ROOT / "BENCHMARKS.md")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    command = "make bench-quick" if quick else "make bench"
    given = list(argv if argv is not None else sys.argv[1:])
    if "--workdir" in given:  # where the data was kept is not part of what was measured
        at = given.index("--workdir")
        del given[at:at + 2]
    argv_text = " ".join(shlex.quote(a) for a in given)
    if args.from_results:
        last = json.loads((ROOT / "bench" / "results.json").read_text())
        results, info = last["results"], last["machine"]
        argv_text = info.get("argv_text", "")
        write_between(output or ROOT / "BENCHMARKS.md",
                      render(results, info, "make bench", argv_text), BEGIN, END, "# Benchmarks\n\n")
        readme = ROOT / "README.md"
        if HEADLINE_BEGIN in readme.read_text():
            write_between(readme, headline(results, info), HEADLINE_BEGIN, HEADLINE_END, "")
        print("wrote BENCHMARKS.md and README's headline from bench/results.json", file=sys.stderr)
        return 0
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    info = machine(workdir)
    results: dict = {}
    data = ml1m_folder()
    store = workdir / "default-store"
    if "ingest" in only:
        log("ingest ml-1m: tutorial pipeline, `movierec ingest` (process and stages), "
            "without the item model, floor (interleaved rounds)")
        results["ingest"] = ml1m.run_ingest(data, store, rounds=1 if quick else 3)
    if only & {"answers", "http"}:
        if "ingest" not in only:
            log("the default ingest for the answers (`movierec ingest --dataset ml-1m`)")
            ml1m.ingest_process(data, store)
        # The service opens its own copy: the embedded store is one process's at a time.
        served = workdir / "served-store"
        shutil.rmtree(served, ignore_errors=True)
        shutil.copytree(store, served)
        service = serving.start_server(served, workdir / "serve.log")
        try:
            default, names = serving.served_models(service)
            log(f"GET /models: default {default!r}, models {names}")
            if "answers" in only:
                log("answers in-process: every model, new people, the tutorial, the floor")
                results["answers"] = ml1m.run_answers(
                    data, store, default, names, n=300 if quick else 3000,
                    n_tutorial=3 if quick else 20, n_random=200 if quick else 2000,
                    n_people=100 if quick else 1000)
            if "http" in only:
                log("HTTP: movierec serve under load, the default request first")
                profile = None if quick else ROOT / "bench" / "profiles" / "http-server.txt"
                results["http"] = serving.run(
                    service, workdir, serving.bodies_for(default, names),
                    seconds=args.http_seconds or (2 if quick else 5),
                    rounds=1 if quick else 3, profile=profile)
                results["http"]["default_model"] = default
        finally:
            service.stop()
            shutil.rmtree(served, ignore_errors=True)
    if "quality" in only and not quick:
        log("the item model's quality (NDCG@10, evaluation protocol)")
        results["quality"] = ml1m.item_model_quality(data)
    if "scale" in only:
        log(f"scale: synthetic {', '.join(sizes)}")
        results["scale"] = scale.run(sizes, workdir, n_queries=200 if quick else 2000, log=log)
        results["ml1m_shape"] = _ml1m_shape(data)
    if not quick and "answers" in only:
        log("profiles (pyinstrument)")
        results["profiles"] = [str(p.relative_to(ROOT)) for p in
                               ml1m.profiles(data, workdir, ROOT / "bench" / "profiles")]
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["wall_s"] = time.perf_counter() - started
    info["argv_text"] = argv_text
    info["run_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = render(results, info, command, argv_text)
    summary = headline(results, info)
    print(report)
    print(f"\nREADME's headline from this run:\n{summary}")
    if output is not None:
        write_between(output, report, BEGIN, END, "# Benchmarks\n\n")
        log(f"wrote {output}")
    if not quick and only == set(SECTIONS):  # README's headline: from whole runs only
        readme = ROOT / "README.md"
        if readme.exists() and HEADLINE_BEGIN in readme.read_text():
            write_between(readme, summary, HEADLINE_BEGIN, HEADLINE_END, "")
        (ROOT / "bench" / "results.json").write_text(json.dumps(
            {"machine": info, "results": results}, indent=1, default=float))
        log("wrote README's headline and bench/results.json")
    log("done")
    return 0


def _ml1m_shape(data: Path) -> dict:
    from movierec import movielens

    d = movielens.load(data, "ml-1m")
    return scale.shape_of(d.user_ids, d.movie_ids)


def write_between(path: Path, text: str, begin: str, end: str, new_file_head: str) -> None:
    """Replace what lies between the markers (added at the end when missing); nothing else."""
    old = path.read_text() if path.exists() else f"{new_file_head}{begin}\n{end}\n"
    if begin not in old or end not in old:
        old = old.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


# --- the report -------------------------------------------------------------------------------

def paired_ratio(a: dict, b: dict) -> float:
    """Throughput of `a` over `b`, the median of each round's pair (measured seconds apart);
    the ratio of the medians where the runs are not kept."""
    pairs = [x["rps"] / y["rps"] for x, y in zip(a.get("runs", []), b.get("runs", []))
             if y["rps"] > 0]
    return float(np.median(pairs)) if pairs else a["rps"] / b["rps"]


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "**missed**")


def _c(by: dict, c: int) -> dict | None:
    return by.get(c) or by.get(str(c))


def render(results: dict, info: dict, command: str, argv_text: str) -> str:
    out: list[str] = []
    when = info.get("run_at") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out.append(f"Run {when}: `{command}` (= `.venv/bin/python -m bench.run {argv_text}`), "
               f"{info['wall_s'] / 60:.1f} min.")
    pk = info["packages"]
    out.append(
        f"Machine: {info['cpu']} ({info['simd']}), {info['cores']} cores, "
        f"{info['memory_gib']} GiB RAM, Linux {info['kernel']}, Python {info['python']}; "
        f"numpy {pk['numpy']}, scipy {pk['scipy']}, pandas {pk['pandas']}, qdrant-edge-py "
        f"{pk['qdrant-edge-py']}, qdrant-client {pk['qdrant-client']}, fastapi {pk['fastapi']}, "
        f"uvicorn {pk['uvicorn']}. Disk: a 4 KiB write + fsync takes {info['fsync_ms']} ms "
        f"(median). **Load average** (1, 5, 15 min) at the start {info['load_average']}, at the "
        f"end {info['load_average_end']}: anything above 0 is other work sharing the cores."
    )
    default = (results.get("answers") or results.get("http") or {}).get("default_model")
    if default:
        out.append(f"The default model (GET /models in this run): **{default}**.")
    out += ["", "### Targets", "", table(["target", "goal", "measured", "verdict"],
                                         targets(results))]
    if "ingest" in results:
        out += ["", "### The default ingest of ml-1m (`movierec ingest --dataset ml-1m`)", "",
                _ingest_tables(results["ingest"])]
    if "answers" in results:
        out += ["", "### Answers in-process (ml-1m, the default ingest's store)", "",
                _answer_tables(results["answers"])]
    if "http" in results:
        out += ["", "### HTTP `POST /recommendations` (embedded store, ml-1m, loopback)", "",
                _http_table(results["http"])]
    if "quality" in results:
        q = results["quality"]
        out += ["", "### The item model's quality", "",
                (f"NDCG@10 on test (RecBole ML-1M protocol, the served setting, learned in "
                 f"numpy): {q['ndcg']:.4f}, against {q['before']:.4f} before its learning was "
                 f"made faster ({q['seconds']:.0f} s to measure).")
                if "ndcg" in q else f"Not measured: {q['failed']}"]
    if "scale" in results:
        out += ["", "### Scale: synthetic MovieLens-shaped ratings", "",
                _scale_tables(results["scale"], results.get("ml1m_shape"))]
    if results.get("profiles"):
        extra = ["bench/profiles/http-server.txt"] if "http" in results else []
        out += ["", "Profiles of this run: " + ", ".join(
            f"`{p}`" for p in results["profiles"] + extra) + "."]
    return "\n".join(out)


def _nan(x) -> float:
    return float("nan") if x is None else x


def targets(r: dict) -> list[list]:
    """Every target with what this run measured and its verdict."""
    t = TARGETS
    rows = []
    ing = r.get("ingest")
    if ing:
        m = ing["median_s"]
        whole, ratio = m["default"]["total"], ing["speedup_vs_tutorial"]
        rows.append(["default ingest ml-1m (whole process, item model included) vs the "
                     "tutorial's pipeline", f">= {t['ingest_ratio']}x",
                     f"{ratio:.2f}x ({whole:.2f} s against {m['tutorial']['total']:.2f} s)",
                     _verdict(ratio >= t["ingest_ratio"])])
        rows.append(["default ingest ml-1m, whole process (aim)", f"<= {t['ingest_s']:.1f} s",
                     f"{whole:.2f} s", _verdict(whole <= t["ingest_s"])])
        item = m["default_stages"].get("learning item")
        rows.append(["learning the item model (within the ingest)",
                     f"<= {t['item_model_s']:.1f} s",
                     "not learned by the default ingest" if item is None else f"{item:.2f} s",
                     _verdict(None if item is None else item <= t["item_model_s"])])
    q = r.get("quality")
    if q:
        if "ndcg" in q:
            rows.append(["the item model's quality: NDCG@10 (evaluation protocol, test)",
                         f">= {q['before'] - t['item_ndcg_drop']:.4f}",
                         f"{q['ndcg']:.4f} (before: {q['before']:.4f})",
                         _verdict(q["ndcg"] >= q["before"] - t["item_ndcg_drop"])])
        else:
            rows.append(["the item model's quality: NDCG@10", "within 0.001",
                         "not measured", "-"])
    a = r.get("answers")
    if a:
        p50 = a["tutorial_query_ms"][ml1m.DEFAULT]["p50"]
        rows.append([f"the default answer ({a['default_model']}) in-process, p50 (the tutorial's "
                     "11 ratings, limit 10)", f"<= {t['answer_p50_ms']} ms", f"{p50:.3f} ms",
                     _verdict(p50 <= t["answer_p50_ms"])])
        share = a["explanations"]["share"]
        rows.append(["explanations' share of the default answer", f"<= {t['explain_share']:.0%}",
                     f"{share:.1%}", _verdict(share <= t["explain_share"])])
    h = r.get("http")
    if h:
        by = h["by_request"]
        d1 = _c(by[serving.DEFAULT]["by_concurrency"], 1)
        d8 = _c(by[serving.DEFAULT]["by_concurrency"], 8)
        rows.append(["HTTP, the default request: p50 at concurrency 1",
                     f"<= {t['http_c1_p50_ms']} ms", f"{d1['p50_ms']:.2f} ms",
                     _verdict(d1["p50_ms"] <= t["http_c1_p50_ms"])])
        rows.append(["HTTP, the default request: throughput at concurrency 8",
                     f">= {t['http_rps']:,.0f} req/s", f"{d8['rps']:,.0f} req/s",
                     _verdict(d8["rps"] >= t["http_rps"])])
        if "tutorial" in by:
            t8 = _c(by["tutorial"]["by_concurrency"], 8)
            ratio = paired_ratio(d8, t8)
            rows.append(["HTTP, the default request vs the tutorial mode, concurrency 8",
                         ">= 1.00x", f"{ratio:.3f}x (the median of each round's pair; medians "
                         f"{d8['rps']:,.0f} against {t8['rps']:,.0f} req/s)",
                         _verdict(ratio >= 1.0)])
    for size, label in (("25m", "25M"), ("100m", "100M")):
        s = r.get("scale", {}).get(size)
        if not s:
            continue
        ing, q = s["ingest"], s["query"]
        if "failed" in ing:
            rows.append([f"{label}: default ingest", f"<= {t[size + '_ingest_s']:.0f} s",
                         ing["failed"][:120], _verdict(False)])
        else:
            rows.append([f"{label}: default ingest, whole process",
                         f"<= {t[size + '_ingest_s']:.0f} s", f"{ing['total']:.1f} s",
                         _verdict(ing["total"] <= t[size + "_ingest_s"])])
            gib = ing["peak_rss_mb"] / 1024
            rows.append([f"{label}: default ingest, peak RSS", f"<= {t[size + '_rss_gb']:.0f} GB",
                         f"{gib:.2f} GiB", _verdict(gib * 2**30 / 1e9 <= t[size + "_rss_gb"])])
        p99 = q["by_model_ms"]["default"]["p99"]
        rows.append([f"{label}: the default answer ({q['default_model']}), p99 of random people",
                     f"<= {t[size + '_default_p99_ms']:.0f} ms", f"{p99:.1f} ms",
                     _verdict(p99 <= t[size + "_default_p99_ms"])])
        key = size + "_tutorial_p99_ms"
        if key in t and "tutorial" in q["by_model_ms"]:
            p99 = q["by_model_ms"]["tutorial"]["p99"]
            rows.append([f"{label}: the tutorial mode, p99 of random people",
                         f"<= {t[key]:.0f} ms", f"{p99:.1f} ms", _verdict(p99 <= t[key])])
    return rows


def _ingest_tables(r: dict) -> str:
    med = r["median_s"]
    d, st = med["default"], med["default_stages"]
    rep = d.get("reported", {})
    rows = [["**`movierec ingest --dataset ml-1m`** (own process, default)", "", "", "", "",
             f"**{d['total']:.2f}**", f"{d['peak_rss_mb']:.0f}", "1.00"],
            ["... as it reports itself (it learns the item model while it writes the users: "
             "its learning lies within its write)",
             rep.get("parse"), rep.get("vectors"), rep.get("learning", ""), rep.get("write"),
             rep.get("total"), "", ""],
            ["... the same in-process, stage by stage (then open + first default answer)",
             st["parse"], st["vectors"], st.get("learning", 0.0), st["write"], st["total"], "",
             f"{st['total'] / d['total']:.2f}"],
            ["`movierec ingest --no-item-model` (own process)", "", "", "", "",
             med["no_item_model"]["total"], f"{med['no_item_model']['peak_rss_mb']:.0f}",
             f"{med['no_item_model']['total'] / d['total']:.2f}"],
            ["the tutorial's pipeline (pandas python engine, itertuples, local mode, first "
             "answer)", med["tutorial"]["parse"], med["tutorial"]["vectors"], "",
             med["tutorial"]["write"], med["tutorial"]["total"], "",
             f"{med['tutorial']['total'] / d['total']:.2f}"],
            ["floor: parse + scipy CSR/CSC in memory, no store", med["floor"]["parse"],
             med["floor"]["vectors"], "", 0.0, med["floor"]["total"], "",
             f"{med['floor']['total'] / d['total']:.2f}"]]
    rows = [[("" if v is None else v) for v in row] for row in rows]
    text = table(["pipeline", "parse s", "vectors s", "learning s", "write s", "total s",
                  "peak RSS MiB", "x default"], rows)
    startup = d.get("startup")
    return text + (
        f"\n\nMedians of {r['rounds']} interleaved rounds. The default ingest is "
        f"**{r['speedup_vs_tutorial']:.2f}x** the tutorial's pipeline"
        + (f"; the process spends {startup:.2f} s outside the stages it reports "
           "(interpreter, imports, exit)" if startup is not None else "")
        + ". \"vectors\": validation, z-scores, the sparse user vectors and payloads (the "
        "tutorial: its itertuples loop; the floor: its CSR/CSC build).")


def _answer_tables(a: dict) -> str:
    tq = a["tutorial_query_ms"]
    default = a["default_model"]
    base = tq["tutorial pipeline"]["p50"]

    def label(key: str) -> str:
        if key == ml1m.DEFAULT:
            return f"**the default answer (no model named: {default})**"
        if key == "tutorial":
            return "model=tutorial (the tutorial mode)"
        if key in a["models"]:
            return f"model={key}"
        return {"tutorial pipeline": "the tutorial's own pipeline (local mode + Python loop)",
                "floor inverted": "floor: numpy over the query movies' postings (CSC)",
                "floor brute": "floor: scipy CSR mat-vec over all ratings",
                "engine": "Qdrant search alone (store.similar_users, 25 users, z-scores)"}[key]

    rows = [[label(k), v["n"], v["p50"], v["p99"], f"{base / v['p50']:,.0f}x"]
            for k, v in tq.items()]
    out = [table(["the tutorial's 11 ratings, limit 10", "n", "p50 ms", "p99 ms",
                  "vs the tutorial's pipeline"], rows)]
    rows = [[label(k), v["n"], v["p50"], v["p99"]] for k, v in a["random_people_ms"].items()]
    out += ["", "Random people (1-15 of the 1,000 most rated movies, each liked or disliked):", "",
            table(["random people", "n", "p50 ms", "p99 ms"], rows)]
    rows = [[f"{k} rating{'s' if int(k) > 1 else ''}", v["n"], v["p50"], v["p99"]]
            for k, v in a["new_person_ms"].items()]
    out += ["", f"The default answer ({default}) for a new person with exactly 1, 5 and 20 "
            "ratings (random among the 1,000 most rated, liked or disliked):", "",
            table(["new person", "n", "p50 ms", "p99 ms"], rows)]
    e = a["explanations"]
    cprofile = e.get("cprofile_share")
    out += ["", f"Explanations: {e['share']:.1%} of the default answer's wall time (the median of "
            f"{len(e.get('shares', [])) or 1} rounds; {e.get('calls', 300):,} answers to the "
            "tutorial's ratings, the time inside "
            f"{', '.join(e['functions']) or 'no explaining function'} against the answers'"
            + (f"; under cProfile, which weighs Python calls above C, {cprofile:.1%})."
               if cprofile is not None else ").")]
    steps = e.get("steps") or {}
    if steps:
        parts = [f"{step} {share:.1%}" for step, share in steps.items()]
        rest = 1.0 - e["share"] - sum(steps.values())
        out += ["", "Where the default answer's time goes (wall time inside each step, the same "
                f"answers): {', '.join(parts)}, explanations {e['share']:.1%}; the rest (numpy "
                f"over the catalog, the checks, Python around them) {rest:.1%}."]
    return "\n".join(out)


def _http_table(h: dict) -> str:
    rows = []
    for label, v in h["by_request"].items():
        name = (f"**default (no model field: {h['default_model']})**" if label == serving.DEFAULT
                else "model=tutorial (the tutorial mode)" if label == "tutorial"
                else f"model={label}")
        for c, m in v["by_concurrency"].items():
            rows.append([name, c, m["p50_ms"], m["p99_ms"], f"{m['rps']:,.0f}", m["requests"],
                         m["errors"]])
    text = table(["request", "concurrency", "p50 ms", "p99 ms", "req/s", "requests", "non-2xx"],
                 rows)
    return text + (f"\n\nEvery body holds the tutorial's 11 ratings and limit 10; the first names "
                   f"no model. Load generator: {h['loadgen']}, {h['rounds']} rounds of "
                   f"{h['seconds']:g} s per request and concurrency, interleaved (at each "
                   "concurrency every request in turn, so the pairs compared are seconds apart); "
                   "medians over rounds." + _first_request(h))


def _first_request(h: dict) -> str:
    first = h["by_request"].get(serving.DEFAULT, {}).get("answer", {}).get("first_ms")
    if first is None:
        return ""
    return (f" The server's first request after /readyz (the default request, httpx from this "
            f"process): {first:.1f} ms; `movierec serve` answers once with every model before "
            "it listens, so the reader's tables are built by then.")


def _scale_tables(s: dict, ml1m_shape: dict | None) -> str:
    rows, shapes, prev = [], [], None
    for size, v in s.items():
        ing, gen = v["ingest"], v["generate"]
        if "failed" in ing:
            rows.append([size, f"{v['shape'][0]:,} x {v['shape'][1]:,}", f"{v['shape'][2]:,}",
                         f"{ing['failed'][:200]}; the answers below are from "
                         "`--no-item-model`", "", "", "", "", "", "", "", ""])
        else:
            rep = ing["reported"]
            n = v["shape"][2]
            grow = (f"{(ing['total'] / prev['total']) / (n / prev['ratings']):.2f}"
                    if prev else "-")
            rows.append([size, f"{v['shape'][0]:,} x {v['shape'][1]:,}", f"{n:,}",
                         rep.get("parse", ""), rep.get("vectors", ""), rep.get("learning", ""),
                         rep.get("write", ""),
                         ing["total"], ing["ready_s"], grow, ing["peak_rss_mb"] / 1024,
                         ing["store_bytes"] / 2**30])
            prev = {"total": ing["total"], "ratings": n}
        shapes.append([size, *_shape_row(gen["shape"])])
    out = [table(["size", "users x movies", "ratings", "parse s", "vectors s", "learning s",
                  "write s", "ingest process s", "ready s", "time growth / ratings growth",
                  "peak RSS GiB", "store GiB"], rows),
           "", "As each ingest reports its stages: \"learning\" is the item model's; up to "
           "2M ratings it runs while the users are written (within \"write\"), above that "
           "before the writes (beside them, the users' shard would add to its peak)."]
    first = s[next(iter(s))]["query"]
    models = ["default"] + [m for m in first["models"]]
    rows = []
    for size, v in s.items():
        q = v["query"]
        cells = [f"{q['by_model_ms'][m]['p50']:.2f} / {q['by_model_ms'][m]['p99']:.2f}"
                 if m in q["by_model_ms"] else "-" for m in models]
        floor = q.get("floor_ms")
        rows.append([size, f"{q['engine_ms']['p50']:.2f} / {q['engine_ms']['p99']:.2f}", *cells,
                     f"{q['single_movie_ms']['p50']:.2f} / {q['single_movie_ms']['p99']:.2f}",
                     f"{q['heavy_query_ms']['p50']:.2f}",
                     f"{floor['p50']:.2f} / {floor['p99']:.2f}" if floor else "-", q["open_s"]])
    heads = [f"default ({first['default_model']})"] + [
        "tutorial mode" if m == "tutorial" else m for m in models[1:]]
    out += ["", f"Answers, p50 / p99 in ms ({first['n']} random people per size: 1-15 of the "
            "1,000 most rated movies, liked or disliked; limit 10). \"engine\": the Qdrant search "
            "alone (z-scores, 25 users); \"1 movie\": each of the 50 most rated movies alone in "
            "the tutorial mode (thousands of users tie); \"heavy\": the 11 most rated, liked and "
            "disliked in turn, tutorial mode:", "",
            table(["size", "engine", *heads, "1 movie", "heavy", "floor", "open store s"], rows)]
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


def headline(r: dict, info: dict) -> str:
    """README's headline figures: the default path first, the tutorial's in the same run."""
    parts = []
    when = time.strftime("%Y-%m-%d", time.gmtime())
    ing, a, h = r.get("ingest"), r.get("answers"), r.get("http")
    if ing:
        m = ing["median_s"]
        parts.append(f"`movierec ingest --dataset ml-1m` (the default, item model included) in "
                     f"{m['default']['total']:.2f} s, {ing['speedup_vs_tutorial']:.1f}x the "
                     f"tutorial's pipeline ({m['tutorial']['total']:.2f} s)")
    if a:
        d = a["tutorial_query_ms"][ml1m.DEFAULT]["p50"]
        tut = a["tutorial_query_ms"]["tutorial pipeline"]["p50"]
        parts.append(f"the default answer ({a['default_model']}) in {d:.2f} ms in-process, "
                     f"{tut / d:,.0f}x the tutorial's pipeline ({tut:.0f} ms)")
    if h:
        by = h["by_request"]
        d1 = _c(by[serving.DEFAULT]["by_concurrency"], 1)
        d8 = _c(by[serving.DEFAULT]["by_concurrency"], 8)
        text = (f"over HTTP p50 {d1['p50_ms']:.2f} ms at concurrency 1 and "
                f"{d8['rps']:,.0f} requests/s at concurrency 8")
        if "tutorial" in by:
            t8 = _c(by["tutorial"]["by_concurrency"], 8)
            text += (f" (the tutorial mode: {t8['rps']:,.0f}; {paired_ratio(d8, t8):.3f}x, "
                     "the median of the rounds' pairs)")
        parts.append(text)
    for size, label in (("25m", "25M"), ("100m", "100M")):
        s = r.get("scale", {}).get(size)
        if s and "failed" not in s["ingest"]:
            q = s["query"]["by_model_ms"]
            parts.append(f"{label} ratings: the default ingest in {s['ingest']['total']:.0f} s "
                         f"within {s['ingest']['peak_rss_mb'] / 1024:.1f} GiB, default answer "
                         f"p99 {q['default']['p99']:.1f} ms"
                         + (f" (tutorial mode {q['tutorial']['p99']:.1f} ms)"
                            if "tutorial" in q else ""))
    if not parts:
        return "(this run measured none of the headline figures)"
    missed = [row[0] for row in targets(r) if row[3] == "**missed**"]
    text = (f"From the last run ({when}, {info['cores']} cores, load average "
            f"{info['load_average'][0]:.1f} at the start; [BENCHMARKS.md](BENCHMARKS.md) "
            "has every number, the command and the machine): " + "; ".join(parts) + ".")
    if missed:
        text += " Targets missed: " + "; ".join(missed) + "."
    return text


if __name__ == "__main__":
    sys.exit(main())
