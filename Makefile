# One command sets up and runs; one runs every check. Both create .venv on first use.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench setup browser screenshots schema

$(BIN)/remindbot: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/remindbot

# A failing check does not stop the start: serve runs on the last good schedules when there are
# some (saying so, loudly) and refuses with the same errors when there are none.
run: setup
	@$(BIN)/remindbot validate || echo "日程配置未通过检查（见上）：有上一次有效的配置时服务按它启动，没有时不启动。"
	$(BIN)/remindbot serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

bench: setup
	-$(BIN)/python bench/load_schedules.py
	-$(BIN)/python bench/dispatch.py
	-$(BIN)/python bench/fire.py
	-$(BIN)/python bench/province.py
	$(BIN)/python bench/confirm.py

# Refresh the README's screenshots (the test suite itself writes them to a temporary folder).
screenshots: setup
	REMINDBOT_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -m browser tests/test_browser.py tests/test_browser_leader.py tests/test_browser_actions.py

# Regenerate storage/schema_sqlite.sql (a new SQLite file's tables, made without SQLAlchemy) after a migration.
schema: setup
	$(BIN)/python -m storage.schema
