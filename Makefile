# movierec: the verbs people use. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PROJECT_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# The shared copy of MovieLens beside the repo, when there is one; otherwise ingest downloads.
SHARED_DATA := $(abspath $(PROJECT_ROOT)/../shared/data)
MOVIELENS_DIR ?= $(wildcard $(SHARED_DATA)/ml-1m)
export MOVIELENS_DIR
PORT ?= 8000
# Extra prerequisites of `make test`, added by the fragments in mk/.
TEST_DEPS :=

include $(wildcard mk/*.mk)

.PHONY: help install run test lock bench bench-quick evaluate clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/dev.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

install: $(VENV)/.installed ## create .venv with the pinned dependencies and movierec

run: install ## ingest ml-1m into the embedded store if it is empty, then serve on :8000
	@$(VENV)/bin/movierec check >/dev/null 2>&1 || $(VENV)/bin/movierec ingest --dataset ml-1m
	$(VENV)/bin/movierec serve --port $(PORT)

test: install $(TEST_DEPS) ## run the whole test suite (unit, integration, HTTP, chart, deploy checks)
	$(VENV)/bin/pytest -q

lock: ## re-pin every dependency (requirements/*.lock) from pyproject.toml
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --extra dev pyproject.toml -o requirements/dev.lock
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --extra service pyproject.toml -o requirements/service.lock
	$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --extra ingest pyproject.toml -o requirements/ingest.lock

clean: ## remove the venv, tools and local data
	rm -rf $(VENV) .tools .movierec
