# make test: lint the SQL, lint and type-check Python, run the suite on a real PostgreSQL (2 workers).
# make demo: every store end to end on the embedded PostgreSQL in ./.pgstash.
# Both build .venv from pyproject.toml when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pgstash-installed

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/sqlfluff lint queries/ schema/
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src

# The suite on both cores: two xdist workers, each with its own embedded server (no test sees the
# other worker's sessions); each test file runs on one worker (loadfile), so a module fixture runs once.
# `$(BIN)/pytest -m unit` runs the tests that need no database, in seconds.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile

demo: $(STAMP)
	$(BIN)/pgstash demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pgstash .pytest_cache .mypy_cache .ruff_cache
