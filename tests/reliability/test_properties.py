"""Property tests (hypothesis): whatever arrives, nothing invalid reaches the engine, and every
rejection is one line that names the problem. The engine used is real (embedded qdrant-edge on a
small synthetic dataset), because qdrant-edge itself validates nothing (ARCHITECTURE.md).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from movierec import ingest, movielens, recommend
from movierec.errors import DataError, NotFoundError, QueryError
from movierec.models import REGISTRY
from movierec.service.errors import _message
from movierec.service.schemas import MAX_ID, RecommendationRequest
from movierec.service.strict import MAX_JSON_DEPTH, max_depth
from movierec.store import open_reader, open_writer
from movierec.vectors import MAX_INDEX, SparseVector, query_vector
from tests.conftest import settings_for

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def one_line(message: str) -> None:
    assert message and message.strip() == message and "\n" not in message, repr(message)
    assert "Traceback" not in message


def assert_engine_ready(vector: SparseVector) -> None:
    """What qdrant-edge needs and does not check: sorted unique u32 indices, finite f32."""
    vector.validate()
    assert vector.indices.dtype == np.uint32 and vector.values.dtype == np.float32
    assert np.all(np.diff(vector.indices.astype(np.int64)) > 0)
    assert np.all(np.isfinite(vector.values))


# --- sparse vectors ------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**32, 2**32 - 1, 1e400, -0.0, 3.5e38, 3.5e39, 1e-400]),
)


@PROPERTY
@given(indices=st.lists(numbers, max_size=30), values=st.lists(numbers, max_size=30))
def test_sparse_vector_from_untrusted_input_is_engine_ready_or_refused_with_a_reason(
    indices, values
):
    try:
        vector = SparseVector.checked(indices, values)
    except (ValueError, OverflowError) as exc:
        assert isinstance(exc, ValueError), f"{type(exc).__name__}: {exc}"
        one_line(str(exc))
        return
    assert_engine_ready(vector)
    # Nothing lost or invented: the same (index, value) pairs, in index order.
    expected = sorted(zip(indices, values))
    assert vector.indices.tolist() == [int(i) for i, _ in expected]
    assert np.allclose(vector.values, np.float32([v for _, v in expected]))


@PROPERTY
@given(st.dictionaries(st.integers(-(2**40), 2**40), numbers, max_size=40))
def test_query_vector_is_engine_ready_or_a_query_error(ratings):
    try:
        vector = query_vector(ratings)
    except QueryError as exc:
        one_line(str(exc))
        return
    assert_engine_ready(vector)
    assert len(vector) == len(ratings)


# --- request bodies, all the way to the real engine ----------------------------------------

@pytest.fixture(scope="module")
def small_store(small_dir):
    folder = Path(tempfile.mkdtemp(prefix="movierec-props-"))
    settings = settings_for(qdrant_path=folder / "q")
    ingest.write(open_writer(settings),
                 ingest.prepare(movielens.load(small_dir, "small"), REGISTRY.unlearned()), progress=False)
    reader = open_reader(settings)
    yield reader
    reader.close()
    shutil.rmtree(folder, ignore_errors=True)


movie_keys = st.one_of(
    st.integers(0, 130).map(str),  # mostly real movies (1..120), some unknown
    st.sampled_from(["-1", "0", str(2**32), str(2**32 - 1), "1e400", "NaN", "", " 1", "+1",
                     "01", "٣", "1.0", "0x10", "1_000"]),
    st.text(max_size=8),  # control characters and line breaks included
)
rating_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-10, 10), st.sampled_from([1, -1, 0.5, 5, 1e308, -1e308]),
    st.booleans(), st.text(max_size=4), st.none(),
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"ratings": st.dictionaries(movie_keys, rating_values, max_size=25)},
        optional={
            "limit": st.one_of(st.integers(-5, 200), st.floats(), st.text(max_size=3)),
            "neighbors": st.one_of(st.integers(-5, 1200), st.none()),
            "scale": st.sampled_from(["unit", "stars", "percent", "", None]),
            "extra": st.integers(),
        },
    ),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8),
)


def validation_message(exc: ValidationError) -> str:
    """What the service answers for it: app._message of the first error."""
    return _message(exc.errors()[0])


@PROPERTY
@given(body=bodies)
def test_any_request_body_is_answered_or_refused_with_a_clear_message(small_store, body):
    raw = json.dumps(body)
    try:
        request = RecommendationRequest.model_validate_json(raw)
        ratings = request.movie_ratings()
    except ValidationError as exc:
        one_line(validation_message(exc))
        return
    except ValueError as exc:
        one_line(str(exc))
        return
    # Accepted by the schema: ids are u32, ratings finite, at most MAX_RATINGS of them.
    assert all(0 <= m <= MAX_ID for m in ratings)
    assert all(math.isfinite(v) for v in ratings.values())
    try:
        query = recommend.validate_ratings(small_store, ratings, request.scale)
    except QueryError as exc:
        one_line(str(exc))
        return
    assert_engine_ready(query)
    assert set(query.indices.tolist()) == set(ratings)
    # ... and the real engine answers it.
    try:
        answer = recommend.recommend(small_store, ratings, limit=request.limit,
                                     neighbors=request.neighbors, scale=request.scale)
    except QueryError as exc:  # e.g. "ratings are all 0": a model's own, later check
        one_line(str(exc))
        return
    assert len(answer.items) <= request.limit
    assert all(math.isfinite(r.score) for r in answer.items)
    assert not {r.movie.movie_id for r in answer.items} & set(ratings)


def test_a_movie_id_with_a_line_break_is_not_echoed_into_the_error():
    raw = json.dumps({"ratings": {"1\nX-Injected: yes": "good"}})
    with pytest.raises(ValidationError) as caught:
        RecommendationRequest.model_validate_json(raw)
    one_line(_message(caught.value.errors()[0]))


@PROPERTY
@given(user_id=st.integers(0, MAX_INDEX), limit=st.integers(1, 100), neighbors=st.integers(1, 1000))
def test_any_user_id_is_answered_or_not_found(small_store, user_id, limit, neighbors):
    try:
        answer = recommend.recommend_for_user(small_store, user_id, limit, neighbors)
    except NotFoundError as exc:
        assert str(exc) == f"no user {user_id} in the dataset"
        return
    assert 1 <= user_id <= 300
    assert len(answer.items) <= limit


# --- the JSON guard ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(alphabet='[]{}"\\ab', max_size=4), inner, max_size=3),
    max_leaves=40,
)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@PROPERTY
@given(json_values)
def test_nesting_depth_is_counted_exactly_even_with_brackets_inside_strings(value):
    assert max_depth(json.dumps(value).encode()) == depth_of(value)


@PROPERTY
@given(st.binary(max_size=300))
def test_nesting_depth_of_any_bytes_is_computed_without_error(raw):
    assert 0 <= max_depth(raw) <= raw.count(b"[") + raw.count(b"{")


@settings(max_examples=50, deadline=None)
@given(st.integers(MAX_JSON_DEPTH + 1, 5_000))
def test_deep_nesting_beyond_the_limit_is_always_detected(depth):
    assert max_depth(b"[" * depth + b"]" * depth) == depth > MAX_JSON_DEPTH


# --- dataset parsers -----------------------------------------------------------------------

field = st.one_of(
    st.integers(-3, 40).map(str), st.sampled_from(["", "x", "1.5", "NaN", "1e400", str(2**32),
                                                   "-0", " 3", "5.0", "0.5", "\u00e9"]),
    st.text(alphabet="0123456789:.-e \t", max_size=6),
)
rating_line = st.one_of(
    st.tuples(st.integers(1, 30), st.integers(1, 20), st.integers(1, 5), st.integers(0, 9)).map(
        lambda t: "::".join(map(str, t))),  # a well-formed line
    st.lists(field, min_size=1, max_size=6).map("::".join),  # anything with separators
)
movie_line = st.one_of(
    st.integers(1, 20).map(lambda m: f"{m}::Movie {m} (19{m:02d})::Drama|Comedy"),
    st.lists(field, min_size=1, max_size=4).map("::".join),
)


def write_dat(folder: Path, ratings: list[str], movies: list[str]) -> None:
    (folder / "ratings.dat").write_bytes("\n".join(ratings).encode("latin-1", "replace"))
    (folder / "movies.dat").write_bytes("\n".join(movies).encode("latin-1", "replace"))


def check_parsed(folder: Path) -> None:
    try:
        dataset = movielens.load(folder, "fuzz")
        movielens.check_movies_known(dataset)
    except DataError as exc:
        message = str(exc)
        one_line(message)
        assert message.startswith(str(folder)), message  # names the file (and line)
        return
    assert dataset.n_ratings > 0
    assert dataset.user_ids.min() >= 0 and dataset.user_ids.max() <= MAX_ID
    assert dataset.movie_ids.min() >= 0 and dataset.movie_ids.max() <= MAX_ID
    assert np.all((dataset.ratings >= 0.5) & (dataset.ratings <= 5))
    pairs = dataset.user_ids * (2**32) + dataset.movie_ids
    assert np.unique(pairs).size == pairs.size
    # What ingest builds from it is engine-ready.
    try:
        prepared = ingest.prepare(dataset, REGISTRY.unlearned())
    except DataError as exc:
        one_line(str(exc))
        return
    prepared.vectors.validate()


def test_a_dataset_with_one_rating_is_a_data_error(tmp_path):
    write_dat(tmp_path, ["1::1::5::0"], ["1::A (2000)::Drama"])
    with pytest.raises(DataError):
        ingest.prepare(movielens.load(tmp_path, "one"), REGISTRY.unlearned())


@PROPERTY
@given(ratings=st.lists(rating_line, min_size=0, max_size=12),
       movies=st.lists(movie_line, min_size=0, max_size=6))
def test_a_dat_dataset_either_parses_into_valid_vectors_or_names_file_and_line(
    tmp_path_factory, ratings, movies
):
    folder = tmp_path_factory.mktemp("dat")
    write_dat(folder, ratings, movies)
    check_parsed(folder)


def test_an_empty_movies_file_is_a_data_error(tmp_path):
    write_dat(tmp_path, ["1::1::5::0"], [])
    check_parsed(tmp_path)


def test_a_csv_file_with_only_its_header_is_a_data_error(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (2000),Drama\n")
    check_parsed(tmp_path)


csv_field = st.one_of(field, st.sampled_from(['"1"', '"a,b"', "", "4.5"]))


@PROPERTY
@given(ratings=st.lists(st.one_of(
    st.tuples(st.integers(1, 30), st.integers(1, 20), st.sampled_from([0.5, 3, 4.5, 5])).map(
        lambda t: f"{t[0]},{t[1]},{t[2]},0"),
    st.lists(csv_field, min_size=1, max_size=6).map(",".join)), max_size=12),
    movies=st.lists(st.one_of(
        st.integers(1, 20).map(lambda m: f'{m},"Movie, {m} (2001)",Drama'),
        st.lists(csv_field, min_size=1, max_size=4).map(",".join)), max_size=6))
def test_a_csv_dataset_either_parses_into_valid_vectors_or_names_file_and_line(
    tmp_path_factory, ratings, movies
):
    folder = tmp_path_factory.mktemp("csv")
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(ratings))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies))
    check_parsed(folder)


@PROPERTY
@given(st.text(max_size=80))
def test_a_checksum_setting_is_parsed_or_refused_with_the_expected_form(text):
    try:
        algorithm, digest = movielens.parse_checksum(text)
    except DataError as exc:
        one_line(str(exc))
        assert "expected md5:<32 hex> or sha256:<64 hex>" in str(exc)
        return
    assert (algorithm, len(digest)) in {("md5", 32), ("sha256", 64)}
    assert set(digest) <= set("0123456789abcdef")
