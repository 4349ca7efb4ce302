"""``remindbot fire`` killed (SIGKILL) while it writes, then fired again, gives what one uninterrupted fire gives.

Real processes on a province (tests/firekill.py: 30,000 secretaries owe a confirmation, ~4,800 messages, most of
them record-only): a ``fire`` is killed while it writes the expectations, the next one while it writes the
outbox rows (each kill seen to land inside the open write transaction), a third runs to its end and sends,
and a ``serve`` after it has nothing left to send. Compared with one uninterrupted fire of the same province on
a file of its own: the same occurrence, every expectation and every outbox row once, the same delivery attempts,
and a fake WeCom (counting what arrives) got each message exactly once. On a SQLite file ``fire`` writes through
``sqlite3`` (storage/writes.py); on PostgreSQL it takes the session's path (bot.delivery.outbox.SessionWriter):
both are killed the same way.

Last, a command killed the moment it makes a new SQLite file: the file must never be readable by others,
neither then nor after the next run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.conftest import DEFAULT_PG_URL
from tests.fakes.platforms import FakePlatforms, FakeRobot
from tests.fakes.proxy import LoopThread
from tests.firekill import (
    ROOT,
    ROWS,
    SENDING,
    SPILLED,
    Missed,
    SqliteWatch,
    command_env,
    fire_argv,
    generate,
    kill_inside,
    normal,
    run_fire,
    sqlite_rows,
    wal_tail,
)
from tests.servehelp import Service, Workspace, wait_until

PG_URL = os.environ.get("REMINDBOT_TEST_PG_URL", DEFAULT_PG_URL)
TRIES = 3  # a kill point missed on a loaded machine (see firekill.Missed) is tried again on a fresh database


@dataclass
class Province:
    root: Path
    schedules: Path
    var: Path
    loop: LoopThread
    robots: list[FakeRobot]
    reference: dict[str, Any]  # one uninterrupted fire's rows (firekill.ROWS)
    arrivals: Counter[tuple[str, str]]  # what that fire sent: (robot, body) → times

    def received(self) -> Counter[tuple[str, str]]:
        return Counter((robot.token, json.dumps(r.json, ensure_ascii=False, sort_keys=True))
                       for robot in self.robots for r in list(robot.requests) if r.accepted)

    def forget(self) -> None:
        """The fakes forget what arrived (and their rate windows): the next run is counted alone."""
        for robot in self.robots:
            robot.requests.clear()
            robot._sent_at.clear()


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    root = tmp_path_factory.mktemp("province")
    with LoopThread() as loop:
        fakes = FakePlatforms(clock=time.time)
        loop.run(fakes.start())
        try:
            robots = [fakes.wecom(f"fire-kill-{j:02d}") for j in range(SENDING)]
            due = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=7)).date()
            generate(root / "schedules", [robot.url for robot in robots], due)
            found = Province(root, root / "schedules", root / "var", loop, robots, {}, Counter())
            db = root / "reference.db"
            run_fire(command_env(found.schedules, found.var, f"sqlite+aiosqlite:///{db}"), root)
            found.reference, found.arrivals = sqlite_rows(db), found.received()
            found.forget()
            yield found
        finally:
            loop.run(fakes.close())


def begin(province: Province) -> None:
    """Check what the uninterrupted fire gave, and count this test's arrivals alone."""
    province.forget()
    reference = province.reference
    assert len(reference["occurrence"]) == 1 and len(reference["expectation"]) == 30_000
    statuses = Counter(row[8] for row in reference["outbox"])
    assert statuses["sent"] == sum(province.arrivals.values()) > 0 and statuses["dry_run"] > 4_000, statuses
    assert set(province.arrivals.values()) == {1}


def same_rows(found: dict[str, Any], reference: dict[str, Any]) -> None:
    """Every table's rows as the uninterrupted fire's: none missing, none extra or repeated."""
    for table in ROWS:
        got, want = Counter(found[table]), Counter(reference[table])
        missing, extra = want - got, got - want
        assert not missing and not extra, (
            f"{table}: {sum(missing.values())} rows missing (e.g. {list(missing)[:2]}), "
            f"{sum(extra.values())} extra or repeated (e.g. {list(extra)[:2]})")


