"""Read queries shared by the CLI's hot commands and the pages: one SQL text each, two executors.

Each query below is written once, valid on SQLite and PostgreSQL (named ``:params``; ``false`` and
``true`` for booleans, SQLite 3.23+). :func:`sqlite_reader` runs it through the standard library's
``sqlite3`` on a SQLite file, read-only, without importing SQLAlchemy, SQLModel or the table models
(their import is ~0.6 s, half of ``report`` on a province); :func:`engine_reader` runs it through
SQLAlchemy ``text()`` on the service's engine (PostgreSQL, the pages). The executors adapt what
differs: SQLite keeps SQLAlchemy's ``DateTime`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text (so a time
is bound as that text, which compares in time order, and read back with :func:`moment`), PostgreSQL as
``timestamptz``; a list parameter (``IN (:ids)``) is expanded to one parameter per item.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

FIRED_AHEAD_LIMIT = 10_000  # occurrences read at most (a window of 3660 days of every reminder)

# The real occurrences due in [start, end) whose day message already went out (``fire --date``).
FIRED_AHEAD = """
SELECT reminder_id, due_at, fired_at FROM occurrence
WHERE dry_run = false AND fired_at IS NOT NULL AND due_at >= :start AND due_at < :end
LIMIT :limit"""


class Reader(Protocol):
    """Runs one of this module's SQL texts; rows as tuples."""

    dialect: str  # "sqlite" or "postgresql"

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (``sqlite:///rel.db``, ``sqlite+aiosqlite:////abs/bot.db``);
    None for another database or an in-memory one."""
    scheme, _, rest = url.partition("://")
    if not scheme.lower().startswith("sqlite") or not rest.startswith("/"):
        return None
    name = rest[1:].partition("?")[0]
    return Path(name) if name and name != ":memory:" else None


def is_sqlite(url: str) -> bool:
    return url.partition("://")[0].lower().startswith("sqlite")


def db_text(moment: datetime) -> str:
    """A time as SQLAlchemy's ``DateTime`` keeps it on SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{aware:%Y-%m-%d %H:%M:%S.%f}"


def moment(value: Any) -> datetime | None:
    """A time read by either executor (SQLite's text, PostgreSQL's datetime) as aware UTC."""
    if value is None:
        return None
    found = datetime.fromisoformat(value) if isinstance(value, str) else value
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def bound(sql: str, params: Mapping[str, Any], dialect: str) -> tuple[str, dict[str, Any]]:
    """``sql`` and ``params`` as ``dialect`` takes them: lists expanded (``:ids`` -> ``:ids_0, :ids_1``,
    an empty one -> ``NULL``, which matches nothing), times as text on SQLite."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            names = [f"{name}_{i}" for i in range(len(items))]
            sql = re.sub(rf":{name}\b", ", ".join(f":{n}" for n in names) or "NULL", sql)
            out.update(zip(names, items, strict=True))
        else:
            out[name] = value
    if dialect == "sqlite":
        out = {k: db_text(v) if isinstance(v, datetime) else v for k, v in out.items()}
    return sql, out


class _Sqlite:
    """:class:`Reader` over a SQLite file opened read-only through ``sqlite3`` (blocking: a command's
    one task; the service reads through its engine)."""

    dialect = "sqlite"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        text, values = bound(sql, params, self.dialect)
        return self.connection.execute(text, values).fetchall()


class _Engine:
    """:class:`Reader` over a SQLAlchemy ``AsyncConnection`` (``text()``)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        query, values = bound(sql, params, self.dialect)
        return [tuple(r) for r in (await self.connection.execute(text(query), values)).all()]


@asynccontextmanager
async def sqlite_reader(path: Path) -> AsyncIterator[Reader]:
    """A read-only :class:`Reader` on the SQLite file ``path`` (never created: ``sqlite3.OperationalError``
    when it does not exist)."""
    connection = _read_only(path)
    try:
        yield _Sqlite(connection)
    finally:
        connection.close()


def _read_only(path: Path) -> Any:
    import sqlite3

    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def connection_reader(connection: Any) -> Reader:
    """A :class:`Reader` on an open SQLAlchemy ``AsyncConnection`` (a session's, the engine's)."""
    return _Engine(connection)


@asynccontextmanager
async def engine_reader(engine: Any) -> AsyncIterator[Reader]:
    """A :class:`Reader` on a connection of the SQLAlchemy ``AsyncEngine`` ``engine``."""
    async with engine.connect() as connection:
        yield _Engine(connection)


# ---------------------------------------------------------------- queries


async def fired_ahead(reader: Reader, start: datetime, end: datetime,
                      limit: int) -> dict[tuple[str, datetime], datetime]:
    """(reminder id, due time in UTC) -> when its day message went, for the real occurrences due in
    [start, end) fired ahead of their day (at most ``limit``)."""
    found = await reader.rows(FIRED_AHEAD, {"start": start, "end": end, "limit": limit})
    return {(rid, moment(due)): moment(at) for rid, due, at in found}  # type: ignore[misc]
