# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format redis venv bench clean constraints

venv: $(STAMP)

# The dev extra: the test tools, Flower and the sandbox (what demo and test run), at the
# versions of constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt -e '.[dev]'
	touch $(STAMP)

## Regenerate constraints.txt from a fresh install (after changing a dependency in pyproject.toml).
constraints:
	PYTHON=$(PYTHON) scripts/lock-constraints

## Run the end-to-end demo (starts what it needs, stops it afterwards).
demo: $(STAMP)
	$(VENV)/bin/krtc-rec demo

## Run the whole test suite (unit and integration) against a local Redis.
test: $(STAMP) redis
	$(PY) -m pytest

## Make sure a Redis answers on REDIS_URL's host and port (default 127.0.0.1:6379).
redis:
	scripts/ensure-redis

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) redis
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
