"""Shared fixtures: the real ml-1m files, real stores (embedded and qdrant-client local mode)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from movierec import ingest, movielens
from movierec.config import Settings
from movierec.models import REGISTRY
from movierec.store import open_reader

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# The reference tutorial's query and published top 5 (ARCHITECTURE.md).
LIKES = [2571, 329, 260, 1, 356, 2116]
DISLIKES = [2288, 1721, 296, 1291, 1036]
REFERENCE = [
    (1196, "Star Wars: Episode V - The Empire Strikes Back (1980)", 20.02387858),
    (1210, "Star Wars: Episode VI - Return of the Jedi (1983)", 16.44318438),
    (1197, "Princess Bride, The (1987)", 15.84006823),
    (1198, "Raiders of the Lost Ark (1981)", 14.94489462),
    (2762, "Sixth Sense, The (1999)", 14.57032215),
]


def dataset_dir(name: str) -> Path:
    """A shared MovieLens copy; under CI=true a missing one fails instead of skipping."""
    env = os.environ.get("MOVIELENS_DIR")
    candidates = [Path(env)] if env and Path(env).name == name else []
    candidates.append(SHARED_DATA / name)
    for folder in candidates:
        if folder.is_dir():
            return folder
    message = f"MovieLens {name} not found (set MOVIELENS_DIR or put it in {SHARED_DATA})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ml1m_dir() -> Path:
    return dataset_dir("ml-1m")


@pytest.fixture(scope="session")
def ml1m(ml1m_dir) -> movielens.Dataset:
    return movielens.load(ml1m_dir, "ml-1m")


def settings_for(**overrides) -> Settings:
    """Settings that ignore the caller's environment except what the test sets."""
    base = {"qdrant_url": None, "qdrant_api_key": None, "movielens_dir": None}
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory) -> Path:
    """A small generated dataset (300 users, 120 movies, 9,000 ratings) in ml-1m's format."""
    from movierec import synthetic

    data = synthetic.generate(n_users=300, n_movies=120, n_ratings=9_000, seed=1, name="small")
    return synthetic.write_dat(data, tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="session")
def ml1m_prepared(ml1m) -> ingest.Prepared:
    return ingest.prepare(ml1m, REGISTRY.unlearned())


@pytest.fixture(scope="session")
def ml1m_prepared_full(ml1m) -> ingest.Prepared:
    """ml-1m with every model, the learned item model included (about 20 s to learn)."""
    return ingest.prepare(ml1m)


def ingested(prepared: ingest.Prepared, **settings):
    """`prepared` written into a real store with these settings; yields an open reader."""
    from movierec.store import open_writer

    ingest.write(open_writer(settings_for(**settings)), prepared, progress=False)
    reader = open_reader(settings_for(**settings))
    try:
        yield reader
    finally:
        reader.close()


@pytest.fixture(scope="session")
def ml1m_embedded(tmp_path_factory, ml1m_prepared):
    """ml-1m (the unlearned models) ingested once into a real embedded store."""
    yield from ingested(ml1m_prepared, qdrant_path=tmp_path_factory.mktemp("embedded") / "q")


@pytest.fixture(scope="session")
def ml1m_full_embedded(tmp_path_factory, ml1m_prepared_full):
    """ml-1m with every registered model, ingested once into a real embedded store."""
    yield from ingested(ml1m_prepared_full,
                        qdrant_path=tmp_path_factory.mktemp("embedded-full") / "q")


@pytest.fixture(scope="session")
def ml1m_local(ml1m_prepared):
    """ml-1m ingested once into qdrant-client's local mode, through the server store classes."""
    yield from ingested(ml1m_prepared, qdrant_url="local::memory:")


# --- a real browser: headless Chromium from Debian's `chromium` package, driven by Playwright ---
# One per session: a second sync_playwright() in the same process fails ("Sync API inside the
# asyncio loop"), so the web page's tests and the dashboard picture share this one.

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Root in a closed network: no sandbox, no GPU, and nothing that phones home. Playwright adds
# --headless and gives every launch a fresh temporary --user-data-dir of its own.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _missing(f"Chromium is not installed at {CHROMIUM}: run `make browser-tools`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _missing(f"the playwright package cannot be imported ({error}): run `make install`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS,
                                              timeout=30_000)
        yield chromium
        chromium.close()
