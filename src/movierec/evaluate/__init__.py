"""Offline evaluation of every model against baselines, in two protocols.

- existing users (RecBole's ML-1M protocol): k-core filter, random 80/10/10 split per user,
  ranking of the whole catalog (protocol, metrics, rankers, served, report);
- new people (newpeople): people held out of the store, each giving k of their ratings.

The Qdrant-served models go through a real embedded store built by the real ingest, asked
exactly as the service asks it; in-memory numpy baselines are measured beside them.
"""

from movierec.evaluate.metrics import BEYOND, Metrics, evaluate_ranker, exposure_metrics, user_metrics
from movierec.evaluate.protocol import (
    K,
    METRICS,
    MIN_ITEM_INTERACTIONS,
    MIN_RATING,
    MIN_USER_INTERACTIONS,
    PHASES,
    PROTOCOL,
    SEED,
    SPLIT_RATIOS,
    Split,
    filter_interactions,
    part_counts,
    prepare_split,
    split_interactions,
)
from movierec.evaluate.rankers import (
    NUMPY_ITEM,
    Model,
    Ranker,
    baseline_models,
    item_weights_ranker,
    matrix_ranker,
    movie_id_ranker,
    popularity_ranker,
    top_k,
)
from movierec.evaluate.report import format_markdown, format_table, run_notes, write_results
from movierec.evaluate.served import (
    SERVED_MODELS,
    TUNING_USERS,
    USER_KNN_GRID,
    ServedModel,
    evaluate_all,
    evaluate_served,
    served_models,
    served_store,
    store_ranker,
    train_dataset,
    tuning_sample,
)
from movierec.evaluate.tuning import (
    ModelResult,
    evaluate_model,
    evaluate_models,
    run_evaluation,
    tune_then_test,
)

__all__ = [name for name in dir() if not name.startswith("_")]
