"""Schema migrations (Alembic, shipped in ``storage/migrations``): upgrade, check, new revisions.

``upgrade()`` brings a database to the newest revision. Instances started together are safe: on
PostgreSQL the work runs under an advisory lock (one instance migrates, the others wait, then find
nothing to do); on SQLite under the database's write lock (``BEGIN IMMEDIATE``). A database made
before migrations existed (tables but no ``alembic_version``) is recognised and stamped as the
baseline ``0001`` first, so its rows are kept.

Alembic is imported only when there is something to migrate: a database already at the newest
revision is recognised by one query (:func:`at_head`) against the revision read from the
migration files themselves (:func:`cheap_head`), which every command's start makes; an empty
database (a new install, a new PostgreSQL schema, the first command after ``make run``) gets the
newest schema in one step, ``create_all`` of storage/models.py and the newest revision recorded,
in one transaction under the same lock (:func:`_create_head`). Running revision after revision on
it would end at the same schema (tests/test_migrations.py compares the two on SQLite and
PostgreSQL: tables, columns, types, defaults, keys, indexes), at several times the cost: Alembic's
import alone is a tenth of a second, and SQLite's batch mode copies tables at each step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers every table)
from storage.revisions import SCRIPTS, cheap_head

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

BASELINE = "0001"  # the schema of every database made before migrations (create_all)
VERSION_TABLE = "alembic_version"

# Alembic's own version table, as it creates it (alembic.runtime.migration), for an empty database's
# one-step creation; on a metadata of its own, so it is never taken for one of the application's tables.
_VERSION = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                 PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


@cache
def head() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None, "storage/migrations/versions has no revision"
    return found


async def at_head(engine: AsyncEngine) -> str | None:
    """The revision, when the database is already at the newest one (one query); else None."""
    newest = cheap_head()
    if newest is None:
        return None
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).all()
            await conn.rollback()
    except Exception:  # no version table yet, or anything else: the full path finds out
        return None
    return newest if [r[0] for r in rows] == [newest] else None


def newest() -> str:
    """The newest revision: read from the files when they are plain (no Alembic import), else Alembic's."""
    return cheap_head() or head()


@cache
def known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


@dataclass
class SchemaState:
    """Where a database's schema stands against this code."""

    current: str | None  # the revision recorded in the database (None: none recorded)
    head: str
    legacy: bool = False  # tables made before migrations, no version recorded yet
    missing: list[str] = field(default_factory=list)  # "table" or "table.column" the code needs

    @property
    def newer(self) -> bool:
        """Migrated by a newer release (a rolling upgrade): this code does not know the revision."""
        return self.current is not None and self.current != self.head and not known(self.current)

    @property
    def ok(self) -> bool:
        """Sending can work: every table and column this code uses is there, at its revision or newer."""
        return not self.missing and (self.current == self.head or self.newer)

    def describe(self) -> str:
        """One Chinese sentence for an admin."""
        if self.ok and self.newer:
            return (f"数据库结构版本 {self.current} 比本程序（最新 {self.head}）新，本程序用到的表和列都在，"
                    "可以继续运行；请尽快升级 remindbot。")
        if self.ok:
            return f"数据库结构是最新的（版本 {self.current}）。"
        if self.newer:
            return (f"数据库结构版本 {self.current} 比本程序（最新 {self.head}）新，且缺少本程序用到的 "
                    f"{'、'.join(self.missing[:5])}；请升级 remindbot。")
        if self.current is None and not self.legacy:
            return (f"数据库中还没有 remindbot 的表（最新版本 {self.head}）；请运行 remindbot db upgrade，"
                    "或直接启动服务（启动时自动建表）。")
        if self.legacy:
            return (f"数据库由旧版本创建，尚未记录结构版本（最新 {self.head}）；"
                    "请运行 remindbot db upgrade（数据会保留）。")
        if self.current != self.head:
            return (f"数据库结构落后：当前版本 {self.current or '无'}，最新 {self.head}；"
                    "请运行 remindbot db upgrade。")
        shown = "、".join(self.missing[:5]) + ("等" if len(self.missing) > 5 else "")
        return f"数据库结构版本为 {self.current}，但缺少 {shown}；数据库被改动过，请检查。"

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "version": self.current, "head": self.head, "missing": self.missing,
                "message": self.describe()}


# ---------------------------------------------------------------- upgrade


@dataclass
class Upgrade:
    """What ``upgrade()`` did."""

    before: str | None  # the revision recorded before (None: an empty database)
    after: str
    legacy: bool = False  # tables made before migrations were found and stamped as the baseline

    @property
    def changed(self) -> bool:
        return self.legacy or self.before != self.after

    def describe(self) -> str:
        """One Chinese sentence for an admin."""
        if not self.changed and self.after != newest():
            return f"数据库结构版本 {self.after} 比本程序（最新 {newest()}）新，未作改动。"
        if not self.changed:
            return f"数据库结构已是最新（版本 {self.after}），无需升级。"
        start = "旧版本创建的数据库（数据已保留）" if self.legacy else (self.before or "空库")
        return f"数据库结构已升级：{start} → {self.after}。"


