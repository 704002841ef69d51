# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PG_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install demo demo-uc3 run test test-sqlite test-postgres lint format bench clean

install: $(STAMP)  ## create .venv and install the pinned dependencies and this project

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	# compat: a plain .pth path entry; the default import-hook finder adds ~20 ms to every CLI start.
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $(STAMP)

demo: install  ## a demo repository with demo data, served on http://127.0.0.1:8000/
	$(BIN)/python demo/run_demo.py

demo-uc3: install  ## the seed's Use Case 3 on five nodes: discover, fan out, query-all, the graph, why-blocked, search
	$(BIN)/python demo/run_demo_uc3.py

run: install  ## serve the repository you are in (or REPO=path)
	$(BIN)/sudocode-fed $(if $(REPO),--repo $(REPO)) serve

# The two passes run side by side (each prints its output when it ends): the SQLite pass mostly waits on real
# nodes and CLI processes, the PostgreSQL pass on the database, so together they take about as long as the first.
test: install lint  ## the whole suite on SQLite and, at the same time, on PostgreSQL when one answers
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

# Two workers, each taking whole modules (--dist loadscope), so a module's shared nodes start once.
PYTEST_WORKERS ?= 2
# The browser tests (tests/browser) need Debian's chromium: without it they are skipped (a failure in CI).
test-sqlite: install
	@command -v chromium >/dev/null 2>&1 || [ -n "$$FEDERATION_CHROMIUM" ] || \
		echo "== the browser tests will be SKIPPED: no chromium (sudo apt-get install -y chromium)"
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope

# Runs when PostgreSQL answers on 127.0.0.1:5432; says so when it skips. FEDERATION_REQUIRE_SERVICES=1 (CI)
# turns a missing server into a failure. The `slow` tests are left out of this pass: they run real nodes and
# CLI processes, each on its own repository's SQLite database, so they would only repeat the first pass.
test-postgres: install
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2)" 2>/dev/null; then \
		echo "== PostgreSQL pass ($(PG_URL))"; \
		DATABASE_URL=$(PG_URL) $(BIN)/pytest -m "not slow"; \
	elif [ "$$FEDERATION_REQUIRE_SERVICES" = "1" ]; then \
		echo "FAIL: PostgreSQL does not answer at 127.0.0.1:5432 and FEDERATION_REQUIRE_SERVICES=1"; exit 1; \
	else \
		echo "== SKIPPED the PostgreSQL pass: nothing answers at 127.0.0.1:5432"; \
	fi

lint: install  ## ruff, and the layers contracts of pyproject.toml (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install  ## benchmarks; print JSON figures (a few minutes; run on a quiet machine)
	$(BIN)/python benchmarks/bench_tracker.py
	$(BIN)/python benchmarks/bench_query.py
	$(BIN)/python benchmarks/bench_mutate.py
	$(BIN)/python benchmarks/bench_propagation.py
	$(BIN)/python benchmarks/bench_policy.py
	$(BIN)/python benchmarks/bench_agents.py
	$(BIN)/python benchmarks/bench_query_all.py
	$(BIN)/python benchmarks/bench_graph.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_audit.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
