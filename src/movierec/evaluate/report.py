"""Reports: the run's notes, fixed-width tables (the CLI prints them), results.md and
results.json; for existing users the validation curves as Mermaid charts and the summary over
split seeds, for new people the curves against k and their plot (matplotlib)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from movierec.evaluate.metrics import BEYOND
from movierec.evaluate.protocol import K, METRICS, MIN_RATING, PROTOCOL, SEED, Split
from movierec.evaluate.tuning import ModelResult, format_params, format_value


def run_notes(info: Mapping[str, Any]) -> list[str]:
    """What a reader of the table needs to know about the run."""
    return [
        f"{info['dataset']}: {info['users']} users, {info['movies']} movies, "
        f"{info['interactions']} interactions (ratings >= {MIN_RATING}, 10-core), split "
        f"80/10/10 per user with seed {SEED}; tuned on valid, test shown "
        f"({info['seconds']:.0f} s in all)",
        f"engine qdrant: served through an embedded Qdrant store holding the train part "
        f"(built in {info['store_seconds']:.0f} s, item model learned at ingest with the served "
        f"defaults), each user asking recommend() with their train movies and stars"
        + (
            f"; user-knn tuned on {info['tuning_users']} validation users"
            if info.get("tuning_users")
            else ""
        )
        + ". engine numpy: in-memory baselines.",
    ]



# Shown in results.json, left out of the tables (they would only widen them).
_TABLE_HIDDEN = ("rating_weights", "liked_stars", "min_likes")

def format_table(results: Sequence[ModelResult], k: int = K) -> str:
    """The results as a fixed-width text table (test metrics)."""
    header = ["model", "engine", "params"] + [f"{name}@{k}" for name in METRICS + BEYOND] + ["time"]
    lines = [
        [r.model, r.engine, format_params(r.params, _TABLE_HIDDEN)]
        + [f"{getattr(r.test, name):.4f}" for name in METRICS + BEYOND]
        + [f"{r.seconds:.1f}s"]
        for r in results
    ]
    widths = [max(len(str(row[c])) for row in [header] + lines) for c in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = zip(row, widths)
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in lines])


def format_markdown(
    results: Sequence[ModelResult],
    split: Split | None = None,
    k: int = K,
    notes: Sequence[str] = (),
) -> str:
    """results.md: the table, the protocol, and NDCG@k on validation against each model's main
    parameter, the other parameters at their chosen values (Mermaid xychart, rendered by
    GitHub)."""
    names = [f"{name}@{k}" for name in METRICS + BEYOND]
    out = [
        f"# Offline evaluation (test part, k = {k})",
        "",
        "| model | engine | params | " + " | ".join(names) + " | time |",
        "|---|---|---|" + "---:|" * (len(names) + 1),
    ]
    for r in results:
        cells = [f"{getattr(r.test, name):.4f}" for name in METRICS + BEYOND]
        out.append(
            f"| {r.model} | {r.engine} | {format_params(r.params, _TABLE_HIDDEN)} | "
            + " | ".join(cells)
            + f" | {r.seconds:.1f} s |"
        )
    out += [""] + [f"{line}\n" for line in notes] + [PROTOCOL]
    if split is not None:
        out.append(
            f"\nData: {split.n_users} users, {split.n_items} movies, "
            f"{split.ratings.nnz} interactions ({split.train.nnz} train / {split.valid.nnz} "
            f"valid / {split.test.nnz} test)."
        )
    for r in results:
        points = [
            (p[r.main_param], m.ndcg)
            for p, m in r.tuning
            if r.main_param in p
            and all(v == r.params.get(key) for key, v in p.items() if key != r.main_param)
        ]
        if len(points) < 2:
            continue
        xs = ", ".join(format_value(x) for x, _ in points)
        ys = ", ".join(f"{y:.4f}" for _, y in points)
        lo, hi = min(y for _, y in points), max(y for _, y in points)
        out += [
            "",
            f"## {r.model}: validation NDCG@{k} against {r.main_param}",
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "{r.model} ({format_params(_others(r))})"' if _others(r) else
            f'    title "{r.model}"',
            f'    x-axis "{r.main_param}" [{xs}]',
            f'    y-axis "NDCG@{k} (valid)" {lo - 0.005:.3f} --> {hi + 0.005:.3f}',
            f"    line [{ys}]",
            "```",
        ]
    return "\n".join(out) + "\n"


def _others(r: ModelResult) -> dict[str, Any]:
    """The tuned parameters other than the main one, at their chosen values."""
    tuned = {key for p, _ in r.tuning for key in p}
    return {key: r.params[key] for key in r.params if key in tuned and key != r.main_param}


def write_results(
    results: Sequence[ModelResult],
    output_dir: str | Path,
    split: Split | None = None,
    *,
    k: int = K,
    notes: Sequence[str] = (),
) -> None:
    """DIR/results.json (one object per model) and DIR/results.md."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([r.row() for r in results], indent=2) + "\n")
    (out / "results.md").write_text(format_markdown(results, split, k=k, notes=notes))