def final_fire_said(done: subprocess.CompletedProcess[str], province: Province) -> None:
    """The completing fire queued every message (none was committed before) and sent the real ones."""
    assert f"新排队 {len(province.reference['outbox'])} 条消息" in done.stdout, done.stdout


def serve_sends_nothing_more(province: Province, database: Path, env: dict[str, str], name: str) -> None:
    """A ``serve`` on the database after the fires: its dispatcher finds nothing left to send."""
    workspace = Workspace(province.root, province.schedules, ROOT / "message_templates", database, province.var)
    service = Service.start(workspace, name=name, env={"REMINDBOT_SECRET_KEY": "fire-kill", **env})
    try:
        service.wait_ready()
        service.wait_for_log("remindbot 已启动", timeout=60)
        assert service.stop() == 0, service.output()
    finally:
        service.kill()
    assert "发送器已停止：已发送 0 条" in service.stdout, service.output()


# ------------------------------------------------------------------ SQLite


def fire_killed_on_sqlite(province: Province, db: Path, env: dict[str, str],
                          committed: tuple[int, bool, bool], what: str) -> int:
    """Start ``fire``, SIGKILL it inside the write transaction that follows ``committed``; the open
    transaction's frames left in the WAL."""
    watch = SqliteWatch(db)
    process = subprocess.Popen(fire_argv(), env=env, cwd=province.root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        kill_inside(process, watch.writing(committed), what, before_kill=watch.close)
    finally:
        watch.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    left = wal_tail(db)
    assert left >= SPILLED, f"killed {what}, yet the WAL holds only {left} uncommitted frames"
    return left


def test_fire_on_a_sqlite_file_killed_while_writing_expectations_then_outbox_rows_ends_as_one_fire(
        province: Province, tmp_path: Path) -> None:
    begin(province)
    for attempt in range(1, TRIES + 1):
        db = tmp_path / f"killed-{attempt}.db"
        env = command_env(province.schedules, province.var, f"sqlite+aiosqlite:///{db}")
        try:
            # 1. The occurrence is committed; killed while its 30,000 expectations are being written.
            left = fire_killed_on_sqlite(province, db, env, (1, False, False), "writing the expectations")
            # 2. Fired again: killed while the outbox rows are written (the expectations committed).
            left_too = fire_killed_on_sqlite(province, db, env, (1, True, False), "writing the outbox rows")
            print(f"killed with {left} and {left_too} uncommitted frames in the WAL")
            break
        except Missed as missed:
            print(f"attempt {attempt}: {missed}")
            province.forget()
            if attempt == TRIES:
                raise
    assert province.received() == Counter(), "nothing was sent before the outbox rows were committed"
    done = run_fire(env, province.root)
    final_fire_said(done, province)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    same_rows(sqlite_rows(db), province.reference)
    assert province.received() == province.arrivals
    serve_sends_nothing_more(province, db, {}, "serve-sqlite")
    assert province.received() == province.arrivals  # each message once, nothing more


# ------------------------------------------------------------------ PostgreSQL


class PgWatch:
    """What a ``fire`` in ``schema`` has committed and holds open, from a connection of the test's own."""

    def __init__(self, loop: LoopThread, schema: str) -> None:
        self.loop, self.schema = loop, schema
        self._connection: asyncpg.Connection | None = None

    async def _open(self) -> asyncpg.Connection:
        if self._connection is None:
            self._connection = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
        return self._connection

    def writing(self, table: str, committed_before: str | None) -> Callable[[], bool]:
        """A transaction holds ``table``'s write lock, nothing of ``table`` is committed and, when named,
        ``committed_before`` is."""
        async def look() -> bool:
            c = await self._open()
            held = await c.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = to_regclass($1) AND mode = 'RowExclusiveLock'"
                " AND granted", f"{self.schema}.{table}")
            if not held:
                return False
            if await c.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self.schema}.{table})"):
                return False
            return committed_before is None or bool(
                await c.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self.schema}.{committed_before})"))

        return lambda: self.loop.run(look())

    def idle(self) -> bool:
        """No backend holds a lock in the schema any more (the killed client's transaction rolled back)."""
        async def look() -> bool:
            c = await self._open()
            return not await c.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_class r ON r.oid = l.relation"
                " JOIN pg_namespace n ON n.oid = r.relnamespace WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                self.schema)

        return self.loop.run(look())

    def rows(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            c = await self._open()
            await c.execute(f"SET search_path TO {self.schema}")
            try:
                return {table: [normal(tuple(row)) for row in await c.fetch(sql)] for table, sql in ROWS.items()}
            finally:
                await c.execute("RESET search_path")

        return self.loop.run(read())

    def drop(self) -> None:
        async def drop() -> None:
            c = await self._open()
            await c.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            await c.close()

        self.loop.run(drop())
        self._connection = None


def pg_or_skip(province: Province) -> None:
    async def ping() -> None:
        connection = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=5)
        await connection.close()

    try:
        province.loop.run(ping())
    except (OSError, ConnectionError) as exc:
        if os.environ.get("REMINDBOT_REQUIRE_PG") == "1":
            pytest.fail(f"REMINDBOT_REQUIRE_PG=1 but PostgreSQL at {PG_URL} does not answer: {exc}")
        pytest.skip(f"no PostgreSQL server answers at {PG_URL}")


