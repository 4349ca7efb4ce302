"""The database engine: SQLite (embedded default) or PostgreSQL, same code."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing, suppress
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util.concurrency import await_
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import migrate
from storage.models import Instance  # also registers every table
from storage.writes import create_private, make_private  # a new file private, as a command's sqlite3 writer
from storage.writes import to_wal as _to_wal

log = logging.getLogger(__name__)
INSTANCE = Instance.__table__  # type: ignore[attr-defined]
RETRY_FIRST_SECONDS = 0.5  # first pause between connection attempts at start; doubles
RETRY_MAX_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 10.0  # one connection attempt at start


def dialect_insert(name: str) -> Any:
    """The ``insert`` (with ``on_conflict_do_nothing``) of the dialect named ``name`` ("postgresql",
    else SQLite's). Imported on first use: a service on SQLite never imports PostgreSQL's dialect."""
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class DatabaseUnavailable(Exception):
    """The database cannot be used at start. ``str()`` is one Chinese sentence, without any password."""


class DatabaseMissing(DatabaseUnavailable):
    """A command that only reads or records was pointed at a SQLite file that does not exist, or at one
    without remindbot's tables (an empty file), or at a PostgreSQL database or schema without them (a
    mistyped name on a shared server): it makes neither the file nor the tables (they would hide a
    mistyped path until the next command found nothing in it). Also a file that is not SQLite.

    ``str()`` is the whole refusal; ``what`` its first clause, what was found (``数据库文件 “…” 不存在``),
    for a command that goes on without the database (``preview``) and says so in its own words."""

    def __init__(self, what: str, rest: str) -> None:
        super().__init__(f"{what}，{rest}")
        self.what = what


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
HOW_TO_MAKE = ("请检查 REMINDBOT_DATABASE_URL（未设置时为 REMINDBOT_VAR_DIR 下的 remindbot.db）是否写对；"
               "新安装时请先运行 remindbot serve（首次启动时创建数据库）或 remindbot db upgrade 创建它。")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database, PostgreSQL or a URL that cannot be
    parsed (the engine says why)."""
    try:
        parsed = make_url(async_url(url))
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def missing_file(path: Path) -> DatabaseMissing:
    """What an admin reads when a reading command finds no SQLite file at ``path``: which file, and how
    to make it (README: ``remindbot serve`` makes it at its first start, ``remindbot db upgrade`` too)."""
    return DatabaseMissing(f"数据库文件 “{path.resolve()}” 不存在", f"本命令只读取或记录，不新建数据库。{HOW_TO_MAKE}")


def is_not_sqlite(path: Path) -> bool:
    """Whether the existing file at ``path`` has content that is not a SQLite database (its first 16
    bytes are not SQLite's header). An empty file is an empty SQLite database, so false; so is a file
    that cannot be read (SQLite says why when it opens it)."""
    try:
        with path.open("rb") as file:
            start = file.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return bool(start) and start != SQLITE_HEADER


def not_sqlite(path: Path, ending: str) -> DatabaseMissing:
    """What an admin reads when ``path`` is not a SQLite file; ``ending``: what the command gave up."""
    return DatabaseMissing(f"文件 “{path.resolve()}” 不是 SQLite 数据库（文件开头没有 SQLite 的标识）",
                           f"{ending}。请检查 REMINDBOT_DATABASE_URL 是否指向了别的文件。")


def foreign_tables(path: Path) -> list[str] | None:
    """The tables of the SQLite file at ``path`` when none of them is remindbot's (no ``alembic_version``
    and none of storage/models.py's): [] for an empty file or database; None when it is remindbot's
    (of any schema version: the command upgrades an older one) or cannot be read (the engine says why).
    Read with plain ``sqlite3``, so nothing is written: no journal mode set, no table made."""
    try:
        if path.stat().st_size == 0:
            return []
    except OSError:
        return None  # gone meanwhile, or unreadable: the engine says why
    try:
        with closing(sqlite3.connect(path)) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.Error:
        return None
    return None if migrate.is_ours(names) else names


