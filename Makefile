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
DRAIVE_TESTS := $(foreach version,$(DRAIVE_VERSIONS),test-draive-$(version))

.PHONY: test test-pooler test-draive $(DRAIVE_TESTS) demo demo-draive bench lint clean

# pip as the venv ships it (no upgrade: a network round trip and a reinstall each time), writing
# each package's .pyc at install: where PYTHONDONTWRITEBYTECODE is set (as on these machines) Python
# writes none, and compiles numpy, asyncpg, cattrs... again in every process it starts otherwise.
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check
# The same for src/ (an editable install: pip compiles none of it) and for a venv built before the
# line above: compileall writes what is missing or stale, in about a second when nothing is. Every
# `pgstash` the suite runs as a subprocess (hundreds) then imports in ~0.35 s of CPU, not ~0.65 s.
COMPILE := -m compileall -q -j 2 src $(VENV)/lib

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_INSTALL) -e '.[dev]'
	$(BIN)/python $(COMPILE)
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/sqlfluff lint --processes 2 queries/ schema/
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
# First the three venvs side by side, the lint as soon as .venv is built (-j3; -O keeps each
# one's output together): pip waits on the disk as much as on a core. Last, the pooler suites and
# tests/draive side by side (neither keeps both cores busy alone).
test:
	$(MAKE) --no-print-directory -j3 -O lint $(DRAIVE_STAMPS)
	$(BIN)/python $(COMPILE)
	$(BIN)/pytest -q -n 2 --dist loadfile
	$(MAKE) --no-print-directory -j2 -O test-pooler test-draive

test-pooler: $(STAMP)
	@if [ -n "$$PGSTASH_REQUIRE_POOLER" ] || $(BIN)/python -m tests.support.pooler; then \
		echo "PGSTASH_TEST_POOLER=pgbouncer-transaction $(BIN)/pytest -q -n 2 --dist loadfile $(POOLER_SUITES)"; \
		PGSTASH_TEST_POOLER=pgbouncer-transaction $(BIN)/pytest -q -n 2 --dist loadfile $(POOLER_SUITES); \
	else echo "$(POOLER_HINT)"; fi

.venv-draive-%/.installed: pyproject.toml
	@test -n "$(PYTHON313)" || { echo "no Python 3.13: install it (pyenv install 3.13.0) or set PYTHON313=" >&2; exit 1; }
	test -x .venv-draive-$*/bin/python || $(PYTHON313) -m venv .venv-draive-$*
	.venv-draive-$*/bin/python $(PIP_INSTALL) -e '.[test,draive]' 'draive==$*'
	touch $@

# tests/draive on each draive, the two side by side (each its own embedded server under its own
# --basetemp); -O prints each run's output whole, after it ends. A static pattern rule: make looks
# for no implicit rule for a .PHONY target, so a plain `test-draive-%:` would never run.
test-draive: $(DRAIVE_STAMPS)
	$(MAKE) --no-print-directory -j2 -O $(DRAIVE_TESTS)

$(DRAIVE_TESTS): test-draive-%: .venv-draive-%/.installed
	@echo "tests/draive on draive $*"
	.venv-draive-$*/bin/pytest -q -p no:cacheprovider --basetemp=.pytest-draive-$* tests/draive

demo: $(STAMP)
	$(BIN)/pgstash demo

demo-draive: .venv-draive-0.89.5/.installed
	.venv-draive-0.89.5/bin/python -m pgstash.draive.demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-draive-* .pytest-draive-* .pgstash .pytest_cache .mypy_cache .ruff_cache
