# `make run` and `make test` are the only commands a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What serving needs, and what developing needs on top (tests, linters, the benchmark's tools).
INSTALLED := $(VENV)/.installed-runtime
INSTALLED_DEV := $(VENV)/.installed-dev
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
export TEST_DATABASE_URL
# The browser test of /docs needs chromium: installed in CI, or by `make test INSTALL_CHROMIUM=1`.
INSTALL_CHROMIUM ?= $(CI)

.PHONY: install install-dev migrate run lint format test test-tools test-sqlite test-postgres test-postgres-own-servers test-pgbouncer test-typescript serve clean

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	@touch $@

$(INSTALLED_DEV): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

install: $(INSTALLED)
install-dev: $(INSTALLED_DEV)

migrate: install
	$(BIN)/alembic upgrade head

run: migrate
	exec $(BIN)/python -m todo_api

# Production: one worker per core unless WORKERS is given; no reload; proxy headers are
# trusted from FORWARDED_ALLOW_IPS only. SIGTERM drains in-flight requests and exits 0.
# `exec`: make hands SIGTERM to its child, which must be the server and not a shell.
serve: migrate
	exec env WORKERS=$(or $(WORKERS),$(shell nproc 2>/dev/null || echo 1)) $(BIN)/python -m todo_api

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-sqlite: install-dev
	$(if $(filter 1 true TRUE True yes YES,$(INSTALL_CHROMIUM)),bash scripts/ensure-chromium.sh)
	$(BIN)/pytest --db=sqlite $(PYTEST_ARGS)

# Its fault tests also run through a PgBouncer of their own (skipped outside CI without one).
test-postgres: install-dev
	bash scripts/ensure-pgbouncer.sh || [ $$? = 2 ]
	$(BIN)/pytest --db=postgres $(PYTEST_ARGS) $(POSTGRES_ARGS)

# The modules whose tests start PostgreSQL servers and PgBouncers of their own, which
# `make test` runs as a pass of their own beside the PostgreSQL pass (see there).
OWN_SERVER_TESTS := tests/test_startup.py tests/test_pooler_safety.py tests/test_database_faults.py
test-postgres-own-servers: install-dev
	bash scripts/ensure-pgbouncer.sh || [ $$? = 2 ]
	$(BIN)/pytest --db=postgres $(OWN_SERVER_TESTS)

# The whole suite again, through PgBouncer in transaction mode (what Neon's -pooler is).
test-pgbouncer: install-dev
	scripts/with-pgbouncer.sh $(BIN)/pytest --db=postgres $(PYTEST_ARGS)

# The generated TypeScript client: schema in sync, tsc --noEmit, then a run against the server.
test-typescript: install-dev
	bash clients/typescript/run-check.sh

# The system packages the passes need, installed one after the other (apt-get holds a lock).
test-tools:
	$(if $(filter 1 true TRUE True yes YES,$(INSTALL_CHROMIUM)),bash scripts/ensure-chromium.sh)
	bash scripts/ensure-pgbouncer.sh || [ $$? = 2 ]

# The passes run all at once, so that one's waits for its servers are another's work: two
# cores, kept busy, finish them in about 6 minutes instead of 17 one after the other. -O
# keeps each pass's output together; a failed pass fails the whole. The PostgreSQL pass has
# the most to do: the modules that start servers of their own run beside it, as a fifth
# pass, so it does not finish alone on a half-idle machine. The browser tests then run on
# each backend, apart from the passes: three Chromiums beside three passes starved each other.
# Before them, the linters run beside apt-get installing the tools: one mostly computes, the
# other mostly unpacks, so neither waits for the other.
BROWSER_TESTS := tests/test_docs_browser.py
test:
	$(MAKE) --no-print-directory -O -j2 lint test-tools
	$(MAKE) --no-print-directory -O -j5 test-sqlite test-pgbouncer test-postgres \
		test-postgres-own-servers test-typescript PYTEST_ARGS=--ignore=$(BROWSER_TESTS) \
		POSTGRES_ARGS="$(addprefix --ignore=,$(OWN_SERVER_TESTS))"
	$(MAKE) --no-print-directory test-browser

# One backend after the other (about 20 s each): Chromium alone on the machine is steady.
.PHONY: test-browser
test-browser: install-dev
	$(BIN)/pytest --db=sqlite $(BROWSER_TESTS)
	$(BIN)/pytest --db=postgres $(BROWSER_TESTS)
	scripts/with-pgbouncer.sh $(BIN)/pytest --db=postgres $(BROWSER_TESTS)

# Issues 4 and 12's benchmark: private PostgreSQL, seeded data, wrk against the API and the floor
# app (bench/todo_bench/floor.py) with 1 worker and one per core, pgbench for the ceiling; writes
# docs/benchmarks.md. Needs wrk, PostgreSQL's server binaries and root or the postgres user; about
# 15 minutes. BENCH_ARGS=--quick checks in about 6 that it all works, leaving the doc alone.
.PHONY: bench
bench: install-dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/auth_cost.py
	$(BIN)/python bench/mcp_cost.py
	$(BIN)/python bench/distance.py --reference
	$(BIN)/python bench/distance.py --pgbouncer
	$(BIN)/python bench/writes.py

# Did a change make an existing endpoint slower? This checkout against BASE (a commit), both
# on identical rows in one private cluster, turn by turn (bench/todo_bench/compare.py); about 10
# minutes. BENCH_ARGS: --rounds, --duration, --only, --connections, --workers.
.PHONY: bench-compare
bench-compare: install-dev
	@test -n "$(BASE)" || { echo "usage: make bench-compare BASE=<commit>"; exit 2; }
	cd bench && ../$(BIN)/python -m todo_bench.compare $(BASE) $(BENCH_ARGS)

# Issue 11's cost of verifying tokens alone: read with AUTH_MODE=jwt against none (about a minute).
# Issue 24's due-reminder plan at 100 thousand, 1 and 3 million tasks (EXPLAIN ANALYZE of the
# query GET /api/{user_id}/reminders runs); a few minutes.
.PHONY: bench-reminders
bench-reminders: install-dev
	$(BIN)/python bench/reminder_plan.py

.PHONY: bench-auth
bench-auth: install-dev
	$(BIN)/python bench/auth_cost.py

# Issue 23: each endpoint's round trips and latency with 20 ms added per round trip, then
# requests per second at 64 connections; directly, then through PgBouncer (about 4 minutes).
.PHONY: bench-distance
bench-distance: install-dev
	$(BIN)/python bench/distance.py --reference
	$(BIN)/python bench/distance.py --pgbouncer

# Issue 23: the API's throughput and p99 against the reference (FastAPI on the bare driver) and
# the floor, at 16 and 64 connections (about 6 minutes).
.PHONY: bench-writes
bench-writes: install-dev
	$(BIN)/python bench/writes.py

# Issue 22: server CPU per MCP tool call against the REST request that does the same.
.PHONY: bench-mcp
bench-mcp: install-dev
	$(BIN)/python bench/mcp_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
