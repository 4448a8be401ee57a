# `make run` and `make test` are the only commands a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
export TEST_DATABASE_URL

.PHONY: install migrate run lint format test test-sqlite test-postgres test-pgbouncer clean

$(INSTALLED): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

install: $(INSTALLED)

migrate: install
	$(BIN)/alembic upgrade head

run: migrate
	$(BIN)/python -m todo_api

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-sqlite: install
	$(BIN)/pytest --db=sqlite

test-postgres: install
	$(BIN)/pytest --db=postgres

# The whole suite again, through PgBouncer in transaction mode (what Neon's -pooler is).
test-pgbouncer: install
	scripts/with-pgbouncer.sh $(BIN)/pytest --db=postgres

test: lint test-sqlite test-postgres test-pgbouncer

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