def fire_killed_on_postgres(province: Province, watch: PgWatch, env: dict[str, str],
                            inside: Callable[[], bool], what: str) -> None:
    process = subprocess.Popen(fire_argv(), env=env, cwd=province.root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        kill_inside(process, inside, what)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    wait_until(watch.idle, f"the killed fire's transaction ended ({what})", 60)


@pytest.mark.postgres
def test_fire_on_postgresql_killed_while_writing_expectations_then_outbox_rows_ends_as_one_fire(
        province: Province) -> None:
    pg_or_skip(province)
    begin(province)
    for attempt in range(1, TRIES + 1):
        watch = PgWatch(province.loop, f"firekill_{uuid.uuid4().hex[:12]}")
        env = command_env(province.schedules, province.var, PG_URL, watch.schema)
        try:
            fire_killed_on_postgres(province, watch, env, watch.writing("expectation", None),
                                    "writing the expectations")
            fire_killed_on_postgres(province, watch, env, watch.writing("outbox", "expectation"),
                                    "writing the outbox rows")
            break
        except Missed as missed:
            print(f"attempt {attempt}: {missed}")
            watch.drop()
            province.forget()
            if attempt == TRIES:
                raise
    try:
        assert province.received() == Counter()
        done = run_fire(env, province.root)
        final_fire_said(done, province)
        same_rows(watch.rows(), province.reference)
        assert province.received() == province.arrivals
        serve_sends_nothing_more(province, province.root / "unused.db",
                                 {"REMINDBOT_DATABASE_URL": PG_URL, "REMINDBOT_DATABASE_SCHEMA": watch.schema},
                                 "serve-pg")
        assert province.received() == province.arrivals
    finally:
        watch.drop()


# ------------------------------------------------------------------ a new file, killed as it is made


def mode_when_made(path: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """The mode of ``path`` the moment it appears (looked for without pause), the process then stopped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            assert process.poll() is None, f"the command ended ({process.returncode}) without making {path}"
            assert time.monotonic() < deadline, f"{path} not made within {timeout:.0f} s"
            continue
        os.kill(process.pid, signal.SIGSTOP)
        return mode


@pytest.mark.parametrize("command", [["fire", "study-day"], ["db", "upgrade"]], ids=["sqlite3-writer", "engine"])
def test_a_command_killed_as_it_makes_a_new_sqlite_file_never_leaves_it_readable_by_others(
        workspace: Workspace, command: list[str]) -> None:
    # The file was made 0644 and restricted after SQLite had opened it: a kill in between left a database of
    # names and mobiles readable by anyone on the machine, and later runs (the file there) kept it so.
    argv = [sys.executable, "-m", "bot", *command]
    process = subprocess.Popen(argv, env=workspace.env(), cwd=workspace.root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        seen = mode_when_made(workspace.database, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    done = subprocess.run(argv, env=workspace.env(), cwd=workspace.root, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in workspace.root.glob(f"{workspace.database.name}*")}
    assert oct(seen) == "0o600" and set(modes.values()) == {"0o600"}, (oct(seen), modes)
