"""Reports of the existing-users protocol: the run's notes, a fixed-width table (the CLI
prints it), results.md (table, protocol, validation curves as Mermaid charts) and
results.json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    header = ["model", "engine", "params"] + [f"{name}@{k}" for name in METRICS] + ["time"]
    lines = [
        [r.model, r.engine, format_params(r.params, _TABLE_HIDDEN)]
        + [f"{getattr(r.test, name):.4f}" for name in METRICS]
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
    names = [f"{name}@{k}" for name in METRICS]
    out = [
        f"# Offline evaluation (test part, k = {k})",
        "",
        "| model | engine | params | " + " | ".join(names) + " | time |",
        "|---|---|---|" + "---:|" * (len(names) + 1),
    ]
    for r in results:
        cells = [f"{getattr(r.test, name):.4f}" for name in METRICS]
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