# ---------------------------------------------------------------------------------------------
# New people: curves against k


def people_notes(info: Mapping[str, Any]) -> list[str]:
    """What a reader of the new-people tables needs to know about the run."""
    return [
        f"{info['dataset']}: {info['people']} people held out per seed, seeds "
        f"{', '.join(str(s) for s in info['seeds'])} ({info['valid_people']} validation people "
        f"tune, {info['test_people']} test people shown); each seed's store ingested from "
        f"everyone else ({info['store_seconds']:.0f} s for all stores, {info['seconds']:.0f} s "
        "in all)",
    ]


def _curve_table(results: Sequence[ModelResult], metric: str, label: str, digits: int,
                 best: str = "max") -> list[str]:
    ks = results[0].test.ks
    out = [f"| {label} | " + " | ".join(f"k={k}" for k in ks) + " |",
           "|---|" + "---:|" * len(ks)]
    values = np.array([r.test.at(metric) for r in results])
    pick = np.nanargmax if best == "max" else np.nanargmin
    winners = [pick(values[:, j]) for j in range(len(ks))]
    for i, r in enumerate(results):
        cells = [("**{:.%df}**" % digits if winners[j] == i else "{:.%df}" % digits).format(v)
                 for j, v in enumerate(values[i])]
        out.append(f"| {r.model} | " + " | ".join(cells) + " |")
    return out


