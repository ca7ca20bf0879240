"""The one tune-on-validation-then-test loop every model goes through (numpy baselines, the
Qdrant-served models, both protocols), and the result it gives."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from movierec.evaluate.metrics import evaluate_ranker
from movierec.evaluate.protocol import K, SEED, Split, prepare_split
from movierec.evaluate.rankers import Model, Ranker, baseline_models


@dataclass
class ModelResult:
    """A model's test metrics with the setting chosen on validation (`valid` is None for a
    model evaluated in one fixed setting). `engine`: "qdrant" when served through the store,
    "numpy" for an in-memory baseline. `test`/`valid` are Metrics in the existing-users
    protocol and new-people curves (movierec.evaluate.newpeople) in the other."""

    model: str
    params: dict[str, Any]
    test: Any
    valid: Any | None
    seconds: float
    main_param: str | None = None
    tuning: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    engine: str = "numpy"

    def row(self) -> dict[str, Any]:
        """The results.json object of this model."""
        row = {
            "model": self.model,
            "engine": self.engine,
            "params": plain(self.params),
            **self.test.as_dict(),
            "users": self.test.users,
            "seconds": round(self.seconds, 1),
        }
        if len(self.tuning) > 1:
            row["tuning"] = [{"params": plain(p), **m.tuning_dict()} for p, m in self.tuning]
        return row


def plain(value: Any) -> Any:
    """Plain JSON types (dict keys as strings)."""
    return json.loads(json.dumps(value))


def format_params(params: Mapping[str, Any], hidden: Sequence[str] = ()) -> str:
    shown = {k: v for k, v in params.items() if k not in hidden and v is not None}
    return " ".join(f"{key}={format_value(value)}" for key, value in shown.items()) or "-"


def format_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "/".join(f"{format_value(k)}:{format_value(v)}" for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def tune_then_test(
    name: str,
    grid: Sequence[Mapping[str, Any]],
    build: Callable[..., Any],
    valid: Callable[[Any, str | bool], Any],
    test: Callable[[Any, str | bool], Any],
    *,
    main_param: str | None = None,
    engine: str = "numpy",
    key: Callable[[Any], float] = lambda m: m.ndcg,
    progress: bool = False,
) -> ModelResult:
    """Each setting of `grid` built (`build(**params)`) and scored on validation
    (`valid(ranker, label)`), the best by `key` scored on test (`test(ranker, label)`). A grid
    of one setting is not validated: there is nothing to choose."""
    if not grid:
        raise ValueError(f"model {name!r} has an empty parameter grid")
    started = time.perf_counter()
    tuning: list[tuple[dict[str, Any], Any]] = []
    best = None
    for params in grid if len(grid) > 1 else ():
        ranker = build(**params)
        label = f"{name} {format_params(params)} (valid)" if progress else False
        metrics = valid(ranker, label)
        if best is None or key(metrics) > max(key(m) for _, m in tuning):
            best = ranker  # keep only the best fitted model, not all of them
        tuning.append((dict(params), metrics))
        del ranker
    if tuning:
        best_params, best_valid = max(tuning, key=lambda pair: key(pair[1]))
    else:
        best_params, best_valid, best = dict(grid[0]), None, build(**grid[0])
    scored = test(best, f"{name} (test)" if progress else False)
    return ModelResult(
        name, best_params, scored, best_valid, time.perf_counter() - started, main_param,
        tuning, engine,
    )


def evaluate_model(
    model: Model, split: Split, *, k: int = K, progress: bool = False
) -> ModelResult:
    """Tune `model` on the validation part, then evaluate its best setting on test."""
    train = split.ratings.multiply(split.train).tocsr()

    def build(**params: Any) -> Ranker:
        return model.build(train, **params)

    return tune_then_test(
        model.name, model.grid, build,
        lambda ranker, label: evaluate_ranker(ranker, split, "valid", k=k, progress=label),
        lambda ranker, label: evaluate_ranker(ranker, split, "test", k=k, progress=label),
        main_param=model.main_param, progress=progress,
    )


def evaluate_models(
    split: Split, models: Iterable[Model], *, k: int = K, progress: bool = False
) -> list[ModelResult]:
    return [evaluate_model(m, split, k=k, progress=progress) for m in models]


def run_evaluation(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray,
    models: Iterable[Model] | None = None,
    *,
    seed: int = SEED,
    k: int = K,
    progress: bool = False,
    output_dir: str | Path | None = None,
) -> list[ModelResult]:
    """The whole protocol on raw ratings arrays: filter, split, tune and test each model
    (the baselines and the numpy item model when `models` is None); with `output_dir`, write
    results.json and results.md there."""
    from movierec.evaluate.report import write_results

    split = prepare_split(user_ids, movie_ids, ratings, seed=seed)
    results = evaluate_models(
        split, baseline_models() if models is None else models, k=k, progress=progress
    )
    if output_dir is not None:
        write_results(results, output_dir, split, k=k)
    return results
