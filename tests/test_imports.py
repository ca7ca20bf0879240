"""Importing ratings from Letterboxd, IMDb and plain csv exports: parsing by the documented
columns, matching to the real ml-1m and ml-latest-small catalogs, and every bad file refused in
one line or answered in part with reasons. (HTTP: test_service.py; the page: tests/browser.)"""

from __future__ import annotations

import codecs

import pytest

from movierec import ingest, movielens
from movierec.catalog import MovieCatalog
from movierec.imports import MAX_ROWS, ExportError, read_ratings, title_key
from movierec.imports.matching import ARTICLES, _TRAILING_ARTICLE, _plain_words, title_names
from tests.conftest import dataset_dir
from tests.imports_helpers import WELL_KNOWN, csv_bytes, imdb, letterboxd

pytestmark = pytest.mark.ml1m


@pytest.fixture(scope="module")
def ml1m_catalog(ml1m) -> MovieCatalog:
    return MovieCatalog.from_payloads(ingest.movie_payloads(ml1m))


@pytest.fixture(scope="module")
def small() -> movielens.Dataset:
    return movielens.load(dataset_dir("ml-latest-small"), "ml-latest-small")


@pytest.fixture(scope="module")
def small_catalog(small) -> MovieCatalog:
    return MovieCatalog.from_payloads(ingest.movie_payloads(small))


# --- the done criterion ------------------------------------------------------------------------


def test_fifty_well_known_letterboxd_titles_match_ml1m_and_none_wrongly(ml1m_catalog):
    assert len(WELL_KNOWN) == 50
    data = letterboxd([(name, year, 4.5) for name, year, _ in WELL_KNOWN])
    result = read_ratings(ml1m_catalog, data)
    assert result.format == "letterboxd" and result.rows == 50
    got = {m.line: m.movie.movie_id for m in result.matched}
    expected = {line: movie_id for line, (_, _, movie_id) in enumerate(WELL_KNOWN, start=2)
                if movie_id is not None}
    assert got == expected  # none wrong, none missed among those ml-1m has
    assert len(result.matched) == 49 >= 48
    assert [(u.line, u.title, u.reason) for u in result.unmatched] == [
        (51, "Amélie", "no such movie in the catalog (its newest movies are from 2000)")]
    assert set(result.ratings.values()) == {4.5}


def letterboxd_form(title: str) -> str:
    """A MovieLens title the way Letterboxd writes it: main name, article in front, no year."""
    main = title_names(title)[0][0]
    moved = _TRAILING_ARTICLE.match(main)
    if moved and _plain_words(moved["article"]) in ARTICLES:
        article = moved["article"]
        main = article + ("" if article.endswith("'") else " ") + moved["body"]
    return main


@pytest.mark.parametrize(("catalog_name", "matched", "ambiguous"), [
    ("ml1m_catalog", 3883, 0),
    # The 10: five titles ml-latest-small lists twice under one name and year (Emma 1996, Saturn
    # 3, War of the Worlds 2005, Confessions of a Dangerous Mind, Eros), each reported ambiguous.
    ("small_catalog", 9732, 10),
])
def test_every_catalog_title_in_letterboxd_form_matches_back(request, catalog_name, matched,
                                                             ambiguous):
    catalog = request.getfixturevalue(catalog_name)
    movies = list(catalog)
    data = letterboxd([(letterboxd_form(m.title), m.year, 3) for m in movies])
    result = read_ratings(catalog, data)
    expected = {line: m.movie_id for line, m in enumerate(movies, start=2)}
    wrong = [(m.line, m.movie.title) for m in result.matched if expected[m.line] != m.movie.movie_id]
    assert wrong == []
    assert len(result.matched) == matched
    assert len(result.unmatched) == ambiguous
    assert all(u.reason.startswith("ambiguous: 2 movies from ") for u in result.unmatched)


# --- titles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("movielens", "elsewhere"), [
    ("Matrix, The (1999)", "The Matrix"),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "The City of Lost Children"),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "La Cité des Enfants Perdus"),
    ("Grande illusion, La (1937)", "La Grande Illusion"),
    ("Misérables, Les (1995)", "Les Misérables"),
    ("Blechtrommel, Die (1979)", "Die Blechtrommel"),
    ("Boot, Das (1981)", "Das Boot"),
    ("Postino, Il (1994)", "Il Postino"),
    ("Auberge espagnole, L' (2002)", "L'Auberge espagnole"),
    ("Twelve Monkeys (1995)", "12 Monkeys"),
    ("Seven (Se7en) (1995)", "Se7en"),
    ("Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Amélie"),
    ("Léon: The Professional (a.k.a. The Professional) (1994)", "Leon: The Professional"),
    ("Good, The Bad and The Ugly, The (1966)", "The Good, the Bad and the Ugly"),
    ("Star Wars: Episode IV - A New Hope (1977)", "Star Wars: Episode IV – A New Hope"),
])
def test_titles_match_across_articles_accents_punctuation_and_alternatives(movielens, elsewhere):
    names, _ = title_names(movielens)
    assert title_key(elsewhere) in {title_key(n) for n in names}


