"""fix18a: a command that only reads or records, pointed at a PostgreSQL database or schema without
remindbot's tables (a mistyped name on a shared server), refuses in the words of the SQLite empty-file
case and creates nothing there, not even the schema; the commands that make the database still do,
and a database of an older revision is still upgraded. On the real server: a fresh schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage.db import Database
from tests.conftest import DEFAULT_PG_URL
from tests.test_missing_database import READING, remindbot

pytestmark = pytest.mark.postgres

PASSWORD = "pg-secret-pass-18a"  # trust auth ignores it; it must never be printed


def server_url() -> str:
    """The test server's URL, with a password added (to see that it is masked)."""
    url = os.environ.get("REMINDBOT_TEST_PG_URL", DEFAULT_PG_URL)
    if url == "skip":
        pytest.skip("REMINDBOT_TEST_PG_URL=skip")
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def host_port() -> str:
    parsed = make_url(server_url())
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


@pytest.fixture
async def server() -> AsyncIterator[Database]:
    """A connection to the test server (its default schema), to make and inspect the tests' schemas."""
    database = Database(server_url())
    try:
        async with database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, ConnectionError) as exc:
        await database.stop()
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers: {exc}")
    try:
        yield database
    finally:
        await database.stop()


@pytest.fixture
async def schema(server: Database) -> AsyncIterator[str]:
    """A fresh schema's name (not made: each test makes it or not), dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        async with server.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


async def run(server: Database, *statements: str) -> list[str]:
    """Run ``statements`` in one transaction; the last one's first column."""
    async with server.engine.begin() as conn:
        for statement in statements:
            result = await conn.execute(text(statement))
        return [str(row[0]) for row in result.all()] if result.returns_rows else []


async def tables_in(server: Database, schema: str) -> list[str]:
    return await run(server, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}' "
                             "ORDER BY table_name")


async def schema_exists(server: Database, schema: str) -> bool:
    return bool(await run(server, f"SELECT nspname FROM pg_namespace WHERE nspname = '{schema}'"))


