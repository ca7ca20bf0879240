"""The service image installs numpy and the service extra only (requirements/service.lock): no
scipy, no pandas. These tests hold the split by construction: nothing the service runs imports
the ingest's or the evaluation's code, statically or at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SRC = ROOT / "src"
# What `movierec serve` runs: the CLI's entry point, the HTTP service, the models, the stores.
SERVING = ["movierec.cli", "movierec.service.server", "movierec.service.app"]
# Never reachable from SERVING (the CLI reaches ingest and evaluate only inside their commands).
INGEST_ONLY = ("movierec.training", "movierec.ingest", "movierec.evaluate", "movierec.movielens",
               "movierec.synthetic", "scipy", "pandas")


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(name: str, path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def reachable(roots: list[str]) -> set[str]:
    """Every module the roots import, transitively: movierec modules through every import in
    their files (function-level ones too), except the CLI's, whose commands import lazily."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name) if name.startswith("movierec") else None
        if path is None:
            continue
        parents = [".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)]
        todo.extend(parents)
        todo.extend(_imports(name, path, top_level_only=name == "movierec.cli"))
    return seen


def test_nothing_the_service_runs_imports_ingest_only_code():
    serving = reachable(SERVING)
    assert "movierec.models.item" in serving and "movierec.store.embedded" in serving
    leaks = sorted(m for m in serving if m.startswith(INGEST_ONLY))
    assert leaks == []


def test_the_service_answers_with_every_model_while_scipy_and_pandas_cannot_load(
        ml1m_prepared_full, tmp_path):
    """At run time too: an embedded ml-1m store written here, then a process in which importing
    scipy or pandas fails answers with each model, as the service image does."""
    from movierec import ingest
    from movierec.models import REGISTRY
    from movierec.store import open_writer
    from tests.conftest import settings_for

    ingest.write(open_writer(settings_for(qdrant_path=tmp_path / "q")), ml1m_prepared_full,
                 progress=False)
    script = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("scipy", "pandas"):
            raise ImportError(f"{{name}} is not in the service image")
sys.meta_path.insert(0, Refuse())
from movierec.config import Settings
from movierec.models import REGISTRY
from movierec.models.tutorial import example_ratings
from movierec.recommend import recommend
from movierec.service.app import create_app
from movierec.store import open_reader
create_app(Settings(qdrant_url=None, qdrant_path={str(tmp_path / "q")!r}))
with open_reader(Settings(qdrant_url=None, qdrant_path={str(tmp_path / "q")!r})) as store:
    for name in REGISTRY.names():
        print(name, len(recommend(store, example_ratings(), limit=5, model=name).items))
print(sorted(m for m in sys.modules if m.startswith(("scipy", "pandas", "movierec.training"))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [f"{name} 5" for name in REGISTRY.names()] + ["[]", ""]
