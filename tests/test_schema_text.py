"""storage/schema_sqlite.sql makes exactly the database the migrating way makes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from storage.db import Database
from storage.schema import SCHEMA_SQLITE, generate, master
from storage.writes import open_sqlite_writer


def _made_by_migrate(path: Path) -> None:
    async def start() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await database.start()
        finally:
            await database.stop()

    asyncio.run(start())


def _schema(path: Path) -> tuple[list[tuple[str, str, str, str | None]], list[str], str]:
    connection = sqlite3.connect(path)
    try:
        versions = [v for (v,) in connection.execute("SELECT version_num FROM alembic_version")]
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        return sorted(master(connection), key=str), versions, mode  # index order: see storage.schema
    finally:
        connection.close()


def test_a_new_file_made_from_the_schema_text_is_what_the_migrations_make(tmp_path: Path) -> None:
    migrated, texted = tmp_path / "migrated.db", tmp_path / "texted.db"
    _made_by_migrate(migrated)
    writer = open_sqlite_writer(texted)
    assert writer is not None
    writer.close()
    assert _schema(texted) == _schema(migrated)
    assert texted.stat().st_mode & 0o777 == 0o600  # people's names and mobiles: the owner's only


def test_the_schema_text_is_current(tmp_path: Path) -> None:
    assert SCHEMA_SQLITE.read_text(encoding="utf-8") == generate(), "run `make schema` after a migration"


def test_a_file_at_an_older_revision_is_left_to_the_migrating_way(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _made_by_migrate(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0005'")
    connection.close()
    assert open_sqlite_writer(path) is None
    assert _schema(path)[1] == ["0005"]  # untouched


def test_a_file_with_other_tables_and_no_version_is_left_to_the_migrating_way(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE something (id INTEGER)")
    connection.close()
    assert open_sqlite_writer(path) is None
    with sqlite3.connect(path) as connection:
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master")] == ["something"]
    connection.close()


def test_the_firing_path_knows_every_json_column_it_writes() -> None:
    """sqlite3 stores what it is given: a JSON column the firing path writes but ``JSON_COLUMNS`` misses
    would be stored as Python's repr of a list, unreadable by the service's SQLAlchemy."""
    from sqlalchemy import JSON

    from storage.models import Expectation, Outbox
    from storage.writes import JSON_COLUMNS

    for model in (Expectation, Outbox):
        table = model.__table__  # type: ignore[attr-defined]
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
        assert JSON_COLUMNS.get(table.name, frozenset()) == json_columns, table.name
