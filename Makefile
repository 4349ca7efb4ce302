# One command sets up and runs; one runs every check. Both create .venv on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench setup browser

$(BIN)/remindbot: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/remindbot

run: setup
	$(BIN)/remindbot validate
	$(BIN)/remindbot serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

bench: setup
	-$(BIN)/python bench/load_schedules.py
	-$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/confirm.py
