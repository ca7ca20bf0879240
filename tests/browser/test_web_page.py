"""The web page in headless Chromium, against a real `movierec serve` on the embedded ml-1m store:
what the page shows must be what the API answers for the same ratings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REFERENCE
from tests.service_helpers import Service, running, serve_prepared

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the `browser` fixture skips, or fails under CI=true, and says why
    Page = expect = None

pytestmark = pytest.mark.ml1m

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def web(tmp_path_factory, ml1m_prepared_full) -> Iterator[Service]:
    service = serve_prepared(ml1m_prepared_full, tmp_path_factory.mktemp("web"))
    yield service
    service.stop()


def recommendation_requests(page: Page) -> list[dict]:
    """Every body the page POSTs to /recommendations, in order."""
    bodies: list[dict] = []
    page.on("request", lambda r: bodies.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/recommendations") else None)
    return bodies


def shown(page: Page) -> list[tuple]:
    """The recommendations on the page: id, title, score as shown and exactly, genres, why."""
    return page.locator("#results > li").evaluate_all("""items => items.map(li => [
        Number(li.dataset.movieId), li.querySelector('.title').textContent,
        li.querySelector('.score').textContent, Number(li.dataset.score),
        li.querySelector('.genres').textContent, li.querySelector('.why')?.textContent ?? null])""")


def as_shown(answer: dict) -> list[list]:
    """The API's answer as the page should show it (the "why" line once the API gives one)."""
    return [[m["movie_id"], m["title"], f"{m['score']:.4f}", m["score"], ", ".join(m["genres"]),
             (m.get("why") or {}).get("text")] for m in answer["items"]]


