"""The benchmarks' database: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path

from storage.db import Database


async def open_db(url: str | None, folder: Path) -> tuple[Database, str | None]:
    """The SQLite file (default) or a fresh schema in the given PostgreSQL database."""
    if not url:
        db = Database(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
        await db.start()
        return db, None
    db = Database(url, schema=f"bench_{uuid.uuid4().hex[:10]}")
    await db.create_schema()
    try:
        await db.start()
    except BaseException:
        await close_db(db, db.schema)
        raise
    return db, db.schema


async def close_db(db: Database, schema: str | None) -> None:
    await db.drop_schema()
    await db.stop()
