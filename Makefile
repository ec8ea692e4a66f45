# Every target sets up what it needs; `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= out/demo

.PHONY: setup demo test check lint typecheck bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	rm -rf $(DEMO_OUT)
	$(BIN)/adjudicate run \
		--claims data/samples/claims.csv \
		--authorizations data/samples/authorizations.csv \
		--as-of 2026-06-30 \
		--max-reject-rate 0.15 \
		--out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

check: lint typecheck test

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_validate.py
	$(BIN)/python benchmarks/bench_run.py --repeats 9
	$(BIN)/python benchmarks/bench_run.py --lines 10000000 --repeats 9 --peer-memory-limit 2GiB
	$(BIN)/python benchmarks/bench_run.py --flat --lines 10000000 50000000 --repeats 3

docs: setup
	$(BIN)/python -m schemas.docs --write README.md

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .mypy_cache .ruff_cache