def foreign_file(path: Path, tables: list[str]) -> DatabaseMissing:
    """What an admin reads when a reading command finds a SQLite file without remindbot's tables."""
    why = "没有任何表" if not tables else "其中没有 remindbot 的表"
    return DatabaseMissing(f"数据库文件 “{path.resolve()}” 不是 remindbot 的数据库（{why}）",
                           f"本命令只读取或记录，不在其中建表，未执行。{HOW_TO_MAKE}")


SERVER_HOW_TO_MAKE = ("请检查 REMINDBOT_DATABASE_URL 中的库名（及 REMINDBOT_DATABASE_SCHEMA）是否写对；"
                      "新安装时请先运行 remindbot serve（首次启动时建表）或 remindbot db upgrade 建表。")


def server_foreign(where: str, schema: str | None, found: migrate.NotOurs, ending: str) -> DatabaseMissing:
    """What an admin reads when a reading command finds a PostgreSQL database (``where``: its URL,
    password masked) or ``schema`` without remindbot's tables; ``ending``: what the command gave up."""
    place = f"数据库 {where} 的 schema “{schema}”" if schema else f"数据库 {where}"
    if not found.schema_exists:
        why = "该 schema 不存在"
    elif not found.tables:
        why = "没有任何表"
    else:
        shown = "、".join(f"“{name}”" for name in found.tables[:5]) + ("等" if len(found.tables) > 5 else "")
        why = f"只有别的表：{shown}"
    return DatabaseMissing(f"{place} 中没有 remindbot 的表（{why}）",
                           f"本命令只读取或记录，不在其中建表，{ending}。{SERVER_HOW_TO_MAKE}")


def refusal(url: str, *, create: bool, ending: str) -> DatabaseMissing | None:
    """Why a command must not open the SQLite database at ``url``, or None: a missing file (``create``
    false), or a file that is not SQLite (``ending``: what the command gives up)."""
    path = sqlite_file(url)
    if path is None:
        return None
    if not path.exists():
        return None if create else missing_file(path)
    return not_sqlite(path, ending) if path.is_file() and is_not_sqlite(path) else None


