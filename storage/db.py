"""The database engine: SQLite (embedded default) or PostgreSQL, same code."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Instance  # also registers every table


class Database:
    """Owns the engine. ``await db.start()`` creates tables; ``await db.stop()`` disposes.

    ``schema`` (PostgreSQL only) keeps every table in that schema: tests and benchmarks use a
    fresh one each and drop it afterwards (``create_schema`` / ``drop_schema``).
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.engine: AsyncEngine = _make_engine(url, schema)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    async def stop(self) -> None:
        await self.engine.dispose()

    async def instance_nonce(self) -> str:
        """This database's random value (made on first use; see ``storage.models.Instance``)."""
        async with self.session() as session:
            row = await session.get(Instance, 1)
            if row is not None:
                return row.nonce
            session.add(Instance(id=1, nonce=secrets.token_urlsafe(16)))
            try:
                await session.commit()
            except IntegrityError:  # another instance made it first
                await session.rollback()
        async with self.session() as session:
            found = await session.get(Instance, 1)
            assert found is not None
            return found.nonce

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


def _make_engine(url: str, schema: str | None = None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the web app read while the dispatcher writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                               connect_args=connect_args)