def test_a_year_off_by_one_matches_and_two_off_does_not(ml1m_catalog):
    data = letterboxd([("Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb",
                        1964, 5), ("The Matrix", 2001, 5), ("Psycho", 1998, 2)])
    result = read_ratings(ml1m_catalog, data)
    assert [(m.line, m.movie.movie_id) for m in result.matched] == [(2, 750), (4, 2389)]
    assert [(u.line, u.reason) for u in result.unmatched] == [
        (3, "no movie of that title within a year of 2001 (the catalog has one from 1999)")]


def test_no_year_matches_a_unique_title_and_reports_an_ambiguous_one(ml1m_catalog):
    data = letterboxd([("Being John Malkovich", None, 4), ("Psycho", None, 4)])
    result = read_ratings(ml1m_catalog, data)
    assert [m.movie.movie_id for m in result.matched] == [2997]
    assert result.unmatched[0].reason == ("ambiguous: 2 movies match (Psycho (1960); Psycho "
                                          "(1998))")


# --- IMDb ------------------------------------------------------------------------------------


def test_imdb_export_matches_by_imdb_id_where_the_dataset_links_them(small, small_catalog):
    assert small.files["links"].name == "links.csv"
    toy = small_catalog.get(1)
    assert toy.imdb_id == 114709  # links.csv: 1,0114709,862
    data = imdb([
        (114709, 10, "Toy Story", 1995, "Movie"),
        (133093, 9, "A title IMDb spells its own way", 1999, "Movie"),  # The Matrix
        (9999999, 7, "Not in the set", 2010, "Movie"),
        (903747, 8, "Breaking Bad", 2008, "TV Series"),
    ])
    result = read_ratings(small_catalog, data)
    assert result.format == "imdb"
    assert [(m.movie.movie_id, m.stars, m.by) for m in result.matched] == [
        (1, 5.0, "imdb id"), (2571, 4.5, "imdb id")]
    assert [(u.line, u.reason) for u in result.unmatched] == [
        (4, "tt9999999 is not in the catalog"), (5, "tt0903747 is not in the catalog")]


def test_imdb_export_matches_by_title_where_the_dataset_has_no_links(ml1m_catalog):
    data = imdb([(133093, 9, "The Matrix", 1999, "Movie"),
                 (None, 2, "Titanic", 1997, "movie"),
                 (903747, 8, "Breaking Bad", 2008, "TV Series")])
    result = read_ratings(ml1m_catalog, data)
    assert [(m.movie.movie_id, m.stars, m.by) for m in result.matched] == [
        (2571, 4.5, "title"), (1721, 1.0, "title")]
    assert result.unmatched[0].reason == ("a TV Series, not a film: only films are matched by "
                                          "title")


def test_ml_latest_small_movie_payloads_keep_the_imdb_id(small):
    payloads = ingest.movie_payloads(small)
    assert payloads[0]["imdb_id"] == 114709
    assert sum(p["imdb_id"] is not None for p in payloads) == len(payloads) == 9742
    assert "Cité des enfants perdus" in next(p["title"] for p in payloads if p["movie_id"] == 29)


def test_ml1m_payloads_have_no_imdb_id(ml1m):
    assert {p["imdb_id"] for p in ingest.movie_payloads(ml1m)} == {None}


