# make test: lint the SQL, lint and type-check Python, run the suite on a real PostgreSQL (2 workers),
# then the store suites again through PgBouncer in transaction mode (when pgbouncer is installed, or
# always when PGSTASH_REQUIRE_POOLER is set, as in CI: then a PgBouncer that cannot start fails).
# make demo: every store end to end on the embedded PostgreSQL in ./.pgstash.
# make demo-draive: the seed's "Putting it together" through pgstash.draive (Python 3.13, draive).
# Both build .venv from pyproject.toml when it is missing or older than pyproject.toml.
# make test also builds one Python 3.13 venv per tested draive (.venv-draive-VERSION) and runs
# tests/draive in each after the main suite; without a Python 3.13 it fails, never skips.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pgstash-installed

# pyenv's 3.13.0 (on these machines), else a python3.13 on PATH.
PYTHON313 ?= $(shell p="$$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13"; \
	if [ -x "$$p" ]; then echo "$$p"; else command -v python3.13; fi)
DRAIVE_VERSIONS := 0.89.5 0.103.0
DRAIVE_STAMPS := $(foreach version,$(DRAIVE_VERSIONS),.venv-draive-$(version)/.installed)

.PHONY: test test-draive demo demo-draive bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/sqlfluff lint queries/ schema/
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src

# the store suites, run a second time through PgBouncer in transaction mode
POOLER_SUITES := tests/test_configurations.py tests/test_instructions.py tests/test_memory.py \
	tests/test_caching.py tests/test_vectors.py tests/test_vectors_filters.py tests/test_vectors_bulk.py \
	tests/test_vectors_hybrid.py tests/test_vectors_float16.py tests/test_vector_selective_filters.py \
	tests/test_vector_maintenance.py tests/test_retention.py tests/test_migrations.py
POOLER_HINT := the pooler suites did not run: PgBouncer is not installed \
	(apt-get update && apt-get install -y pgbouncer, then make test)

# The suite on both cores: two xdist workers, each with its own embedded server (no test sees the
# other worker's sessions); each test file runs on one worker (loadfile), so a module fixture runs once.
# `$(BIN)/pytest -m unit` runs the tests that need no database, in seconds.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile
	@if [ -n "$$PGSTASH_REQUIRE_POOLER" ] || $(BIN)/python -m tests.support.pooler; then \
		echo "PGSTASH_TEST_POOLER=pgbouncer-transaction $(BIN)/pytest -q -n 2 --dist loadfile $(POOLER_SUITES)"; \
		PGSTASH_TEST_POOLER=pgbouncer-transaction $(BIN)/pytest -q -n 2 --dist loadfile $(POOLER_SUITES); \
	else echo "$(POOLER_HINT)"; fi
	$(MAKE) test-draive

.venv-draive-%/.installed: pyproject.toml
	@test -n "$(PYTHON313)" || { echo "no Python 3.13: install it (pyenv install 3.13.0) or set PYTHON313=" >&2; exit 1; }
	test -x .venv-draive-$*/bin/python || $(PYTHON313) -m venv .venv-draive-$*
	.venv-draive-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-draive-$*/bin/python -m pip install --quiet -e '.[dev,draive]' 'draive==$*'
	touch $@

test-draive: $(DRAIVE_STAMPS)
	for version in $(DRAIVE_VERSIONS); do \
		echo "tests/draive on draive $$version"; \
		.venv-draive-$$version/bin/pytest -q -p no:cacheprovider tests/draive || exit 1; \
	done

demo: $(STAMP)
	$(BIN)/pgstash demo

demo-draive: .venv-draive-0.89.5/.installed
	.venv-draive-0.89.5/bin/python -m pgstash.draive.demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-draive-* .pgstash .pytest_cache .mypy_cache .ruff_cache
