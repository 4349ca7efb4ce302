"""Schema migrations: the models and the migrations agree, an old database is upgraded with its rows,
`remindbot db check/upgrade`, and instances started together on an empty PostgreSQL all come up.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel, select

from storage import migrate
from storage.db import Database, DatabaseUnavailable
from storage.models import Confirmation, DeliveryAttempt, Expectation, Instance, Nudge, Occurrence, Outbox
from tests.conftest import DEFAULT_PG_URL
from tests.servehelp import Service, Workspace, wait_until

DATA = Path(__file__).resolve().parent / "data"
PG_URL = os.environ.get("REMINDBOT_TEST_PG_URL", DEFAULT_PG_URL)


# ---------------------------------------------------------------- fixtures: empty databases


async def _pg_reachable(database: Database) -> None:
    try:
        await database.create_schema()
    except (OSError, ConnectionError) as exc:
        await database.stop()
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL at {PG_URL} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no table at all (not started): SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    else:
        if PG_URL == "skip":
            pytest.skip("REMINDBOT_TEST_PG_URL=skip")
        database = Database(PG_URL, schema=f"test_{uuid.uuid4().hex[:12]}")
        await _pg_reachable(database)
    try:
        yield database
    finally:
        await database.drop_schema()
        await database.stop()


def legacy_statements(dialect: str) -> list[str]:
    """The DDL today's main ran (create_all at commit 1171f6a), as captured in tests/data."""
    sql = (DATA / f"schema_1171f6a.{dialect}.sql").read_text(encoding="utf-8")
    lines = [line for line in sql.splitlines() if not line.startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip()]


DUE = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
ROWS = [
    "INSERT INTO instance (id, nonce) VALUES (1, 'nonce-kept-across-upgrade')",
    "INSERT INTO occurrence (id, reminder_id, due_at, original_date, title, kind, deadline_at, provisional,"
    " created_at, fired_at) VALUES (7, 'study-day', :due, '2026-12-04', '每月学习日', 'reminder', :due,"
    " false, :due, :due)",
    "INSERT INTO expectation (id, occurrence_id, person_id, person_name, unit_id, unit_name, leader_ids,"
    " next_followup_at, followups, next_escalation_at, escalations) VALUES (3, 7, 'wang_fang', '王芳',"
    " 'fgw_b1', '第一党支部', '[\"zhao_ming\"]', :due, 1, NULL, 0)",
    "INSERT INTO confirmation (id, occurrence_id, person_id, confirmed_at, via, note, recorded_by)"
    " VALUES (5, 7, 'wang_fang', :due, 'admin', '电话确认', 'admin')",
    "INSERT INTO outbox (id, dedupe_key, occurrence_id, stage, channel_id, platform, robot, body, summary,"
    " status, attempts, next_attempt_at, lease_owner, lease_until, last_error, error_kind, created_at,"
    " sent_at) VALUES (11, 'occ7/due/gw_wecom/group#0', 7, 'due', 'gw_wecom', 'wecom', 'r1',"
    " '{\"msgtype\": \"text\"}', '每月学习日', 'pending', 2, :due, NULL, NULL, '超时', 'retry', :due, NULL)",
    "INSERT INTO delivery_attempt (id, outbox_id, attempt, at, ok, error_kind, detail, http_status)"
    " VALUES (13, 11, 1, :due, false, 'retry', '超时', 502)",
    "INSERT INTO nudge (id, occurrence_id, person_id, kind, number, at) VALUES (17, 7, 'wang_fang',"
    " 'followup', 1, :due)",
]


async def make_legacy_database(database: Database) -> None:
    """What today's main leaves behind: its tables (no alembic_version) holding a little of everything."""
    dialect = database.engine.dialect.name
    due = DUE.replace(tzinfo=None).isoformat(sep=" ") if dialect == "sqlite" else DUE
    async with database.engine.begin() as conn:
        for statement in legacy_statements(dialect):
            await conn.execute(text(statement))
        for row in ROWS:
            await conn.execute(text(row), {"due": due} if ":due" in row else {})
        if dialect == "postgresql":  # explicit ids: move the sequences on, as inserts through the app would
            for table in ("occurrence", "expectation", "confirmation", "outbox", "delivery_attempt", "nudge"):
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)"))


# ---------------------------------------------------------------- the guarantees


async def test_models_and_migrations_agree_so_a_model_change_needs_a_migration(empty_db: Database) -> None:
    # Built by running every migration; storage/models.py must describe exactly that.
    await migrate.upgrade(empty_db.engine, empty_db.schema, step_by_step=True)
    async with empty_db.engine.connect() as conn:
        differences = await conn.run_sync(migrate.compare, empty_db.schema)
    assert differences == [], (
        "storage/models.py and storage/migrations disagree: run `remindbot db revision \"what changed\"` "
        f"and review the new file. Differences: {differences}")


