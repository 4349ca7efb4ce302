"""A province's schedules and the tools to kill ``remindbot fire`` inside one of its write transactions.

Used by tests/test_fire_kill.py. The province is bench/scale.py's shape at a test's size: units and people as
CSV, one reminder owed by every secretary. Most of its rows go to record-only channels (no webhook: recorded,
never sent), so the write transactions are long enough to be caught midway while the messages really sent to
the fake WeCom stay few.

How "midway" is seen, without a fixed sleep:

- SQLite (WAL): a write transaction larger than the connection's page cache (2 MB by default) spills pages to
  the WAL before its commit. Frames after the last committed one (the wal-index header in ``-shm`` names it,
  https://www.sqlite.org/walformat.html) are the open transaction's pages: the kill lands inside it.
- PostgreSQL: the ``fire`` backend holds ``RowExclusiveLock`` on the table from its INSERT until the
  transaction ends; the lock held with nothing of the table committed is the open transaction.

The process is stopped (SIGSTOP) when that is seen, the condition is checked again while it cannot move on,
and only then killed (SIGKILL): the kill is known to have landed where the test says.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REMINDER = "owed"
SECRETARIES = 30_000
UNITS = 3_000
RECORD_ONLY = 8  # channels without a webhook that every secretary is in: the bulk of the outbox rows
SENDING = 10  # channels with a fake WeCom robot each
IN_SENDING_GROUP = 20  # one secretary in this many is in one of the sending groups as well
SPILLED = 16  # frames (64 KB) of an open transaction seen in the WAL before the kill
KILL_WAIT_SECONDS = 120.0


def generate(folder: Path, webhooks: list[str], due: date) -> None:
    """units.csv, people.csv, channels.yaml and reminders.yaml of the province under ``folder``."""
    folder.mkdir(parents=True)
    bureaus = UNITS // 100
    with (folder / "units.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["标识", "名称", "上级单位", "分管领导"])
        out.writerow(["u00000", "工委", "", "L0000"])
        for i in range(1, UNITS):
            parent, leader = ("u00000", f"L{i:04d}") if i <= bureaus else (f"u{1 + i % bureaus:05d}", "")
            out.writerow([f"u{i:05d}", f"{'局' if leader else '支部'}{i}", parent, leader])
    recorded = " ".join(f"r{j:02d}" for j in range(RECORD_ONLY))
    with (folder / "people.csv").open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["标识", "姓名", "单位", "角色", "手机", "企业微信", "所在群"])
        for i in range(bureaus + 1):
            out.writerow([f"L{i:04d}", f"领导{i}", f"u{i:05d}", "leader", f"139{i:08d}", f"lead{i}", "r00"])
        for i in range(SECRETARIES):
            groups = recorded
            if i % IN_SENDING_GROUP == 0:
                groups += f" w{(i // IN_SENDING_GROUP) % len(webhooks):02d}"
            out.writerow([f"p{i:06d}", f"书记{i}", f"u{i % UNITS:05d}", "secretary", f"138{i:08d}", f"user{i}",
                          groups])
    lines = ["channels:"]
    lines += [f"  - {{id: r{j:02d}, name: 记录群{j}, platform: wecom, format: text}}" for j in range(RECORD_ONLY)]
    lines += [f"  - {{id: w{j:02d}, name: 支部群{j}, platform: wecom, format: text, webhook: '{url}'}}"
              for j, url in enumerate(webhooks)]
    (folder / "channels.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    channels = ", ".join([f"r{j:02d}" for j in range(RECORD_ONLY)] + [f"w{j:02d}" for j in range(len(webhooks))])
    (folder / "reminders.yaml").write_text(f"""reminders:
  - id: {REMINDER}
    title: 每月学习日
    when: {{once: {due.isoformat()}, at: "09:00"}}
    holiday: keep
    template: study_day
    recipients:
      channels: [{channels}]
      mention: {{roles: [secretary]}}
    confirm: {{deadline: 3wd, remind_every: 1d}}
