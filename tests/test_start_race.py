"""Two ``remindbot serve`` processes started at the very same moment on one new database: one first-start
mark, nothing due before the start sent, the stage due after it sent once (real processes, a fake WeCom
that counts what arrives; one PostgreSQL schema and one SQLite file, a pair of instances on each).

Both instances find no mark and both record the first start (``scheduler_mark`` row 2, written
``ON CONFLICT DO NOTHING`` on its key: the first written stays, the other reads it back). Each then plans
from it and, when the stage comes due, both are woken at the same second and race to claim it. What a
double start would do shows here: a stage due before the start sent as 补发 by the instance that planned
from the other's last pass (the first start ignored), a pass failing on the second mark, or the due
stage claimed twice (two "按时发出" lines, ``attempts`` 2).

Two processes started one right after the other rarely reach the mark in the same millisecond. On
PostgreSQL they are made to: the schema is made first (``remindbot db upgrade``) and the test holds
``scheduler_mark`` locked against writes (reads pass) while both start; once both first passes have read
"no mark" and wait on their insert (``pg_locks``), the lock goes and both inserts run at once. The SQLite
pair only starts together (one file, one writer at a time: no such gate without changing the code).

Checked against the code with each guard taken out (2026-12-01): the mark inserted without ``ON CONFLICT``
(the gated PostgreSQL pair's second pass fails on the key, every run); passes planning from the last pass
with the first start's floor gone (the stage due before the start goes out as 补发); the claim not
requiring the stage open and free (both instances fire it: ``attempts`` 2; seen on one pair or the other in
each of two runs, this one depending on the two timers' race).

Reminders are due at whole minutes, so the test waits for the next minute at least :data:`LEAD` seconds
ahead (the instances must have started by then): 15 to 75 s.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import DEFAULT_PG_URL
from tests.fakes.platforms import FakePlatforms, FakeRobot
from tests.fakes.proxy import LoopThread
from tests.servehelp import STARTED, Service, Workspace, wait_until

PG_URL = os.environ.get("REMINDBOT_TEST_PG_URL", DEFAULT_PG_URL)
LEAD = 15.0  # seconds from the start to the due minute, at least: time for four instances to start
DUE, BEFORE = "同时启动：到期提醒", "同时启动：启动前的提醒"


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as running:
        yield running


@pytest.fixture
def fakes(loop: LoopThread) -> Iterator[FakePlatforms]:
    servers = FakePlatforms(clock=time.time)
    loop.run(servers.start())
    try:
        yield servers
    finally:
        loop.run(servers.close())


def write_schedules(workspace: Workspace, group: FakeRobot, admin: FakeRobot, due: datetime,
                    before: datetime) -> None:
    """A reminder due at ``due`` (after the start) and one due at ``before`` (before it, within every
    look-back: 补发 if a pass ever planned from before the first start)."""
    for old in workspace.schedules.glob("*.yaml"):
        old.unlink()
    reminders = "".join(f"""  - id: {rid}
    title: {title}
    when: {{once: {at:%Y-%m-%d}, at: "{at:%H:%M}"}}
    timezone: UTC
    holiday: keep
    recipients: {{channels: [group]}}
""" for rid, title, at in (("due", DUE, due), ("before", BEFORE, before)))
    workspace.replace("race.yaml", f"""service:
  admin_channel: admin
channels:
  - {{id: group, name: 测试党支部群, platform: wecom, webhook: "{group.url}"}}
  - {{id: admin, name: 工委管理员群, platform: wecom, webhook: "{admin.url}"}}
reminders:
{reminders}""")


class Backend:
    """One database with its pair of instances, its workspace and its fake robots."""

    def __init__(self, name: str, workspace: Workspace, fakes: FakePlatforms, env: dict[str, str]) -> None:
        self.name, self.workspace, self.env = name, workspace, env
        self.group, self.admin = fakes.wecom(f"{name}-group"), fakes.wecom(f"{name}-admin")
        self.services: list[Service] = []

    def start_pair(self) -> None:
        self.services = [Service.start(self.workspace, name=f"{self.name}-{i}", env=self.env) for i in (1, 2)]

    def texts(self) -> list[str]:
        return self.group.texts() + self.admin.texts()

    def ticked_since(self, moment: datetime) -> bool:
        """Both instances' scheduler started a pass at ``moment`` or later (/healthz: its last tick)."""
        for service in self.services:
            tick = service.health()[1]["checks"]["scheduler"]["last_tick"]
            if tick is None or datetime.fromisoformat(tick) < moment:
                return False
        return True

    def output(self) -> str:
        return "\n".join(f"=== {s.stdout_path.name}\n{s.output()}" for s in self.services)


def sqlite_state(db: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return state_of({name: c.execute(sql).fetchall() for name, sql in STATE.items()})


def pg_state(loop: LoopThread, schema: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        c = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), server_settings={"search_path": schema})
        try:
            return state_of({name: [tuple(r) for r in await c.fetch(sql)] for name, sql in STATE.items()})
        finally:
            await c.close()

    return loop.run(read())


