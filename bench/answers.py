"""Every model's answers to a fixed set of people, written as one JSON file, so that a change
meant to leave the answers alone can be checked byte for byte: dump with the code before and
after, on the same store, and compare.

    python -m bench.answers --out before.json          # QDRANT_PATH: the store to answer from
    (change the code)
    python -m bench.answers --out after.json && cmp before.json after.json

The people (seeded): 260 of 1-15 of the 1,000 most rated movies, every other one in stars
(1-5, half stars included, so dislikes too) and the rest +1/-1, every seventh with a genre
filter (Comedy); each answered by the default (no model named) and by every available model,
limit 10; then the request without ratings. Each answer: the model that answered, its
neighbour count, and per movie its id, its score's repr (every bit) and its `why`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from movierec import recommend
from movierec.config import Settings
from movierec.store import MovieFilter, open_reader

PEOPLE = 260


def dump(store, people: int = PEOPLE, seed: int = 7) -> list:
    rng = np.random.default_rng(seed)
    popular = sorted(store.catalog(), key=lambda m: -m.rating_count)[:1000]
    ids = np.array([m.movie_id for m in popular])
    models = [None, *recommend.available_models(store)]
    out: list = []
    for i in range(people):
        chosen = rng.choice(ids, size=int(rng.integers(1, 16)), replace=False)
        scale = "stars" if i % 2 else "unit"
        values = [1, 2, 2.5, 3, 3.5, 4, 4.5, 5] if scale == "stars" else [1.0, -1.0]
        ratings = {int(m): float(rng.choice(values)) for m in chosen}
        movie_filter = MovieFilter(genres=("Comedy",)) if i % 7 == 0 else None
        for model in models:
            answer = recommend.recommend(store, ratings, limit=10, scale=scale, model=model,
                                         movie_filter=movie_filter)
            out.append([model, answer.model, answer.neighbors,
                        [(r.movie.movie_id, repr(r.score), r.why) for r in answer.items]])
    answer = recommend.recommend(store, {}, limit=10)
    out.append(["no ratings", answer.model, [(r.movie.movie_id, r.why) for r in answer.items]])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--people", type=int, default=PEOPLE)
    args = parser.parse_args(argv)
    with open_reader(Settings()) as store:
        answers = dump(store, args.people)
    args.out.write_text(json.dumps(answers, sort_keys=True))
    print(f"{len(answers)} answers -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