def schema_of(conn: Connection, schema: str | None) -> dict[str, Any]:
    """Everything the database says about its tables: columns in order (type, null, default), keys,
    foreign keys, indexes, unique and check constraints; the schema's own name written as ``S``."""
    found = inspect(conn)
    same = (lambda value: str(value).replace(schema, "S")) if schema else str

    def listed(items: list[Any]) -> list[str]:
        return sorted(same(item) for item in items)

    return {
        table: {
            "columns": [same((c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement")))
                        for c in found.get_columns(table, schema=schema)],
            "primary key": same(found.get_pk_constraint(table, schema=schema)),
            "foreign keys": listed(found.get_foreign_keys(table, schema=schema)),
            "indexes": listed(found.get_indexes(table, schema=schema)),
            "unique": listed(found.get_unique_constraints(table, schema=schema)),
            "checks": listed(found.get_check_constraints(table, schema=schema)),
        }
        for table in sorted(found.get_table_names(schema=schema))
    }


async def test_an_empty_database_made_in_one_step_is_exactly_what_the_migrations_make(
        empty_db: Database, tmp_path: Path) -> None:
    # An empty database gets the newest schema from storage/models.py in one step; the same
    # database built revision by revision must not differ in anything (column order included).
    if empty_db.is_sqlite:
        stepwise = Database(f"sqlite+aiosqlite:///{tmp_path / 'stepwise.db'}")
    else:
        stepwise = Database(PG_URL, schema=f"test_{uuid.uuid4().hex[:12]}")
        await stepwise.create_schema()
    try:
        one_step = await migrate.upgrade(empty_db.engine, empty_db.schema)
        by_steps = await migrate.upgrade(stepwise.engine, stepwise.schema, step_by_step=True)
        assert (one_step.before, one_step.after) == (by_steps.before, by_steps.after) == (None, migrate.head())
        async with empty_db.engine.connect() as conn:
            made = await conn.run_sync(schema_of, empty_db.schema)
        async with stepwise.engine.connect() as conn:
            migrated = await conn.run_sync(schema_of, stepwise.schema)
    finally:
        await stepwise.drop_schema()
        await stepwise.stop()
    assert set(made) == set(migrated) == set(SQLModel.metadata.tables) | {migrate.VERSION_TABLE}
    for table in migrated:
        assert made[table] == migrated[table], f"{table}: made in one step differs from the migrations' result"
    assert (await migrate.state(empty_db.engine, empty_db.schema)).ok


def test_an_empty_database_is_created_without_loading_alembic(tmp_path: Path) -> None:
    # A new install's first command (`fire`, `serve`) pays neither Alembic's import nor the migrations.
    code = ("import asyncio, sys\n"
            "from storage.db import Database\n"
            "async def main():\n"
            f"    db = Database('sqlite+aiosqlite:///{tmp_path / 'new.db'}')\n"
            "    done = await db.start()\n"
            "    await db.stop()\n"
            "    print(done.before, done.after, done.describe())\n"
            "asyncio.run(main())\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"None {migrate.head()} 数据库结构已升级：空库 → {migrate.head()}。", "[]"]


async def test_instances_starting_together_on_an_empty_sqlite_file_make_its_tables_once(tmp_path: Path) -> None:
    databases = [Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}") for _ in range(4)]
    try:
        done = await asyncio.gather(*(database.start() for database in databases))
        assert sorted(d.changed for d in done) == [False, False, False, True]
        assert {d.after for d in done} == {migrate.head()}
        assert (await migrate.state(databases[0].engine)).ok
    finally:
        for database in databases:
            await database.stop()


async def test_a_database_made_before_migrations_is_upgraded_with_every_row_kept(empty_db: Database) -> None:
    await make_legacy_database(empty_db)
    before = await migrate.state(empty_db.engine, empty_db.schema)
    assert before.legacy and not before.ok

    await empty_db.start()

    after = await migrate.state(empty_db.engine, empty_db.schema)
    assert after.ok and after.current == migrate.head()
    async with empty_db.session() as session:
        (occ,) = (await session.exec(select(Occurrence))).all()
        (exp,) = (await session.exec(select(Expectation))).all()
        (conf,) = (await session.exec(select(Confirmation))).all()
        (row,) = (await session.exec(select(Outbox))).all()
        (attempt,) = (await session.exec(select(DeliveryAttempt))).all()
        (nudge,) = (await session.exec(select(Nudge))).all()
        instance = await session.get(Instance, 1)
    assert (occ.id, occ.title, occ.due_at, str(occ.original_date)) == (7, "每月学习日", DUE, "2026-12-04")
    assert (exp.person_name, exp.leader_ids, exp.followups) == ("王芳", ["zhao_ming"], 1)
    assert (conf.via, conf.note, conf.recorded_by) == ("admin", "电话确认", "admin")
    assert (row.status, row.attempts, row.body, row.dedupe_key) == (
        "pending", 2, {"msgtype": "text"}, "occ7/due/gw_wecom/group#0")
    assert (attempt.outbox_id, attempt.http_status, attempt.ok) == (11, 502, False)
    assert (nudge.kind, nudge.number) == ("followup", 1)
    # Confirmation links stay valid: they are signed with this database's nonce.
    assert instance is not None and instance.nonce == "nonce-kept-across-upgrade"
    # And the upgraded database takes new rows.
    async with empty_db.session() as session:
        session.add(Occurrence(reminder_id="study-day", due_at=DUE.replace(month=11), title="每月学习日"))
        await session.commit()
    assert await empty_db.instance_nonce() == "nonce-kept-across-upgrade"


async def test_starting_twice_on_a_current_database_changes_nothing(any_db: Database) -> None:
    done = await migrate.upgrade(any_db.engine, any_db.schema)
    assert not done.changed and done.describe() == f"数据库结构已是最新（版本 {migrate.head()}），无需升级。"


async def test_a_database_migrated_by_a_newer_release_is_used_while_it_has_what_this_code_needs(
    any_db: Database,
) -> None:
    # A rolling upgrade: a newer instance migrated to a revision this code does not know, adding things.
    async with any_db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        await conn.execute(text("ALTER TABLE outbox ADD COLUMN lane TEXT"))
    done = await any_db.start()
    assert (done.before, done.after) == ("9999", "9999") and "未作改动" in done.describe()
    found = await migrate.state(any_db.engine, any_db.schema)
    assert found.ok and found.newer and "可以继续运行" in found.describe()

    async with any_db.engine.begin() as conn:  # ... but a newer release that dropped a column we use
        await conn.execute(text("ALTER TABLE nudge DROP COLUMN kind"))
    with pytest.raises(DatabaseUnavailable, match=r"缺少本程序用到的 nudge\.kind"):
        await any_db.start()
    assert not (await migrate.state(any_db.engine, any_db.schema)).ok


def run_db(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "db", *args], env=workspace.env(),
                          capture_output=True, text=True, timeout=120, check=False)


async def test_db_check_says_in_chinese_when_behind_and_db_upgrade_brings_it_current(workspace: Workspace) -> None:
    database = Database(f"sqlite+aiosqlite:///{workspace.database}")
    try:
        await make_legacy_database(database)
    finally:
        await database.stop()

    behind = run_db(workspace, "check")
    assert behind.returncode == 1
    assert "数据库由旧版本创建" in behind.stderr and "remindbot db upgrade" in behind.stderr

    upgraded = run_db(workspace, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"数据库结构已升级：旧版本创建的数据库（数据已保留） → {migrate.head()}" in upgraded.stdout

    current = run_db(workspace, "check")
    assert current.returncode == 0, current.stderr
    assert f"数据库结构是最新的（版本 {migrate.head()}）" in current.stdout


def test_db_check_on_an_empty_database_says_there_are_no_tables(workspace: Workspace) -> None:
    workspace.database.parent.mkdir(parents=True, exist_ok=True)
    workspace.database.touch()  # an empty SQLite file (one that does not exist: tests/test_missing_database.py)
    result = run_db(workspace, "check")
    assert result.returncode == 1
    assert "还没有 remindbot 的表" in result.stderr


# ---------------------------------------------------------------- instances started together


@dataclass
class PgWorkspace(Workspace):
    """A workspace whose service uses a PostgreSQL schema instead of the SQLite file."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**(self.extra | extra))


@pytest.fixture
async def fresh_pg_schema() -> AsyncIterator[str]:
    """The name of a PostgreSQL schema that does not exist yet (dropped afterwards)."""
    if PG_URL == "skip":
        pytest.skip("REMINDBOT_TEST_PG_URL=skip")
    name = f"test_{uuid.uuid4().hex[:12]}"
    database = Database(PG_URL, schema=name)
    await _pg_reachable(database)
    await database.drop_schema()  # reachable: now let the instances create it
    try:
        yield name
    finally:
        await database.drop_schema()
        await database.stop()


@pytest.fixture
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in services:
        service.kill()


@pytest.mark.postgres
def test_instances_started_together_on_an_empty_postgres_database_all_come_up(
    fresh_pg_schema: str, tmp_path: Path, started: list[Service],
) -> None:
    for n in range(5):
        workspace = PgWorkspace.create(tmp_path / f"instance{n}")
        workspace.extra = {"REMINDBOT_DATABASE_URL": PG_URL, "REMINDBOT_DATABASE_SCHEMA": fresh_pg_schema,
                           "REMINDBOT_SECRET_KEY": "shared-key"}
        started.append(Service.start(workspace))

    def all_healthy() -> bool:
        for service in started:
            if service.process.poll() is not None:
                raise AssertionError(f"an instance exited with {service.process.returncode}:\n{service.output()}")
        try:
            return all(service.get("/healthz")[0] == 200 for service in started)
        except OSError:  # one is not listening yet
            return False

    wait_until(all_healthy, "every instance's /healthz answering 200", timeout=120)
    for service in started:
        assert "Traceback" not in service.output()