def env_for(tmp_path: Path, schema: str | None, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update({
        "REMINDBOT_DATABASE_URL": url or server_url(),
        "REMINDBOT_VAR_DIR": str(tmp_path / "var"),
        "REMINDBOT_SECRET_KEY": "test-signing-key",
        "REMINDBOT_ADMIN_USER": "admin",
        "REMINDBOT_ADMIN_PASSWORD": "a-long-password-of-ours",
    })
    if schema:
        env["REMINDBOT_DATABASE_SCHEMA"] = schema
    return env


def said_no_tables(err: str, schema: str, why: str) -> None:
    assert f"的 schema “{schema}” 中没有 remindbot 的表（{why}）" in err, err
    assert "本命令只读取或记录，不在其中建表，未执行。" in err, err
    assert "remindbot serve" in err and "remindbot db upgrade" in err, err
    assert f"（{host_port()}） 的 schema" in err and PASSWORD not in err, err


# db check reads the schema without starting and says in its own words that it has no tables
@pytest.mark.parametrize("args", READING[1:], ids=[" ".join(a[:2]) for a in READING[1:]])
async def test_a_reading_command_refuses_an_empty_schema_and_makes_no_tables_in_it(
        tmp_path: Path, server: Database, schema: str, args: tuple[str, ...]) -> None:
    await run(server, f'CREATE SCHEMA "{schema}"')
    code, out, err = await remindbot(env_for(tmp_path, schema), *args)
    assert code == 1, out + err
    said_no_tables(err, schema, "没有任何表")
    assert PASSWORD not in out
    assert await tables_in(server, schema) == []


async def test_a_mistyped_schema_is_not_made(tmp_path: Path, server: Database, schema: str) -> None:
    code, out, err = await remindbot(env_for(tmp_path, schema), "status")
    assert code == 1, out + err
    said_no_tables(err, schema, "该 schema 不存在")
    assert not await schema_exists(server, schema)
    code, out, err = await remindbot(env_for(tmp_path, schema), "db", "check")  # reads, makes nothing either
    assert code == 1 and "还没有 remindbot 的表" in err and PASSWORD not in out + err, out + err
    assert not await schema_exists(server, schema)


async def test_a_schema_of_another_program_is_named_and_left_as_it_was(
        tmp_path: Path, server: Database, schema: str) -> None:
    await run(server, f'CREATE SCHEMA "{schema}"', f'CREATE TABLE "{schema}".notes (body text)')
    code, out, err = await remindbot(env_for(tmp_path, schema), "report", "--period", "2026-12")
    assert code == 1, out + err
    said_no_tables(err, schema, "只有别的表：“notes”")
    assert await tables_in(server, schema) == ["notes"]


async def test_a_database_without_remindbot_tables_and_no_schema_setting_is_refused(
        tmp_path: Path, server: Database) -> None:
    # A mistyped database name on a shared server: a database that exists, of someone else.
    name = f"test_{uuid.uuid4().hex[:12]}"
    async with server.autocommit.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url()).set(database=name).render_as_string(hide_password=False)
    other = Database(url)
    try:
        code, out, err = await remindbot(env_for(tmp_path, None, url), "status")
        assert code == 1, out + err
        shown = make_url(url).render_as_string(hide_password=True)  # the password as ***
        assert f"数据库 {shown}（{host_port()}） 中没有 remindbot 的表（没有任何表），" \
               "本命令只读取或记录，不在其中建表，未执行。" in err, err
        assert PASSWORD not in out + err
        async with other.engine.connect() as conn:
            public = (await conn.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"))).scalar()
        assert public == 0
    finally:
        await other.stop()
        async with server.autocommit.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


async def test_db_upgrade_and_fire_still_make_the_tables_in_an_empty_schema(
        tmp_path: Path, server: Database, schema: str) -> None:
    # Guard (passes on main too): only the reading commands refuse.
    env = env_for(tmp_path, schema)
    code, out, err = await remindbot(env, "fire", "study-day", "--date", "2026-12-04", "--dry-run")
    assert code == 0, out + err
    assert "alembic_version" in await tables_in(server, schema)
    await run(server, f'DROP SCHEMA "{schema}" CASCADE')
    code, out, err = await remindbot(env, "db", "upgrade")
    assert code == 0 and "数据库结构已升级：空库" in out, out + err
    code, out, err = await remindbot(env, "status")
    assert code == 0 and "未执行" not in out + err, out + err


async def test_a_reading_command_still_upgrades_a_schema_of_an_older_release(
        tmp_path: Path, server: Database, schema: str) -> None:
    # Guard (passes on main too): the refusal is for schemas without remindbot's tables, not old ones.
    from test_migrations import make_legacy_database

    old = Database(server_url(), schema=schema)
    try:
        await old.create_schema()
        await make_legacy_database(old)
    finally:
        await old.stop()
    env = env_for(tmp_path, schema)
    code, out, err = await remindbot(env, "status")
    assert code == 0 and "未执行" not in out + err, out + err
    code, out, err = await remindbot(env, "db", "check")
    assert code == 0 and "最新" in out, out + err


async def test_a_preview_of_a_bulletin_on_an_empty_schema_makes_no_tables_and_says_its_figures_are_left_out(
        tmp_path: Path, server: Database, schema: str) -> None:
    await run(server, f'CREATE SCHEMA "{schema}"')
    code, out, err = await remindbot(env_for(tmp_path, schema), "preview", "monthly-bulletin")
    assert code == 0, out + err
    assert "党员参加组织生活情况通报" in out
    left_out = f"的 schema “{schema}” 中没有 remindbot 的表（没有任何表），以上消息未含统计数字（预览不新建数据库）。"
    assert left_out in out, out
    assert PASSWORD not in out + err
    assert await tables_in(server, schema) == []
