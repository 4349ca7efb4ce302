"""The embedded database's file: people's names, mobiles and notes, so its owner's alone."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from storage.db import Database


async def test_a_new_sqlite_database_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    # Trial 7: var/remindbot.db was 0644 (anyone on the machine could read it) while var/secret_key is 0600.
    old = os.umask(0o022)
    try:
        path = tmp_path / "var" / "remindbot.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        await db.start()
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text("SELECT count(*) FROM outbox"))
            modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
        finally:
            await db.stop()
    finally:
        os.umask(old)
    assert modes["remindbot.db"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes  # -wal and -shm follow the file


async def test_an_existing_database_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first = Database(f"sqlite+aiosqlite:///{path}")
    await first.start()
    await first.stop()
    path.chmod(0o640)  # e.g. readable by a backup group, on purpose
    again = Database(f"sqlite+aiosqlite:///{path}")
    await again.start()
    await again.stop()
    assert path.stat().st_mode & 0o777 == 0o640