# --- plain csv -------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [["movie_id", "rating"], ["movieId", "rating"], None])
def test_plain_csv_of_movie_ids_and_stars(ml1m_catalog, header):
    data = csv_bytes(header, [[2571, 5], [296, 1.5], [999999, 4], [1, 6]])
    result = read_ratings(ml1m_catalog, data)
    assert result.format == "csv"
    assert result.ratings == {2571: 5.0, 296: 1.5}
    first = 2 if header else 1
    assert [(u.line, u.reason) for u in result.unmatched] == [
        (first + 2, "movie id 999999 is not in the catalog"),
        (first + 3, "rating 6 is not between 0.5 and 5")]


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "error"), [
    (b"", "the file is empty"),
    (b"\n\n  \n", "the file is empty"),
    (b"Date,Name,Year,Letterboxd URI,Rating\n", "the file has a letterboxd header but no rows"),
    (b"title;stars\nMatrix;5\n", "the file is neither a Letterboxd ratings.csv (Name, Year, "
     "Rating), an IMDb ratings export (Const, Your Rating, Title, Year) nor a movie_id,rating "
     "csv: its first line is 'title;stars'"),
    ("Date,Name,Year,Letterboxd URI,Rating\n2024-01-01,Amélie,2001,x,4\n".encode("latin-1"),
     "line 2: the file is not UTF-8 text (byte 0xe9): export it again, or save it as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "line 1: the file is not UTF-8 text (byte 0x89): export it "
     "again, or save it as UTF-8"),
])
def test_a_file_that_is_no_export_gets_one_line(ml1m_catalog, data, error):
    with pytest.raises(ExportError) as caught:
        read_ratings(ml1m_catalog, data)
    assert str(caught.value) == error


def test_a_named_format_that_does_not_fit_says_which_column_is_missing(ml1m_catalog):
    with pytest.raises(ExportError, match="^not an IMDb ratings export: its first line has no "
                                          "'Your Rating' and no 'Const or Title' column$"):
        read_ratings(ml1m_catalog, letterboxd([("The Matrix", 1999, 5)]), "imdb")


def test_a_bom_quoted_commas_and_crlf_are_read(ml1m_catalog):
    text = ('Date,Name,Year,Letterboxd URI,Rating\r\n'
            '2024-01-01,"The Good, the Bad and the Ugly",1966,https://boxd.it/1,5\r\n'
            '2024-01-02,"Crouching Tiger, Hidden Dragon",2000,https://boxd.it/2,4\r\n'
            '2024-01-03,"Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb",'
            '1964,https://boxd.it/3,3.5\r\n')
    for data in (codecs.BOM_UTF8 + text.encode(), text.encode("utf-16")):
        result = read_ratings(ml1m_catalog, data)
        assert result.ratings == {1201: 5.0, 750: 3.5}
        assert [(u.line, u.title) for u in result.unmatched] == [
            (3, "Crouching Tiger, Hidden Dragon")]


def test_bad_rows_are_reported_and_the_rest_used(ml1m_catalog):
    data = letterboxd([("The Matrix", 1999, 5), ("Fargo", 1996, ""), ("Alien", 1979, "great"),
                       ("Aliens", 1986, 7), ("", 1990, 3), ("Matrix, The", 1999, 2)])
    result = read_ratings(ml1m_catalog, data)
    assert result.ratings == {2571: 5.0}
    assert [(u.line, u.reason) for u in result.unmatched] == [
        (3, "no rating"), (4, "rating 'great' is not a number"),
        (5, "rating 7 is not between 0.5 and 5"), (6, "no film name"),
        (7, "the same movie as line 2 (Matrix, The (1999)); that rating is kept")]


def test_a_hundred_thousand_rows_are_refused_in_one_line(ml1m_catalog):
    data = csv_bytes(["movie_id", "rating"], [[1 + k % 3000, 4] for k in range(100_000)])
    with pytest.raises(ExportError, match=f"the file has more than {MAX_ROWS:,} rows"):
        read_ratings(ml1m_catalog, data)


def test_past_the_ratings_limit_the_most_recent_are_kept_and_the_rest_reported(ml1m_catalog):
    movies = list(ml1m_catalog)[:30]
    rows = [[f"2024-01-{1 + k:02d}", letterboxd_form(m.title), m.year, "x", 4]
            for k, m in enumerate(movies)]
    data = csv_bytes(["Date", "Name", "Year", "Letterboxd URI", "Rating"], rows)
    result = read_ratings(ml1m_catalog, data, max_ratings=20)
    assert sorted(result.ratings) == sorted(m.movie_id for m in movies[10:])
    assert [u.line for u in result.unmatched] == list(range(2, 12))
    assert result.unmatched[0].reason == ("over the 20 ratings a recommendation can use (the "
                                          "most recently rated are kept)")


def test_an_unknown_format_is_refused(ml1m_catalog):
    with pytest.raises(ExportError, match="unknown format 'xlsx': use one of auto, letterboxd, "
                                          "imdb, csv"):
        read_ratings(ml1m_catalog, b"x", "xlsx")
