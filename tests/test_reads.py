"""storage/reads.py: one SQL text, read the same through sqlite3 (read-only) and SQLAlchemy, on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from storage import reads
from storage.db import Database
from storage.models import Occurrence

T = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)


async def _occurrences(db: Database) -> None:
    fired = datetime(2026, 12, 1, 2, 3, 4, 567890, tzinfo=UTC)
    async with db.session() as session:
        session.add_all([
            Occurrence(reminder_id="a", due_at=T, title="a", fired_at=fired, fired_by="zhangsan"),  # fired ahead
            Occurrence(reminder_id="b", due_at=T, title="b"),  # not fired yet
            Occurrence(reminder_id="a", due_at=T, title="a", fired_at=fired, dry_run=True),  # a rehearsal
            Occurrence(reminder_id="c", due_at=datetime(2026, 12, 5, tzinfo=UTC), title="c", fired_at=fired),  # at end
            Occurrence(reminder_id="d", due_at=datetime(2026, 12, 3, 23, 59, 59, 999999, tzinfo=UTC), title="d",
                       fired_at=fired),  # the last microsecond before the start
        ])
        await session.commit()


async def test_fired_ahead_reads_the_same_through_sqlalchemy_on_both_databases(any_db: Database) -> None:
    await _occurrences(any_db)
    start, end = datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC)
    async with reads.engine_reader(any_db.engine) as reader:
        found = await reads.fired_ahead(reader, start, end, 10)
    assert found == {("a", T): reads.FiredAhead(datetime(2026, 12, 1, 2, 3, 4, 567890, tzinfo=UTC), "zhangsan")}


async def test_fired_ahead_reads_a_sqlite_file_read_only_as_sqlalchemy_does(db: Database, tmp_path: Path) -> None:
    await _occurrences(db)
    start, end = datetime(2026, 12, 3, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 12, 5, 0, 0, 0, 1, tzinfo=UTC)
    path = reads.sqlite_file(db.url)
    assert path is not None and path.is_file()
    async with reads.sqlite_reader(path) as plain, reads.engine_reader(db.engine) as engine:
        found = await reads.fired_ahead(plain, start, end, 10)
        assert found == await reads.fired_ahead(engine, start, end, 10)
    assert sorted(r for r, _ in found) == ["a", "c", "d"]
    missing = tmp_path / "none.db"
    with pytest.raises(Exception, match="unable to open"):  # read-only: never created
        async with reads.sqlite_reader(missing) as reader:
            await reads.fired_ahead(reader, start, end, 10)
    assert not missing.exists()


def test_the_read_path_binds_dates_and_times_as_sqlite_keeps_them_and_leaves_them_to_postgresql() -> None:
    # One binder for reads and the firing path's writes (it was storage.writes.writer_bound for dates).
    params = {"day": date(2026, 12, 1), "at": datetime(2026, 12, 1, 1, 2, 3, tzinfo=UTC), "ids": [1, 2]}
    sql, values = reads.bound("SELECT :day, :at WHERE id IN (:ids)", params, "sqlite")
    assert sql == "SELECT :day, :at WHERE id IN (:ids_0, :ids_1)"
    assert values == {"day": "2026-12-01", "at": "2026-12-01 01:02:03.000000", "ids_0": 1, "ids_1": 2}
    assert reads.bound("SELECT :day", {"day": params["day"]}, "postgresql")[1] == {"day": date(2026, 12, 1)}
