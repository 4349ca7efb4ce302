"""db upgrade, db check, db revision: the schema's migrations from the command line."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import click

from bot.settings import Settings
from storage import migrate
from storage.db import Database, foreign_tables


@click.group("db")
def db() -> None:
    """数据库结构：升级（upgrade）、检查是否最新（check）。"""


@db.command("upgrade")
def upgrade() -> None:
    """把数据库结构升级到最新版本（保留全部数据；服务启动时也会自动升级）。"""
    click.echo(asyncio.run(_upgrade(Settings())).describe())


async def _upgrade(settings: Settings) -> migrate.Upgrade:
    database = Database(settings.database_url, schema=settings.database_schema or None)
    try:
        return await database.start(wait_seconds=settings.db_start_timeout_seconds)
    finally:
        await database.stop()


@db.command("check")
def check() -> None:
    """检查数据库结构是否最新：是则退出码 0，否则说明原因并以 1 退出。"""
    state = asyncio.run(_state(Settings()))
    click.echo(state.describe(), err=not state.ok)
    sys.exit(0 if state.ok else 1)


async def _state(settings: Settings) -> migrate.SchemaState:
    # A check reads: a SQLite file that does not exist is said (DatabaseMissing), not made empty.
    database = Database(settings.database_url, schema=settings.database_schema or None, create=False)
    if database.file is not None and foreign_tables(database.file) is not None:
        # Empty, or another program's: said without connecting, since the engine's first connection
        # sets WAL mode, which writes SQLite's header into an empty file (and changes another's).
        await database.stop()
        return migrate.without_tables()
    try:
        await database.wait_reachable(settings.db_start_timeout_seconds)
        return await migrate.state(database.engine, database.schema)
    finally:
        await database.stop()


@db.command("revision")
@click.argument("message")
def revision(message: str) -> None:
    """（开发者）storage/models.py 改动后，生成下一个迁移文件，请检查后提交。"""
    path = asyncio.run(_revision(message))
    click.echo(f"已生成 {path}；请检查其内容，再运行测试 tests/test_migrations.py。")


async def _revision(message: str) -> Path:
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite+aiosqlite:///{Path(folder) / 'head.db'}", say=False)  # scratch, ours
        try:
            await migrate.upgrade(database.engine, step_by_step=True)  # what the migrations build, not the models
            async with database.engine.connect() as conn:
                return await conn.run_sync(migrate.write_revision, message)
        finally:
            await database.stop()