""", encoding="utf-8")


def command_env(schedules: Path, var: Path, database_url: str, schema: str = "") -> dict[str, str]:
    """The parent's environment without remindbot settings, pointed at the province and a database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_") and k != "PORT"}
    env.update(REMINDBOT_SCHEDULES_DIR=str(schedules), REMINDBOT_TEMPLATES_DIR=str(ROOT / "message_templates"),
               REMINDBOT_VAR_DIR=str(var), REMINDBOT_DATABASE_URL=database_url, REMINDBOT_SECRET_KEY="fire-kill",
               PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    if schema:
        env["REMINDBOT_DATABASE_SCHEMA"] = schema
    return env


def fire_argv() -> list[str]:
    return [sys.executable, "-m", "bot", "fire", REMINDER]


def run_fire(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``remindbot fire`` to its end (its dispatcher burst included)."""
    done = subprocess.run(fire_argv(), env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"fire failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


class Missed(AssertionError):
    """The process got past the point before it was seen there (a slow poll on a loaded machine)."""


def kill_inside(process: subprocess.Popen[bytes], inside: Callable[[], bool], what: str,
                before_kill: Callable[[], None] = lambda: None, timeout: float = KILL_WAIT_SECONDS) -> None:
    """SIGKILL ``process`` once ``inside()`` holds, checked again while the process is stopped
    (``before_kill`` then runs: the watcher lets go of the file, so the next process finds it as a crash leaves it)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise Missed(f"fire ended ({process.returncode}) before it was seen {what}")
        if inside():
            os.kill(process.pid, signal.SIGSTOP)
            if inside():  # it cannot have moved on since: the kill lands there
                before_kill()
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
                return
            os.kill(process.pid, signal.SIGCONT)
            raise Missed(f"fire moved on between two looks {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for fire {what}")
        time.sleep(0.002)


# ------------------------------------------------------------------ SQLite


def wal_pending(db: Path, most: int = 1 << 30) -> int:
    """Frames in ``db``'s WAL after its last committed frame (the wal-index's ``mxFrame``), up to ``most``."""
    try:
        index = db.with_name(f"{db.name}-shm").read_bytes()[:48]
        wal = db.with_name(f"{db.name}-wal").open("rb")
    except FileNotFoundError:
        return 0
    with wal:
        header = wal.read(32)
        if len(index) < 48 or len(header) < 32:
            return 0
        committed = struct.unpack("=I", index[16:20])[0]  # native byte order, as SQLite maps it
        page = struct.unpack(">I", header[8:12])[0]
        wal.seek(32 + committed * (24 + page))
        return _uncommitted(wal, header[16:24], page, most)


def wal_tail(db: Path) -> int:
    """Frames at the end of ``db``'s WAL written after its last commit frame, read from the WAL alone
    (after a kill, before anything opens the file again)."""
    with db.with_name(f"{db.name}-wal").open("rb") as wal:
        header = wal.read(32)
        page = struct.unpack(">I", header[8:12])[0]
        salts, pending = header[16:24], 0
        while frame := wal.read(24):
            if len(frame) < 24 or frame[8:16] != salts:
                break
            pending = 0 if frame[4:8] != b"\0\0\0\0" else pending + 1
            wal.seek(page, 1)
        return pending


def _uncommitted(wal: Any, salts: bytes, page: int, most: int) -> int:
    count = 0
    while count < most:
        frame = wal.read(24)
        # A frame of this WAL generation (its salts) that is no commit frame (0: no database size after it).
        if len(frame) < 24 or frame[8:16] != salts or frame[4:8] != b"\0\0\0\0":
            break
        count += 1
        wal.seek(page, 1)
    return count


class SqliteWatch:
    """What is committed in a SQLite file, through a read-only connection kept open while polling."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self._connection: sqlite3.Connection | None = None

    def committed(self) -> tuple[int, bool, bool] | None:
        """(occurrences, any expectation, any outbox row) committed; None before the tables exist."""
        if not self.db.exists():
            return None
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            c = self._connection
            return (c.execute("SELECT count(*) FROM occurrence").fetchone()[0],
                    bool(c.execute("SELECT EXISTS (SELECT 1 FROM expectation)").fetchone()[0]),
                    bool(c.execute("SELECT EXISTS (SELECT 1 FROM outbox)").fetchone()[0]))
        except sqlite3.Error:
            return None

    def writing(self, committed: tuple[int, bool, bool]) -> Callable[[], bool]:
        """Committed exactly ``committed`` and an open transaction's pages in the WAL."""
        return lambda: self.committed() == committed and wal_pending(self.db, SPILLED) >= SPILLED

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def sqlite_rows(db: Path) -> dict[str, Any]:
    """The rows a fire leaves, comparable across databases (see :func:`normal`)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return {table: [normal(row) for row in c.execute(sql)] for table, sql in ROWS.items()}


# The rows compared, with what differs between two equal fires left out: ids of rows that a rolled-back
# transaction may have used up on PostgreSQL, and the times of "now" (created, sent, attempted).
ROWS = {
    "occurrence": """SELECT id, reminder_id, due_at, original_date, title, kind, deadline_at, provisional, dry_run,
        fired_at IS NOT NULL FROM occurrence ORDER BY id""",
    "expectation": """SELECT occurrence_id, person_id, person_name, unit_id, unit_name, leader_ids, next_followup_at,
        followups, next_escalation_at, escalations, excused_at FROM expectation ORDER BY person_id""",
    "outbox": """SELECT dedupe_key, occurrence_id, stage, channel_id, platform, robot, body, summary, status, attempts,
        last_error, sent_at IS NOT NULL, sending_since FROM outbox ORDER BY dedupe_key""",
    "attempts": """SELECT o.dedupe_key, count(a.id) FROM outbox o LEFT JOIN delivery_attempt a ON a.outbox_id = o.id
        GROUP BY o.dedupe_key ORDER BY o.dedupe_key""",
}


def normal(row: Any) -> tuple[Any, ...]:
    """Values as both databases can be compared: times as SQLite's text, booleans as 0/1, JSON parsed."""
    out: list[Any] = []
    for value in row:
        if isinstance(value, datetime):
            value = value.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, str) and value[:1] in "[{":
            value = json.dumps(json.loads(value), ensure_ascii=False, sort_keys=True)
        out.append(value)
    return tuple(out)
