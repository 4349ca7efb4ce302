"""Shared fixtures: a real SQLite file database, and PostgreSQL when the server is there.

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

import pytest
from sqlalchemy import event, text

# The checkout is not installed into the venv; make `bot` and `storage` importable from it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.db import Database

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
    schema = f"test_{uuid.uuid4().hex[:12]}"
    database = Database(url)

    @event.listens_for(database.engine.sync_engine, "connect")
    def _use_schema(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Outside a transaction, so a rolled-back first transaction cannot undo it.
        dbapi_conn.autocommit = True
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET search_path TO {schema}")
        cursor.close()
        dbapi_conn.autocommit = False

    try:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
    except (OSError, ConnectionError) as exc:
        await database.stop()
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL at {url} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {url}")
    await database.start()
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await database.stop()


@pytest.fixture(params=["db", pytest.param("pg_db", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]
