# The two commands a newcomer needs: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit soak bench install constraints clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The database and the signing key live in instance/ beside this Makefile unless
# INVENTORY_INSTANCE_DIR (or INVENTORY_DATABASE_URL, INVENTORY_SIGNING_KEY) says otherwise.
run: $(STAMP)
	$(BIN)/inventory db upgrade
	$(BIN)/inventory keys init
	$(BIN)/inventory demo prepare
	@echo "Serving Stockpile on http://127.0.0.1:8000 (console: http://127.0.0.1:8000/console/, docs: /api/v1/docs); Ctrl-C stops it."
	$(BIN)/inventory serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check inventory migrations tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# Long model-based runs of the ledger (hundreds of random sequences); bounded runs are in `make test`.
soak: $(STAMP)
	INVENTORY_SOAK=1 $(BIN)/pytest -q -s tests/test_model_based.py

# Benchmarks on a scratch PostgreSQL database of 1,000,000 weapons (then SQLite, smaller); prints a
# table and writes bench/results/<timestamp>.json. Not part of `make test`. BENCH_ARGS to adjust.
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The Docker image installs exactly these versions. After changing dependencies in pyproject.toml:
# `make install constraints`, then commit constraints.txt. The header (and the setuptools pin for the
# image's build) is kept; everything below the marker line is what .venv has now.
constraints: $(STAMP)
	sed '/^# --- pinned by pip freeze/q' constraints.txt > constraints.txt.new
	$(BIN)/python -m pip freeze --exclude-editable >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
