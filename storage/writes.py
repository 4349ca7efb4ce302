"""A SQLite file written through the standard library's ``sqlite3``, without SQLAlchemy.

``remindbot fire`` on a SQLite file spent ~0.5 s of ~1.2 s importing SQLAlchemy, its ORM, SQLModel and
the 13 table models (docs/benchmarks.md). :func:`open_sqlite_writer` opens such a file the way
``storage.db``'s engine does (WAL, ``synchronous=NORMAL``, foreign keys, a 30 s busy timeout; a file it
creates readable by its owner only): one already at the newest revision as it is, a missing or empty
one created from storage/schema_sqlite.sql with the newest revision recorded, under the write lock
(``BEGIN IMMEDIATE``, as ``storage.migrate``). Anything else (an older revision, a migration due,
tables it does not know): None, and the caller takes the migrating way (``storage.db``), which never
half-migrates.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

from storage.reads import bound, sqlite_value
from storage.revisions import cheap_head

SCHEMA_SQLITE = Path(__file__).resolve().parent / "schema_sqlite.sql"
BUSY_TIMEOUT_SECONDS = 30.0  # as storage.db's engine (connect_args timeout)
WAL_TRIES = 200  # × 10 ms, as storage.db._to_wal


# The JSON columns the firing path writes (SQLAlchemy's ``JSON`` stores ``json.dumps`` of the value);
# tests/test_schema_text.py checks these against storage/models.py.
JSON_COLUMNS = {"expectation": frozenset({"leader_ids"}), "outbox": frozenset({"body"})}
INSERT_BATCH = 1000  # rows per INSERT statement: well under SQLite's and asyncpg's bound-parameter limits
SQLITE_MAX_PARAMETERS = 32_766  # SQLite's limit since 3.32 (SQLAlchemy's insertmanyvalues uses the same)


def insert_batches(table: str, names: Sequence[str], arrays: Sequence[Sequence[Any]], conflict: Sequence[str],
                   returning: str | None = None) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """SQLite's multi-row ``INSERT INTO table (names) VALUES (…), (…) ON CONFLICT (conflict) DO NOTHING
    [RETURNING returning]`` (what SQLAlchemy's "insertmanyvalues" sends), as (SQL, positional parameters)
    per batch of at most ``INSERT_BATCH`` rows and ``SQLITE_MAX_PARAMETERS`` values. ``arrays``: one list
    of already-converted values per name; names come quoted as the caller needs them."""
    head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "
    tail = f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING" + (f" RETURNING {returning}" if returning else "")
    one = f"({', '.join('?' * len(names))})"
    batch = max(1, min(INSERT_BATCH, SQLITE_MAX_PARAMETERS // len(names)))
    values = list(zip(*arrays, strict=True))
    for start in range(0, len(values), batch):
        chunk = values[start:start + batch]
        yield head + ", ".join([one] * len(chunk)) + tail, tuple(chain.from_iterable(chunk))  # flattened in C


class Writer(Protocol):
    """Runs the firing path's SQL texts (named ``:params``, valid on SQLite and PostgreSQL) in one
    transaction until :meth:`commit`: :class:`SqliteWriter` on a SQLite file, ``bot.delivery.outbox.SessionWriter``
    on a SQLAlchemy session (the service, PostgreSQL)."""

    dialect: str

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...

    async def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]: ...

    async def insert_ignoring(self, table: str, each: Mapping[str, list[Any]], same: Mapping[str, Any],
                              conflict: Sequence[str], returning: str | None) -> set[Any]: ...

    def after_commit(self, counts: Counter[tuple[str, str]], apply: Callable[[Counter[tuple[str, str]]], None]
                     ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


def _value(value: Any, json_column: bool) -> Any:
    """A value as SQLAlchemy's SQLite dialect stores it (times as its text, dates ISO, JSON as ``json.dumps``)."""
    return json.dumps(value) if json_column else sqlite_value(value)


class SqliteWriter:
    """Statements on one ``sqlite3`` connection (blocking: a command's one task), in one transaction
    until :meth:`commit`; parameters bound as :func:`storage.reads.bound` does (times as SQLAlchemy's
    text, dates ISO)."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self._on_commit: list[tuple[Counter[tuple[str, str]], Callable[[Counter[tuple[str, str]]], None]]] = []

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        text, values = bound(sql, params or {}, self.dialect)
        self.connection.execute(text, values)

    async def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        text, values = bound(sql, params or {}, self.dialect)
        return self.connection.execute(text, values).fetchall()

    async def insert_ignoring(self, table: str, each: Mapping[str, list[Any]], same: Mapping[str, Any],
                              conflict: Sequence[str], returning: str | None) -> set[Any]:
        """``INSERT … VALUES (…), (…) ON CONFLICT (conflict) DO NOTHING [RETURNING returning]`` in batches:
        the statement SQLAlchemy's "insertmanyvalues" sends, values converted a column at a time."""
        json_columns = JSON_COLUMNS.get(table, frozenset())
        names = [*each, *same]
        count = len(next(iter(each.values()), ()))
        arrays: list[list[Any]] = []
        for name in names:
            is_json = name in json_columns
            if name in same:
                arrays.append([_value(same[name], is_json)] * count)
                continue
            done: dict[int, Any] = {}  # one value object shared by many rows (a unit's leaders) converted once
            arrays.append([done[key] if (key := id(v)) in done else done.setdefault(key, _value(v, is_json))
                           for v in each[name]])
        created: set[Any] = set()
        for sql, params in insert_batches(table, names, arrays, conflict, returning):
            cursor = self.connection.execute(sql, params)
            if returning:
                created.update(r[0] for r in cursor.fetchall())
        return created

    def after_commit(self, counts: Counter[tuple[str, str]], apply: Callable[[Counter[tuple[str, str]]], None]
                     ) -> None:
        self._on_commit.append((counts, apply))

    async def commit(self) -> None:
        self.connection.commit()
        done, self._on_commit = self._on_commit, []
        for counts, apply in done:
            apply(counts)

    async def rollback(self) -> None:
        self.connection.rollback()
        self._on_commit = []

    def close(self) -> None:
        self.connection.close()


def to_wal(connection: Any) -> None:
    """``PRAGMA journal_mode=WAL`` on a connection or cursor, waiting while another connection holds the
    lock: switching a new file's journal answers "database is locked" at once, without the busy timeout,
    so instances starting together on one new file failed to start (1 run in 8 of four at once)."""
    for attempt in range(WAL_TRIES):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_TRIES - 1:
                raise
            time.sleep(0.01)  # a command's one thread, or the driver's own: never the event loop


def create_private(path: Path, *, say: bool = True) -> bool:
    """Create ``path`` empty and readable by its owner only, before SQLite opens it (SQLite gives -wal and -shm
    the database file's mode). A mode changed after the open left a window: a process killed in it left a file
    anyone could read, and every later run, finding the file there, kept it so.

    Whether the file was made now; then, unless ``say`` is false, one warning line names it: a database
    made where the admin expected an existing one is a mistyped path, and this line is where it shows
    (every place that makes a SQLite file comes here: ``storage.db``'s engine and :func:`_connect`)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    if say:
        logging.getLogger("storage.db").warning("已新建数据库文件 “%s”（此前不存在）。", path.resolve())
    return True


def make_private(path: Path) -> None:
    """The file and its -wal and -shm readable by the owner only (0600): people's names, mobiles, notes."""
    for made in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(made, 0o600)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection as storage.db's engine makes one; a file it creates is made private (0600)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    if new:
        create_private(path)
    # isolation_level None: transactions are this module's own (BEGIN IMMEDIATE below, then BEGIN per write).
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        to_wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        connection.close()
        raise
    if new:
        make_private(path)
    return connection


def _revisions(connection: sqlite3.Connection) -> list[str] | None:
    """The recorded revisions; None without a version table."""
    try:
        return [r[0] for r in connection.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.OperationalError:
        return None


def _ready(connection: sqlite3.Connection, newest: str) -> bool:
    """At the newest revision, or empty and now created from the schema text (under the write lock)."""
    if _revisions(connection) == [newest]:
        return True
    connection.execute("BEGIN IMMEDIATE")  # one creator at a time, as storage.migrate
    try:
        if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            script = SCHEMA_SQLITE.read_text(encoding="utf-8")
            if f"VALUES ('{newest}')" not in script:  # the text lags the migrations: the migrating way
                connection.execute("ROLLBACK")
                return False
            for statement in _statements(script):
                connection.execute(statement)
            connection.execute("COMMIT")
            # what storage.migrate says of the same step, under its name: the same line either way
            logging.getLogger("storage.migrate").info("数据库结构已升级：空库 → %s。", newest)
            return True
        ready = _revisions(connection) == [newest]  # another process made it meanwhile
        connection.execute("ROLLBACK")
        return ready
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [s.strip("\n") for s in body.split(";\n") if s.strip()]


def open_sqlite_writer(path: Path) -> SqliteWriter | None:
    """A :class:`SqliteWriter` on ``path`` at the newest schema (created when missing or empty);
    None when the file needs the migrating way (another revision, anything unusual)."""
    newest = cheap_head()
    if newest is None:
        return None
    connection = _connect(path)
    try:
        if not _ready(connection, newest):
            connection.close()
            return None
    except BaseException:
        connection.close()
        raise
    connection.isolation_level = ""  # from here, every write opens a transaction until commit (DEFERRED)
    return SqliteWriter(connection)


async def instance_nonce(writer: SqliteWriter) -> str:
    """This database's random value (``storage.db.Database.instance_nonce``'s, on the writer)."""
    found = await writer.rows("SELECT nonce FROM instance WHERE id = 1")
    if found:
        return str(found[0][0])
    await writer.execute("INSERT INTO instance (id, nonce) VALUES (1, :nonce) ON CONFLICT (id) DO NOTHING",
                         {"nonce": secrets.token_urlsafe(16)})
    await writer.commit()
    [(nonce,)] = await writer.rows("SELECT nonce FROM instance WHERE id = 1")
    return str(nonce)