def _lock_name(schema: str | None) -> str:
    return f"remindbot-migrate:{schema or ''}"


class NotOurs(Exception):
    """A database (PostgreSQL: its schema) without remindbot's tables, which ``upgrade(create=False)``
    leaves as it is. ``tables``: the other tables found there ([] for none); ``schema_exists``: false
    when the named schema itself is missing (nothing was made, not even the schema)."""

    def __init__(self, tables: list[str], *, schema_exists: bool = True) -> None:
        super().__init__(", ".join(tables))
        self.tables = tables
        self.schema_exists = schema_exists


async def upgrade(engine: AsyncEngine, schema: str | None = None, *, step_by_step: bool = False,
                  create: bool = True) -> Upgrade:
    """Bring the database to the newest revision.

    An empty database gets the newest schema in one step (:func:`_create_head`), unless
    ``step_by_step``: then every migration runs, as on a database made by an older release (the
    tests compare the two; ``db revision`` compares the models with what the migrations build).
    A database at a revision newer than this code knows (a newer release migrated it) is left
    alone when every table and column this code uses is there.

    ``create`` false (the commands that only read or record): a database with none of remindbot's
    tables is ``NotOurs``, and nothing is made in it (on PostgreSQL not even the schema); one of an
    older revision is upgraded as always. Checked only when the database is not at the newest
    revision, so the usual start costs no extra query.

    Errors: connection errors as raised by the driver; ``RuntimeError`` (Chinese) when the database
    is at a newer revision that lacks something this code uses; ``NotOurs`` as above.
    """
    if (current := await at_head(engine)) is not None:
        return Upgrade(current, current)  # nothing to do: Alembic is not even imported
    if not create:
        await refuse_foreign(engine, schema)
    async with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            await conn.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), {"name": _lock_name(schema)})
            await conn.commit()
        try:
            if postgres and schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            elif not postgres:
                # SQLite alters a table by copying it (batch mode): the copy's DROP must not trip
                # the foreign keys of the rows that point at it. The pragma only takes effect
                # outside a transaction; the keys are checked again before the commit.
                await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                await conn.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: one migrator at a time
            result = await conn.run_sync(_upgrade_sync, schema, step_by_step)
            if not postgres:
                broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).fetchall()
                if broken:
                    raise RuntimeError(f"迁移后有 {len(broken)} 行外键不一致，已撤销迁移")
            await conn.commit()
        except BaseException:
            await _abandon(conn)
            raise
        if not postgres:
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        if postgres:
            await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": _lock_name(schema)})
            await conn.commit()
    if result.changed:
        log.info(result.describe())
    return result


async def refuse_foreign(engine: AsyncEngine, schema: str | None = None) -> None:
    """``NotOurs`` when the database (``schema`` on PostgreSQL, else the connection's default schema)
    holds neither ``alembic_version`` nor any of storage/models.py's tables. Reads only."""
    async with engine.connect() as conn:
        found = await conn.run_sync(_foreign_sync, schema)
        await conn.rollback()
    if found is not None:
        raise found


def _foreign_sync(conn: Connection, schema: str | None) -> NotOurs | None:
    if schema and conn.dialect.name == "postgresql":
        exists = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}).first()
        if exists is None:
            return NotOurs([], schema_exists=False)
    names = inspect(conn).get_table_names(schema=schema)
    return None if is_ours(names) else NotOurs(sorted(names))


def is_ours(tables: Iterable[str]) -> bool:
    """Whether a database holding ``tables`` is remindbot's (of any revision): the version table or
    any of storage/models.py's is there."""
    return not {VERSION_TABLE, *SQLModel.metadata.tables}.isdisjoint(tables)


async def _abandon(conn: AsyncConnection) -> None:
    """After a failure: never hand a connection that may hold the advisory lock back to the pool."""
    try:
        await conn.rollback()
    finally:
        await conn.invalidate()


