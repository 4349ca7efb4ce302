"""Shared fixtures: a real SQLite file database, PostgreSQL when the server is there, Chromium.

``pg_db`` uses ``REMINDBOT_TEST_PG_URL`` (default: the local test server) and gives every test
its own schema, dropped afterwards, so helpers running tests at the same time do not collide.
Set ``REMINDBOT_TEST_PG_URL=skip`` to skip the PostgreSQL runs; they are also skipped when no
server answers, unless ``REMINDBOT_REQUIRE_PG=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

# The checkout is not installed into the venv; make `bot` and `storage` importable from it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.db import Database
from tests.browserhelp import ARGS, CHROMIUM, need_browser

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
pytest_plugins = ("tests.servehelp",)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'remindbot.db'}")
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    url = os.environ.get("REMINDBOT_TEST_PG_URL", DEFAULT_PG_URL)
    if url == "skip":
        pytest.skip("REMINDBOT_TEST_PG_URL=skip")
    database = Database(url, schema=f"test_{uuid.uuid4().hex[:12]}")
    try:
        await database.create_schema()
    except (OSError, ConnectionError) as exc:
        await database.stop()
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL at {url} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {url}")
    await database.start()
    try:
        yield database
    finally:
        await database.drop_schema()
        await database.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, through Playwright (skipped when missing: see tests/browserhelp.py)."""
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture(params=["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]
