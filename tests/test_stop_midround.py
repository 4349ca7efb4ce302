"""A stop that lands in the middle of a database write waits for it instead of cutting it off.

Found by CI: ``remindbot serve`` took over 30 s to stop after SIGTERM when the signal arrived
while a follow-up round was writing. The round was cancelled inside its SQLite transaction, the
connection kept the write lock, and the dispatcher's last write (giving back its lanes) waited out
the 30 s busy timeout. Here a real follow-up round over a real SQLite file is stopped at its first
claim ``UPDATE``; the stop must end promptly and leave the database writable at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from sqlalchemy import event

from bot.confirming.followup import FollowUps
from storage.db import Database
from storage.models import Nudge
from tests.test_bulk_fire import PEOPLE, count, fire_study, settings_for
from tests.test_followup import Clock, bj, make_runtime


def writable_now(path: Path) -> bool:
    """Whether another connection can take the write lock within 0.5 s (what any later write needs)."""
    conn = sqlite3.connect(path, timeout=0.5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


async def test_a_stop_during_a_follow_up_round_leaves_the_database_writable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'remindbot.db'}"
    db = Database(url)
    await db.start()
    clock = Clock(bj(2026, 11, 3, 9, 0))
    runtime = await make_runtime(settings_for(tmp_path, url), clock, db)
    try:
        await fire_study(runtime)
        clock.now = bj(2026, 11, 4, 9, 0)  # the first follow-up is due for every secretary
        writing = asyncio.Event()
        loop = asyncio.get_running_loop()

        def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
                loop.call_soon_threadsafe(writing.set)

        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        followups = FollowUps(runtime)
        await followups.start()
        await asyncio.wait_for(writing.wait(), timeout=30)
        began = time.monotonic()
        await followups.stop()
        stopped_in = time.monotonic() - began
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)

        assert stopped_in < 6  # the round may finish (a grace of 5 s), never a 30 s lock wait
        assert await asyncio.to_thread(writable_now, tmp_path / "remindbot.db")
        # Nothing lost, nothing twice: the next round nudges whoever the stopped one had not reached.
        await asyncio.wait_for(FollowUps(runtime).run_once(clock.now), timeout=60)
        assert await count(db, Nudge) == PEOPLE
    finally:
        await db.stop()