STATE = {
    "marks": "SELECT id FROM scheduler_mark ORDER BY id",
    "stages": "SELECT reminder_id, stage, status, attempts FROM due_stage ORDER BY reminder_id, stage",
    "occurrences": "SELECT reminder_id FROM occurrence ORDER BY reminder_id",
    "outbox": "SELECT channel_id, status, (SELECT count(*) FROM delivery_attempt a WHERE a.outbox_id = o.id)"
              " FROM outbox o ORDER BY id",
}


def state_of(found: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    return {name: [tuple(row) for row in rows] for name, rows in found.items()}


def next_minute(after: datetime) -> datetime:
    return (after + timedelta(minutes=1)).replace(second=0, microsecond=0)


def pg_ready_or_skip(loop: LoopThread) -> None:
    async def ping() -> None:
        connection = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=5)
        await connection.close()

    try:
        loop.run(ping())
    except (OSError, ConnectionError) as exc:
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL at {PG_URL} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")


class MarkGate:
    """``scheduler_mark`` locked against writes (``EXCLUSIVE``: reads go on) by a transaction of the test's."""

    def __init__(self, loop: LoopThread, schema: str) -> None:
        self.loop, self.table = loop, f"{schema}.scheduler_mark"
        self._connection: asyncpg.Connection | None = None

    def close(self) -> None:
        async def lock() -> asyncpg.Connection:
            c = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
            await c.execute(f"BEGIN; LOCK TABLE {self.table} IN EXCLUSIVE MODE")
            return c

        self._connection = self.loop.run(lock())

    def waiting(self) -> int:
        """Backends waiting for the lock (instances whose insert of the mark is held)."""
        assert self._connection is not None
        return int(self.loop.run(self._connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE relation = to_regclass($1) AND NOT granted", self.table)))

    def open(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            self.loop.run(connection.close())  # the transaction ends with the connection: both inserts go


def drop_schema(loop: LoopThread, schema: str) -> None:
    async def drop() -> None:
        c = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
        try:
            await c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await c.close()

    loop.run(drop())


@pytest.mark.postgres
def test_two_instances_started_together_keep_one_first_start_mark_and_send_the_due_stage_once(
        tmp_path: Path, loop: LoopThread, fakes: FakePlatforms) -> None:
    pg_ready_or_skip(loop)
    schema = f"race_{uuid.uuid4().hex[:12]}"
    gate = MarkGate(loop, schema)
    backends = [Backend(name, Workspace.create(tmp_path / name), fakes, env) for name, env in (
        ("pg", {"REMINDBOT_DATABASE_URL": PG_URL, "REMINDBOT_DATABASE_SCHEMA": schema}), ("sqlite", {}))]
    pg, lite = backends
    try:
        upgrade = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], env=pg.workspace.env(**pg.env),
                                 capture_output=True, text=True, timeout=120, check=False)
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        gate.close()
        now = datetime.now(UTC)
        due = next_minute(now + timedelta(seconds=LEAD, microseconds=-1))  # the first whole minute LEAD s ahead
        before = now.replace(second=0, microsecond=0) - timedelta(minutes=2)
        for backend in backends:
            write_schedules(backend.workspace, backend.group, backend.admin, due, before)
        for backend in backends:  # each pair at the very same moment: one Popen right after the other
            backend.start_pair()
        wait_until(lambda: gate.waiting() == 2, "both PostgreSQL instances waiting to write the first-start mark", 60)
        gate.open()
        for backend in backends:
            for service in backend.services:
                service.wait_ready()
                service.wait_for_log(STARTED)
        assert datetime.now(UTC) < due, f"the instances took until past {due:%H:%M:%S} to start"
        bound = (due - datetime.now(UTC)).total_seconds() + 60
        for backend in backends:
            wait_until(lambda b=backend: any(DUE in t for t in b.group.texts()), f"{backend.name}: {DUE}", bound)
            wait_until(lambda b=backend: b.ticked_since(due), f"{backend.name}: both instances woken at {due}", 30)
        reads = {pg.name: lambda: pg_state(loop, schema), lite.name: lambda: sqlite_state(lite.workspace.database)}
        for backend in backends:
            read = reads[backend.name]
            wait_until(lambda r=read: r()["outbox"], f"{backend.name}: the message recorded", 30)
            wait_until(lambda r=read: all(row[1] != "pending" for row in r()["outbox"]),
                       f"{backend.name}: every message sent", 30)
            state, said = read(), backend.output()
            assert state["marks"] == [(1,), (2,)], f"{backend.name}: {state}\n{said}"  # one first start, one last pass
            assert state["stages"] == [("due", "due", "fired", 1)], f"{backend.name}: {state}\n{said}"
            assert state["occurrences"] == [("due",)], f"{backend.name}: {state}"
            assert state["outbox"] == [("group", "sent", 1)], f"{backend.name}: {state}"
            assert [t for t in backend.texts() if DUE in t] == backend.texts(), f"{backend.name}: {backend.texts()}"
            assert len(backend.texts()) == 1, f"{backend.name}: {backend.texts()}\n{said}"
            assert said.count("按时发出") == 1 and "已补发" not in said, said
            for bad in ("调度检查失败", "Traceback", "ERROR"):
                assert bad not in said, f"{backend.name}: {bad}\n{said}"
            for service in backend.services:
                assert service.process.poll() is None, service.output()
    finally:
        gate.open()
        for backend in backends:
            for service in backend.services:
                service.kill()
        drop_schema(loop, schema)