def _given_withheld(results: Sequence[ModelResult], withheld: Mapping[str, Any], metric: str,
                    digits: int) -> list[str]:
    """`metric` against k per model, "given / withheld" in each cell."""
    ks = results[0].test.ks
    out = ["| model | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
    for r in results:
        given, without = r.test.at(metric), withheld[r.model].at(metric)
        out.append(f"| {r.model} | " + " | ".join(
            f"{a:.{digits}f} / {b:.{digits}f}" for a, b in zip(given, without)) + " |")
    return out


def format_people_markdown(results: Sequence[ModelResult], withheld: Mapping[str, Any],
                           notes: Sequence[str] = (), plot: str | None = None) -> str:
    """results.md of the new-people protocol: recall@20, NDCG@10 and disliked@10 against k
    (test people), the settings chosen on validation, dislikes given against withheld."""
    from movierec.evaluate.newpeople import PROTOCOL as PEOPLE_PROTOCOL

    ks = results[0].test.ks
    out = ["# New people: k given ratings (test people)", ""]
    if plot:
        out += [f"![recall@20 against k]({plot})", ""]
    out += ["recall@20:", ""] + _curve_table(results, "recall", "model", 3)
    out += ["", "NDCG@10:", ""] + _curve_table(results, "ndcg", "model", 3)
    out += ["", "disliked@10 (lower is better):", ""]
    out += _curve_table(results, "disliked", "model", 2, best="min")
    out += ["", "recall@20 with dislikes given / withheld (only likes in the query):", ""]
    out += _given_withheld(results, withheld, "recall", 3)
    out += ["", "disliked@10 with dislikes given / withheld:", ""]
    out += _given_withheld(results, withheld, "disliked", 2)
    out += ["", f"{results[0].model} (the default) against every other model at each k:", ""]
    out += people_verdicts(results)
    schedule = results[0].params.get("schedule")
    if schedule and len(schedule) > 1:
        out += ["", f"{results[0].model}'s shares chosen at each k on validation people:", "",
                "| k | prior's share | similar users' share of the rest | mean factor's power |",
                "|---:|---:|---:|---:|"]
        out += [f"| {row[0]:g} | " + " | ".join(f"{x:g}" for x in row[1:]) + " |"
                for row in schedule]
    out += ["", "| model | engine | chosen on validation | time |", "|---|---|---|---:|"]
    for r in results:
        out.append(f"| {r.model} | {r.engine} | {format_params(r.params, _TABLE_HIDDEN)} | "
                   f"{r.seconds:.0f} s |")
    people = results[0].test.people_at()
    out += ["", "Test people judged at each k: " + ", ".join(
        f"k={k}: {n}" for k, n in zip(ks, people)) + "."]
    out += [""] + [f"{line}\n" for line in notes] + [PEOPLE_PROTOCOL]
    return "\n".join(out) + "\n"


def people_verdicts(results: Sequence[ModelResult]) -> list[str]:
    """The default (the first result) against the others at each k, on test people: its
    recall@20 against the best other model's (and popularity's), its disliked@10 against
    popularity's. Markdown table lines."""
    default, others = results[0], results[1:]
    by_name = {r.model: r for r in results}
    ks = default.test.ks
    recall = default.test.at("recall")
    disliked = default.test.at("disliked")
    popular = by_name.get("popularity")
    out = [f"| k | {default.model} recall@20 | best other | at least as good | "
           f"{default.model} disliked@10 | popularity disliked@10 | no higher |",
           "|---:|---:|---|---|---:|---:|---|"]
    for i, k in enumerate(ks):
        values = [(r.test.at("recall")[i], r.model) for r in others]
        best, name = max(values, key=lambda v: np.nan_to_num(v[0], nan=-1.0))
        pop = popular.test.at("disliked")[i] if popular is not None else np.nan
        out.append(f"| {k} | {recall[i]:.3f} | {best:.3f} ({name}) | "
                   f"{'yes' if recall[i] >= best else 'no'} | {disliked[i]:.2f} | {pop:.2f} | "
                   f"{'yes' if disliked[i] <= pop else 'no'} |")
    return out


def format_people_table(results: Sequence[ModelResult]) -> str:
    """recall@20 and disliked@10 against k, fixed width (what the CLI prints)."""
    ks = results[0].test.ks
    width = max(len(r.model) for r in results)
    head = f"{'recall@20':<{width}}  " + "  ".join(f"{'k=' + str(k):>6}" for k in ks)
    lines = [head]
    for r in results:
        lines.append(f"{r.model:<{width}}  " + "  ".join(f"{v:6.3f}" for v in r.test.at("recall")))
    lines.append(f"{'disliked@10':<{width}}")
    for r in results:
        lines.append(f"{r.model:<{width}}  "
                     + "  ".join(f"{v:6.2f}" for v in r.test.at("disliked")))
    return "\n".join(lines)


def plot_people(results: Sequence[ModelResult], path: str | Path, title: str) -> None:
    """recall@20 against k (log axis), one line per model, 95% intervals of the mean shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, r in enumerate(results):  # the default is listed first: drawn thicker
        ks, y, half = np.array(r.test.ks), r.test.at("recall"), r.test.interval("recall")
        (line,) = ax.plot(ks, y, marker="o", label=r.model, linewidth=2.6 if i == 0 else 1.4)
        ax.fill_between(ks, y - half, y + half, color=line.get_color(), alpha=0.08)
    ax.set_xscale("log")
    ax.set_xticks(results[0].test.ks, [str(k) for k in results[0].test.ks])
    ax.minorticks_off()
    ax.set_xlabel("ratings given (k)")
    ax.set_ylabel("recall@20 (test people)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_people_results(results: Sequence[ModelResult], withheld: Mapping[str, Any],
                         output_dir: str | Path, *, title: str,
                         notes: Sequence[str] = ()) -> list[Path]:
    """DIR/results.json, DIR/results.md and DIR/recall_vs_k.png; returns their paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [dict(r.row(), dislikes_withheld=withheld[r.model].as_dict()) for r in results]
    paths = [out / "results.json", out / "results.md", out / "recall_vs_k.png"]
    paths[0].write_text(json.dumps(rows, indent=2) + "\n")
    plot_people(results, paths[2], title)
    paths[1].write_text(format_people_markdown(results, withheld, notes, paths[2].name))
    return paths


def format_seeds_markdown(summary: Sequence[Mapping[str, Any]], metric: str = "ndcg@10",
                          reference: str = "ease") -> str:
    """The existing-users protocol over several split seeds: mean, 95% interval, and the paired
    difference against `reference`."""
    n = summary[0]["seeds"]
    out = [f"| model | {metric} (mean of {n} splits) | 95% interval | vs {reference} "
           "(paired) | 95% interval | coverage | popularity | long tail | Gini |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in summary:
        out.append(f"| {row['model']} | {row['mean']:.4f} | ±{row['ci95']:.4f} | "
                   f"{row['vs_' + reference]:+.4f} | ±{row['vs_ci95']:.4f} | "
                   f"{row['coverage']:.3f} | {row['popularity']:.3f} | {row['long_tail']:.3f} | "
                   f"{row['gini']:.3f} |")
    return "\n".join(out) + "\n"
