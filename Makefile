# make test: lint the SQL, lint and type-check Python, run the suite on a real PostgreSQL, then
# the store suites again through PgBouncer in transaction mode (when pgbouncer is installed, or
# always when PGSTASH_REQUIRE_POOLER is set, as in CI: then a PgBouncer that cannot start fails).
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

# the store suites, run a second time through PgBouncer in transaction mode
POOLER_SUITES := tests/test_configurations.py tests/test_instructions.py tests/test_memory.py \
	tests/test_caching.py tests/test_vectors.py tests/test_vectors_filters.py tests/test_vectors_bulk.py \
	tests/test_vectors_hybrid.py tests/test_vectors_float16.py tests/test_vector_selective_filters.py \
	tests/test_vector_maintenance.py tests/test_retention.py tests/test_migrations.py
POOLER_HINT := the pooler suites did not run: PgBouncer is not installed \
	(apt-get update && apt-get install -y pgbouncer, then make test)

test: lint
	$(BIN)/pytest -q
	@if [ -n "$$PGSTASH_REQUIRE_POOLER" ] || $(BIN)/python -m tests.pooler; then \
		echo "PGSTASH_TEST_POOLER=pgbouncer-transaction $(BIN)/pytest -q $(POOLER_SUITES)"; \
		PGSTASH_TEST_POOLER=pgbouncer-transaction $(BIN)/pytest -q $(POOLER_SUITES); \
	else echo "$(POOLER_HINT)"; fi

demo: $(STAMP)
	$(BIN)/pgstash demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pgstash .pytest_cache .mypy_cache .ruff_cache