class Database:
    """Owns the engine. ``await db.start()`` migrates to the newest schema; ``await db.stop()`` disposes.

    ``schema`` (PostgreSQL only) keeps every table in that schema: tests and benchmarks use a
    fresh one each and drop it afterwards (``create_schema`` / ``drop_schema``).

    ``create`` (default): a SQLite file that does not exist is made, saying so in one warning line
    (``say``: false for a scratch file of our own); false (the reading and recording commands):
    ``DatabaseMissing`` instead, and nothing is made, not even its folder; the same at :meth:`start`
    for an existing file without remindbot's tables (an empty one), whose tables are not made either,
    and for a PostgreSQL database or schema without them, where nothing is made, not even the schema
    (``db check``, which reads the schema without starting, says so in its own words).

    ``serving``: the service starts on it, and a refusal ends “放弃启动”; else “未执行” (a command).

    Errors: ``DatabaseUnavailable`` for a URL that names no usable driver or cannot be parsed;
    ``DatabaseMissing`` as above, and for a file that is not a SQLite database.
    """

    def __init__(self, url: str, *, schema: str | None = None, create: bool = True, say: bool = True,
                 serving: bool = False) -> None:
        self.ending = "放弃启动" if serving else "未执行"
        if (refused := refusal(url, create=create, ending=self.ending)) is not None:
            raise refused
        self.create = create
        self.file = sqlite_file(url)
        url = async_url(url)
        self.url = url
        self.schema = schema
        try:
            self.engine: AsyncEngine = _make_engine(url, schema, say=say)
        except (ArgumentError, InvalidRequestError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise DatabaseUnavailable(
                f"数据库地址 REMINDBOT_DATABASE_URL 无效（{type(exc).__name__}）；应为 "
                "sqlite+aiosqlite:///文件路径 或 postgresql+asyncpg://用户@主机:端口/库名") from None
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @cached_property
    def autocommit(self) -> AsyncEngine:
        """The same pool, each statement committed on its own (no BEGIN or COMMIT round trip): for
        work that is one statement (the confirm page's PostgreSQL path)."""
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def where(self) -> str:
        """The database as an admin names it, password masked: ``postgresql+asyncpg://u:***@host:5432/db``."""
        return describe_url(self.url)

    async def start(self, *, wait_seconds: float = 0.0) -> migrate.Upgrade:
        """Wait for the server (up to ``wait_seconds``), then migrate the schema to the newest revision.

        Errors: ``DatabaseUnavailable`` (Chinese, naming host and port, no password, no traceback
        needed) when the server stays unreachable, refuses us, or the schema cannot be upgraded;
        ``DatabaseMissing`` (``create`` false) for a SQLite file or a PostgreSQL database (or schema)
        without remindbot's tables, left as it was (the file is checked before any connection: SQLite's
        WAL pragma would write its header into an empty one).
        """
        if not self.create and self.file is not None and (tables := foreign_tables(self.file)) is not None:
            raise foreign_file(self.file, tables)
        await self.wait_reachable(wait_seconds)
        try:
            return await migrate.upgrade(self.engine, self.schema, create=self.create)
        except migrate.NotOurs as found:
            raise server_foreign(self.where, self.schema, found, self.ending) from None
        except (OSError, TimeoutError, DBAPIError, RuntimeError) as exc:
            raise DatabaseUnavailable(f"数据库 {self.where} 无法使用：{self._reason(exc)}") from None

    async def wait_reachable(self, wait_seconds: float) -> None:
        """Connect once, retrying with backoff (PostgreSQL) until ``wait_seconds`` have passed."""
        deadline = time.monotonic() + wait_seconds
        pause, told = RETRY_FIRST_SECONDS, False
        while True:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS), self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            except (OSError, TimeoutError, DBAPIError) as exc:
                reason = self._reason(exc)
                remaining = deadline - time.monotonic()
                if self.is_sqlite or remaining <= 0:
                    waited = f"；已重试 {wait_seconds:g} 秒" if told else ""
                    gave_up = f"无法连接数据库 {self.where}：{reason}{waited}，{self.ending}。"
                    raise DatabaseUnavailable(gave_up) from None
                if not told:
                    log.warning("无法连接数据库 %s：%s；%g 秒内继续重试……", self.where, reason, wait_seconds)
                    told = True
                await asyncio.sleep(min(pause, remaining))  # the last try comes at the deadline
                pause = min(pause * 2, RETRY_MAX_SECONDS)
                continue
            if told:
                log.info("已连接数据库 %s", self.where)
            return

    def _reason(self, exc: BaseException) -> str:
        """Why, in Chinese; the driver's own message for the server's answers, never the password."""
        if isinstance(exc, ConnectionRefusedError):
            reason = "连接被拒绝（该地址和端口上没有数据库在监听）"
        elif isinstance(exc, socket.gaierror):
            reason = "主机名无法解析"
        elif isinstance(exc, TimeoutError):
            reason = f"连接超时（{CONNECT_TIMEOUT_SECONDS:g} 秒内无答复）"
        elif isinstance(exc, DBAPIError) and self.is_sqlite and "file is not a database" in str(exc.orig):
            reason = "该文件不是 SQLite 数据库，或已损坏"  # a valid header over damaged pages
        elif isinstance(exc, DBAPIError):
            reason = f"数据库答复：{str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__}"
        elif isinstance(exc, OSError):
            reason = f"网络错误（{exc.strerror or type(exc).__name__}）"
        else:
            reason = str(exc)
        password = make_url(self.url).password
        return reason.replace(str(password), "***") if password else reason

    async def stop(self) -> None:
        await self.engine.dispose()

    async def instance_nonce(self) -> str:
        """This database's random value (made on first use; see ``storage.models.Instance``).

        Core statements, not the ORM: every command that opens the database reads it, and one row
        is not worth configuring the 13 mappers (``fire`` uses none of them)."""
        t = INSTANCE
        query = select(t.c.nonce).where(t.c.id == 1)
        async with self.engine.connect() as conn:
            found = await conn.scalar(query)
            if found is not None:
                return str(found)
            try:
                await conn.execute(insert(t).values(id=1, nonce=secrets.token_urlsafe(16)))
                await conn.commit()
            except IntegrityError:  # another instance made it first
                await conn.rollback()
            nonce = await conn.scalar(query)
        assert nonce is not None
        return str(nonce)

    async def create_schema(self) -> None:
        if self.schema:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    async def drop_schema(self) -> None:
        if self.schema:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session


