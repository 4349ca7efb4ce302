"""The pool's check before each use (storage/db.py, ``_ping_in_one_trip``): a connection the server
dropped is replaced, never handed to a request."""

from __future__ import annotations

from sqlalchemy import text

from storage.db import Database


async def test_a_connection_the_server_dropped_is_replaced_before_use(pg_db: Database) -> None:
    async with pg_db.engine.connect() as conn:
        dropped = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
    other = Database(pg_db.url)
    try:
        async with other.engine.begin() as conn:
            await conn.execute(text(f"SELECT pg_terminate_backend({int(dropped)})"))
    finally:
        await other.stop()
    for engine in (pg_db.engine, pg_db.autocommit):
        async with engine.connect() as conn:
            now = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert now != dropped


async def test_the_check_leaves_no_transaction_open(pg_db: Database) -> None:
    async with pg_db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None and not raw.driver_connection.is_in_transaction()