def _upgrade_sync(conn: Connection, schema: str | None, step_by_step: bool = False) -> Upgrade:
    # Under the lock: an instance that waited for it finds the tables another one made, and goes on.
    names = set(inspect(conn).get_table_names(schema=schema))
    fresh = VERSION_TABLE not in names and not names & set(SQLModel.metadata.tables)
    revision = cheap_head()
    if fresh and not step_by_step and revision is not None:
        _create_head(conn, revision)
        return Upgrade(None, revision)
    if VERSION_TABLE in names and revision is not None and _recorded(conn, schema) == revision:
        return Upgrade(revision, revision)  # made by an instance started at the same time
    from alembic import command

    cfg = alembic_config(conn, schema)
    before = None if VERSION_TABLE not in names else _current(conn, schema)
    legacy = before is None and bool(names & set(SQLModel.metadata.tables))
    if legacy:
        command.stamp(cfg, BASELINE)  # made by create_all before migrations existed
    elif before is not None and not known(before):
        # A newer release migrated it (rolling upgrade): run on it if all we use is still there.
        found = SchemaState(current=before, head=head(), missing=_missing(conn, schema))
        if not found.ok:
            raise RuntimeError(found.describe())
        log.warning(found.describe())
        return Upgrade(before, before)
    command.upgrade(cfg, "head")
    return Upgrade(before, head(), legacy)


def _create_head(conn: Connection, revision: str) -> None:
    """An empty database: every table as storage/models.py declares it, and ``revision`` recorded as
    Alembic records it, in the caller's transaction (all or nothing). The tables go where the
    migrations would put them: the connection's search_path on PostgreSQL (see migrations/env.py)."""
    SQLModel.metadata.create_all(conn, checkfirst=False)  # the caller saw none of them
    _VERSION.create(conn, checkfirst=False)
    conn.execute(_VERSION.insert().values(version_num=revision))


def _current(conn: Connection, schema: str | None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()  # in the search_path's schema


# ---------------------------------------------------------------- check


async def state(engine: AsyncEngine, schema: str | None = None) -> SchemaState:
    """The schema's state: recorded revision against head, and any table or column the code needs
    but the database lacks (dropped or altered by hand). Two cheap queries when all is well.

    Errors: connection errors as raised by the driver.
    """
    async with engine.connect() as conn:
        return await conn.run_sync(_state_sync, schema)


def _state_sync(conn: Connection, schema: str | None) -> SchemaState:
    try:
        conn.execute(text(_probe_sql(conn)))
        missing: list[str] = []
    except Exception:  # some table or column is missing: find out which
        conn.rollback()
        missing = _missing(conn, schema)
    current = None if VERSION_TABLE in missing else _recorded(conn, schema)
    missing = [m for m in missing if m != VERSION_TABLE]
    # some of the tables exist (missing columns, "table.column", do not count: each migration adds some)
    legacy = current is None and len([m for m in missing if "." not in m]) < len(SQLModel.metadata.tables)
    conn.rollback()
    return SchemaState(current=current, head=cheap_head() or head(), legacy=legacy, missing=missing)


def without_tables() -> SchemaState:
    """The state of a database with none of remindbot's tables, known without opening it (an empty
    SQLite file, which a connection would write to)."""
    return SchemaState(current=None, head=cheap_head() or head(), legacy=False,
                       missing=[table.name for table in SQLModel.metadata.sorted_tables])


def _recorded(conn: Connection, schema: str | None) -> str | None:
    """The recorded revision, read with one query when the version table exists (``/healthz``
    asks on every call; Alembic is not imported for it); several rows: Alembic decides."""
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(rows) <= 1:
        return str(rows[0][0]) if rows else None
    return _current(conn, schema)


def _probe_sql(conn: Connection) -> str:
    """One statement naming every table and column the code uses; it fails if any is missing."""
    quote = conn.dialect.identifier_preparer.quote
    parts = [f"SELECT 1 FROM {quote(VERSION_TABLE)} WHERE 1=0 AND version_num IS NULL"]
    for table in SQLModel.metadata.sorted_tables:
        columns = " AND ".join(f"{quote(c.name)} IS NULL" for c in table.columns)
        parts.append(f"SELECT 1 FROM {quote(table.name)} WHERE 1=0 AND {columns}")
    return " UNION ALL ".join(parts)


def _missing(conn: Connection, schema: str | None) -> list[str]:
    inspector = inspect(conn)
    tables = set(inspector.get_table_names(schema=schema))
    out = [] if VERSION_TABLE in tables else [VERSION_TABLE]  # callers drop it from what they show
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in tables:
            out.append(table.name)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name, schema=schema)}
        out.extend(f"{table.name}.{c.name}" for c in table.columns if c.name not in have)
    return out


# ---------------------------------------------------------------- new revisions (developers)


def next_revision_id() -> str:
    """``0002`` after ``0001``: revisions are numbered in order."""
    return f"{int(head()) + 1:04d}"


def compare(conn: Connection, schema: str | None = None) -> list[Any]:
    """Differences between storage/models.py and the database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, SQLModel.metadata))


def write_revision(conn: Connection, message: str) -> Path:
    """Autogenerate the next revision from storage/models.py against a database at head."""
    from alembic import command

    cfg = alembic_config(conn)
    script = command.revision(cfg, message=message, autogenerate=True, rev_id=next_revision_id())
    head.cache_clear()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