_ASYNC_SCHEMES = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def async_url(url: str) -> str:
    """The URL with the async driver named: ``postgres://`` (Heroku style) and ``postgresql://`` become
    ``postgresql+asyncpg://``, ``sqlite:///`` becomes ``sqlite+aiosqlite:///``; others are unchanged."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _ASYNC_SCHEMES:
        return f"{_ASYNC_SCHEMES[scheme.lower()]}://{rest}"
    return url


def describe_url(url: str | URL) -> str:
    """The URL with its password masked, plus ``（host:port）`` for a server (PostgreSQL's default port)."""
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.drivername.startswith("sqlite"):
        return shown
    return f"{shown}（{parsed.host or 'localhost'}:{parsed.port or 5432}）"


def _made_private(path: Path, *, say: bool = True) -> Callable[[], None]:
    """What makes a SQLite file this process creates readable by its owner only (0600, as
    ``var/secret_key``): it holds people's names, mobiles and notes. A new one is created so now, before SQLite
    opens it (:func:`storage.writes.create_private`); what is returned is called after each connection's
    pragmas (WAL has made -wal and -shm by then); a file that existed keeps its owner's mode. A new
    file is named in one warning line unless ``say`` is false."""
    new = not path.exists()
    if new:
        with suppress(OSError):  # one that cannot be made: SQLite says why at its first connection
            create_private(path, say=say)
    done = False

    def restrict() -> None:
        nonlocal done
        if new and not done:
            done = True
            make_private(path)

    return restrict


def _make_engine(url: str, schema: str | None = None, *, say: bool = True) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        private: Callable[[], None] | None = None  # None: in memory, no file
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            private = _made_private(Path(parsed.database), say=say)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the web app read while the dispatcher writes.
            cur = dbapi_conn.cursor()
            _to_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            if private is not None:
                private()

        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                                 connect_args=connect_args)
    engine.sync_engine.dialect.do_ping = _ping_in_one_trip  # type: ignore[method-assign]
    return engine


def _ping_in_one_trip(dbapi_connection: Any) -> bool:
    """The pool's check of a connection before each use, in one round trip (``;``).

    SQLAlchemy's asyncpg ping wraps it in ``BEGIN`` … ``ROLLBACK`` when no transaction is open, for
    PgBouncer's transaction mode; that mode cannot serve this service anyway (asyncpg's prepared
    statements are cached per connection), and it made the check three round trips, paid by every
    request of the confirm page and every transaction of the loops. A connection found dead is
    reported the same way (the adapter's error, so the pool replaces it). Falls back to the
    adapter's own ping where its internals differ.
    """
    connection = getattr(dbapi_connection, "_connection", None)
    handle = getattr(dbapi_connection, "_handle_exception", None)
    if connection is None or handle is None or getattr(dbapi_connection, "_transaction", None) is not None:
        dbapi_connection.ping()
        return True
    try:
        await_(connection.fetchrow(";"))
    except Exception as error:  # the adapter turns asyncpg's errors into the DBAPI's (disconnects included)
        handle(error)
    return True