def wait_for_recommendations(page: Page, count: int, rated: int) -> None:
    """Every change marks the list busy at once (aria-busy), so not busy means the answer to the
    latest request is on the page."""
    summary = page.locator("#summary")
    expect(summary).to_have_text(re.compile(rf"^{count} movies for your {rated} rated movies?\b"))
    expect(page.locator("#results")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#results > li")).to_have_count(count)


def search_for(page: Page, text: str, first: str) -> None:
    """Types like a person; returns once the matches for the whole text are listed."""
    box = page.get_by_role("combobox", name="Find a movie by title")
    box.press_sequentially(text, delay=20)
    expect(page.locator("#search-status")).to_have_text(
        re.compile(rf'^\d+ movies? found for "{re.escape(text)}"$'))
    expect(page.get_by_role("listbox", name="Movies found").get_by_role("option").first
           ).to_contain_text(first)


def test_typing_liking_and_disliking_shows_the_apis_recommendations(web, page):
    bodies = recommendation_requests(page)
    page.goto(web.url + "/")
    expect(page.locator("#status")).to_have_text(re.compile(r"^ml-1m: 3,883 movies, 6,040 users"))
    box = page.get_by_role("combobox", name="Find a movie by title")
    box.focus()

    # Keyboard only: the first match is chosen as you type; Enter likes it.
    search_for(page, "matrix", "Matrix, The (1999)")
    box.press("Enter")
    expect(page.locator("#search-status")).to_have_text("Liked Matrix, The (1999)")
    wait_for_recommendations(page, 10, 1)

    # Arrow down to the second match, then Enter.
    search_for(page, "star wars", "Star Wars: Episode IV - A New Hope (1977)")
    box.press("ArrowDown")
    found = page.get_by_role("listbox", name="Movies found")
    expect(found.get_by_role("option", selected=True)).to_contain_text(
        "Star Wars: Episode V - The Empire Strikes Back (1980)")
    box.press("Enter")
    wait_for_recommendations(page, 10, 2)

    # The mouse: the Like button of a match.
    search_for(page, "toy story", "Toy Story (1995)")
    page.get_by_role("listbox", name="Movies found").get_by_role(
        "button", name="Like Toy Story (1995)", exact=True).click()
    wait_for_recommendations(page, 10, 3)

    # Shift+Enter dislikes.
    search_for(page, "pulp fiction", "Pulp Fiction (1994)")
    box.press("Shift+Enter")
    wait_for_recommendations(page, 10, 4)

    rated = page.get_by_role("list", name="Movies you rated")
    for name in ("Like Matrix, The (1999)", "Dislike Pulp Fiction (1994)"):
        expect(rated.get_by_role("button", name=name, exact=True)).to_have_attribute(
            "aria-pressed", "true")
    ratings = {"2571": 1, "1196": 1, "1": 1, "296": -1}
    assert bodies[-1]["ratings"] == ratings
    assert bodies[-1]["limit"] == 10
    answer = web.client.post("/recommendations", json=bodies[-1])
    assert answer.status_code == 200
    assert shown(page) == as_shown(answer.json())
    assert len(answer.json()["items"]) == 10

    # The link reproduces the page.
    assert page.url == web.url + "/?like=2571,1196,1&dislike=296"
    box.blur()
    first = page.locator("#results > li").first
    first.locator("button.more").click()
    expect(first.locator(".similar-list > li")).to_have_count(5)
    page.screenshot(path=SCREENSHOT, full_page=True)
    shared = page.context.new_page()
    shared.goto(page.url)
    wait_for_recommendations(shared, 10, 4)
    assert shown(shared) == shown(page)
    shared.close()

    # Removing a movie updates the recommendations and the link.
    page.get_by_role("button", name="Remove Pulp Fiction (1994)", exact=True).click()
    wait_for_recommendations(page, 10, 3)
    assert page.url == web.url + "/?like=2571,1196,1"
    assert bodies[-1]["ratings"] == {"2571": 1, "1196": 1, "1": 1}
    assert shown(page) == as_shown(web.client.post("/recommendations", json=bodies[-1]).json())


def test_the_page_comes_from_the_service_alone_under_a_strict_csp(web, page):
    r = web.client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["content-security-policy"].startswith("default-src 'self';")
    for asset in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        assert web.client.get(asset).status_code == 200
    assert web.client.get("/static/missing.js").status_code == 404

    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(web.url + "/?like=2571")
    wait_for_recommendations(page, 10, 1)
    assert urls and all(url.startswith(web.url + "/") for url in urls), urls


def test_star_ratings_are_sent_as_stars_and_shown_as_the_api_answers(web, page):
    bodies = recommendation_requests(page)
    page.goto(web.url + "/?like=2571,260&dislike=296")
    wait_for_recommendations(page, 10, 3)
    page.get_by_label("1–5 stars").check()
    expect(page).to_have_url(web.url + "/?stars=2571:5,260:5,296:1")
    page.get_by_label("Stars for Matrix, The (1999)").select_option("4")
    expect(page).to_have_url(web.url + "/?stars=2571:4,260:5,296:1")
    wait_for_recommendations(page, 10, 3)
    assert bodies[-1]["scale"] == "stars"
    assert bodies[-1]["ratings"] == {"2571": 4, "260": 5, "296": 1}
    assert shown(page) == as_shown(web.client.post("/recommendations", json=bodies[-1]).json())


def test_the_tutorial_button_gives_the_reference_top5(web, page):
    bodies = recommendation_requests(page)
    page.goto(web.url + "/")
    page.get_by_role("button", name="Try the tutorial's example").click()
    wait_for_recommendations(page, 5, 11)
    body = bodies[-1]
    assert body["ratings"] == {"2571": 1, "329": 1, "260": 1, "1": 1, "356": 1, "2116": 1,
                               "2288": -1, "1721": -1, "296": -1, "1291": -1, "1036": -1}
    assert body["limit"] == 5
    if web.client.get("/models").status_code == 200:
        assert body["model"] == "tutorial"
    assert [(i, t, s) for i, t, s, *_ in shown(page)] == [
        (movie_id, title, f"{score:.4f}") for movie_id, title, score in REFERENCE]
    assert [row[3] for row in shown(page)] == pytest.approx([s for *_, s in REFERENCE], rel=1e-6)
    assert shown(page) == as_shown(web.client.post("/recommendations", json=body).json())

    # Phone-sized: nothing wider than the screen.
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_an_unknown_movie_in_the_link_is_named_and_can_be_removed(web, page):
    page.goto(web.url + "/?like=2571&dislike=999999")
    expect(page.get_by_role("alert")).to_have_text("Cannot recommend: unknown movie id: 999999.")
    unknown = page.locator("#rated li", has_text="Movie 999999")
    expect(unknown).to_contain_text("not in this dataset")
    page.get_by_role("button", name="Remove Movie 999999", exact=True).click()
    wait_for_recommendations(page, 10, 1)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert page.url == web.url + "/?like=2571"


def test_a_service_without_data_says_so_and_recovers_after_ingest(tmp_path, page, ml1m_dir):
    env = {"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}
    with running(env, tmp_path / "serve.log") as service:
        detail = service.client.get("/readyz").json()["detail"]
        page.goto(service.url + "/?like=2571")
        expect(page.get_by_role("alert")).to_have_text(
            f"The service is not ready: {detail}. The page retries every 5 seconds.")
        done = subprocess.run(
            [sys.executable, "-m", "movierec.cli", "ingest", "--data", str(ml1m_dir)],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        wait_for_recommendations(page, 10, 1)
        expect(page.get_by_role("alert")).to_be_hidden()


# --- before anything is rated; more like this; the like threshold ------------------------------


def strip(page: Page) -> list[list]:
    """The popular strip as shown: id, title, the year and genres line."""
    return page.get_by_role("list", name="Popular movies to rate").locator("li").evaluate_all(
        """items => items.map(li => [Number(li.dataset.movieId),
            li.querySelector('.title').textContent, li.querySelector('.meta').textContent])""")


def as_strip(answer: dict) -> list[list]:
    return [[m["movie_id"], m["title"], " · ".join([str(m["year"]), ", ".join(m["genres"])])]
            for m in answer["items"]]


def test_nothing_rated_shows_popular_movies_to_rate_from(web, page):
    bodies = recommendation_requests(page)
    page.goto(web.url + "/")
    popular = page.get_by_role("region", name="Popular movies to start with")
    expect(popular).to_be_visible()
    expect(popular.get_by_role("listitem")).to_have_count(12)
    assert bodies[-1] == {"ratings": {}, "limit": 12}
    answer = web.client.post("/recommendations", json=bodies[-1]).json()
    assert answer["model"] == "popular"
    assert strip(page) == as_strip(answer)
    assert strip(page)[0][:2] == [2858, "American Beauty (1999)"]
    expect(page.locator("#summary")).to_have_text("Rate a movie to see recommendations.")

    # The filters hold for the strip too.
    page.locator("#filters summary").click()
    page.get_by_label("Horror", exact=True).check()
    expect(popular.get_by_role("listitem").first).to_contain_text("Ghostbusters (1984)")
    assert bodies[-1] == {"ratings": {}, "limit": 12, "genres": ["Horror"]}
    assert strip(page) == as_strip(web.client.post("/recommendations", json=bodies[-1]).json())
    page.get_by_role("button", name="Clear filters").click()
    expect(popular.get_by_role("listitem").first).to_contain_text("American Beauty (1999)")

    # Rating one from the strip: it is rated, the strip goes, recommendations come.
    popular.get_by_role("button", name="Like Star Wars: Episode IV - A New Hope (1977)",
                        exact=True).click()
    wait_for_recommendations(page, 10, 1)
    expect(popular).to_be_hidden()
    assert page.url == web.url + "/?like=260"
    rated = page.get_by_role("list", name="Movies you rated")
    expect(rated.get_by_role("button", name="Like Star Wars: Episode IV - A New Hope (1977)",
                             exact=True)).to_have_attribute("aria-pressed", "true")
    # Removing it brings the strip back.
    page.get_by_role("button", name="Remove Star Wars: Episode IV - A New Hope (1977)",
                     exact=True).click()
    expect(popular.get_by_role("listitem")).to_have_count(12)


def test_more_like_this_shows_the_apis_similar_movies_and_rates_them(web, page):
    page.goto(web.url + "/?like=1")
    wait_for_recommendations(page, 10, 1)
    first = page.locator("#results > li").first
    movie_id = int(first.get_attribute("data-movie-id"))
    title = first.locator(".title").first.text_content()
    more = first.get_by_role("button", name=f"More like {title}", exact=True)
    expect(more).to_have_attribute("aria-expanded", "false")
    more.click()
    expect(more).to_have_attribute("aria-expanded", "true")
    listed = first.get_by_role("list", name=f"Movies like {title}")
    expect(listed.get_by_role("listitem")).to_have_count(5)
    answer = web.client.get(f"/movies/{movie_id}/similar", params={"limit": 5}).json()
    shown_similar = listed.locator("li").evaluate_all("""items => items.map(li => [
        Number(li.dataset.movieId), li.querySelector('.title').textContent,
        li.querySelector('.similar-why')?.textContent ?? null])""")
    assert shown_similar == [[m["movie_id"], m["title"], m["why"]["text"]]
                             for m in answer["items"]]
    assert movie_id not in [m[0] for m in shown_similar]

    # Liking one of them rates it; the list of recommendations follows.
    liked = answer["items"][-1]
    listed.get_by_role("button", name=f"Like {liked['title']}", exact=True).click()
    wait_for_recommendations(page, 10, 2)
    assert page.url == web.url + f"/?like=1,{liked['movie_id']}"

    # Closing it.
    again = page.locator("#results > li").first
    name = again.locator(".title").first.text_content()
    button = again.get_by_role("button", name=f"More like {name}", exact=True)
    if button.get_attribute("aria-expanded") == "true":
        button.click()
    expect(again.locator(".similar")).to_have_count(0)
    expect(button).to_have_attribute("aria-expanded", "false")


def test_the_like_threshold_in_stars_is_the_services_when_switching_scales(web, page):
    assert web.client.get("/models").json()["liked_stars"] == 3.0
    bodies = recommendation_requests(page)
    page.goto(web.url + "/?stars=2571:3,260:2,1:5,296:1")
    wait_for_recommendations(page, 10, 4)
    page.get_by_label("like / dislike").check()
    # 3 stars is a like, as in every model; 2 is a dislike.
    expect(page).to_have_url(web.url + "/?like=2571,1&dislike=260,296")
    wait_for_recommendations(page, 10, 4)
    assert bodies[-1]["ratings"] == {"2571": 1, "260": -1, "1": 1, "296": -1}
    assert "scale" not in bodies[-1]


def test_importing_a_letterboxd_export_fills_the_list_and_shows_what_did_not_match(web, page):
    from tests.imports_helpers import WELL_KNOWN, letterboxd

    bodies = recommendation_requests(page)
    data = letterboxd([(name, year, 4.5 if k % 4 else 2) for k, (name, year, _) in
                       enumerate(WELL_KNOWN)])
    page.goto(web.url + "/?like=3114")
    wait_for_recommendations(page, 10, 1)
    page.get_by_label("Import ratings").set_input_files(
        {"name": "ratings.csv", "mimeType": "text/csv", "buffer": data})
    report = page.locator("#import-report")
    expect(report.locator(".import-summary")).to_have_text(
        "Imported 49 of 50 rows from ratings.csv (Letterboxd); 1 did not match:")
    expect(report.get_by_role("list", name="Rows that did not match").get_by_role("listitem")
           ).to_have_text(["Line 51: Amélie (2001)no such movie in the catalog (its newest movies "
                           "are from 2000)"])
    # Toy Story 2 was liked before: 5 stars now, beside the 49 imported (Toy Story 2 among them).
    wait_for_recommendations(page, 10, 49)
    imported = web.client.post("/ratings/import", content=data,
                               headers={"content-type": "text/csv"}).json()
    assert bodies[-1]["scale"] == "stars"
    assert bodies[-1]["ratings"] == imported["ratings"]
    assert shown(page) == as_shown(web.client.post("/recommendations", json=bodies[-1]).json())
    expect(page.get_by_label("Stars for Star Wars: Episode IV - A New Hope (1977)")
           ).to_have_value("2")
    expect(page.get_by_label("Stars for Godfather, The (1972)")).to_have_value("4.5")
    assert "stars=" in page.url and "858:4.5" in page.url and "2571:2" in page.url


def test_importing_a_file_that_is_no_export_says_why(web, page):
    page.goto(web.url + "/")
    page.get_by_label("Import ratings").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello;world\n"})
    expect(page.locator("#import-report")).to_have_text(
        "Cannot import notes.txt: the file is neither a Letterboxd ratings.csv (Name, Year, "
        "Rating), an IMDb ratings export (Const, Your Rating, Title, Year) nor a movie_id,rating "
        "csv: its first line is 'hello;world'.")
    expect(page.locator("#rated > li")).to_have_count(0)
