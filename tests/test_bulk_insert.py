"""Set-based outbox writes (one ``unnest`` statement on PostgreSQL, multi-row VALUES on SQLite).

A fire writes thousands of rows in one statement; these tests pin what a user relies on: the rows
belong to the fire's transaction (a fire that fails writes nothing, so nothing half-sends), a
message already queued is never queued twice, and what is read back is what was written.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from bot.delivery import outbox
from bot.platforms.wecom.config import WeComChannel
from storage.db import Database
from storage.models import Expectation, Occurrence, Outbox

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
PARTY = WeComChannel(id="party", name="市直机关党务工作群", platform="wecom",
                     webhook="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K")


def rows_for(*keys: str) -> list[dict[str, object]]:
    made: list[dict[str, object]] = []
    for key in keys:
        body = {"msgtype": "markdown", "markdown": {"content": f"**{key}** 请确认 \"引号\" \\"}}
        made += outbox.outbox_rows(dedupe_key=key, channel=PARTY, platform="wecom", bodies=[body],
                                   occurrence_id=None, stage="due", summary=f"学习日·{key}", now=NOW, dry_run=False)
    return made


async def stored(db: Database) -> list[Outbox]:
    async with db.session() as session:
        return list((await session.exec(select(Outbox).order_by(Outbox.dedupe_key))).all())


async def test_bulk_rows_roll_back_with_the_transaction_that_wrote_them(any_db: Database) -> None:
    async with any_db.session() as session:  # the insert is the transaction's first statement
        assert len(await outbox.insert_rows(session, rows_for(*(f"p{i:04d}" for i in range(1500))))) == 1500
        await session.rollback()
    assert await stored(any_db) == []


async def test_bulk_rows_already_queued_are_skipped_and_read_back_as_written(any_db: Database) -> None:
    async with any_db.session() as session:
        assert await outbox.insert_rows(session, rows_for("a", "b")) == {"a#1", "b#1"}
        await session.commit()
    async with any_db.session() as session:
        assert await outbox.insert_rows(session, rows_for("b", "c")) == {"c#1"}
        await session.commit()
    got = await stored(any_db)
    assert [r.dedupe_key for r in got] == ["a#1", "b#1", "c#1"]
    assert got[2].body == {"msgtype": "markdown", "markdown": {"content": "**c** 请确认 \"引号\" \\"}}
    assert got[2].summary == "学习日·c" and got[2].status == "pending" and got[2].robot == outbox.robot_key(PARTY)
    assert got[2].next_attempt_at == NOW and got[2].created_at == NOW


async def test_rows_given_a_column_at_a_time_are_written_as_the_same_rows_given_one_by_one(any_db: Database) -> None:
    # Expectations are written a column at a time (values every row shares given once); what is
    # stored must be what the same rows given as dicts store, on both paths (set-based and SQLAlchemy's).
    table = Expectation.__table__  # type: ignore[attr-defined]
    leaders = ["lead_a"]
    columns = outbox.Columns(
        each={"person_id": [f"p{i}" for i in range(1200)], "person_name": [f"人{i}" for i in range(1200)],
              "leader_ids": [leaders if i % 2 else [] for i in range(1200)]},
        same={"next_followup_at": NOW, "followups": 0, "escalations": 0, "unit_id": None, "unit_name": None})
    assert len(columns) == 1200 and columns.rows()[1] == {
        "person_id": "p1", "person_name": "人1", "leader_ids": ["lead_a"], "next_followup_at": NOW,
        "followups": 0, "escalations": 0, "unit_id": None, "unit_name": None}
    async with any_db.session() as session:
        first = Occurrence(reminder_id="study", due_at=NOW, title="学习日")
        second = Occurrence(reminder_id="study", due_at=NOW.replace(day=4), title="学习日")
        session.add_all([first, second])
        await session.commit()
        by_columns = outbox.Columns(columns.each, columns.same | {"occurrence_id": first.id})
        by_rows = [row | {"occurrence_id": second.id} for row in columns.rows()]
        conflict = ["occurrence_id", "person_id"]
        assert len(await outbox.insert_ignoring(session, table, by_columns, conflict, table.c.id)) == 1200
        assert len(await outbox.insert_ignoring(session, table, by_rows, conflict, table.c.id)) == 1200
        # without a column that has a Python-side default: SQLAlchemy's own executemany path
        partial = outbox.Columns({"person_id": ["late"], "person_name": ["迟到"]},
                                 {"occurrence_id": first.id, "leader_ids": []})  # followups: its default
        assert len(await outbox.insert_ignoring(session, table, partial, conflict, table.c.id)) == 1
        assert await outbox.insert_ignoring(session, table, by_columns, conflict, table.c.id) == set()  # once
        await session.commit()
    async with any_db.session() as session:
        got = (await session.exec(select(Expectation).order_by(Expectation.id))).all()
    written = {occ: [(e.person_id, e.person_name, e.leader_ids, e.next_followup_at, e.followups, e.unit_id)
                     for e in got if e.occurrence_id == occ and e.person_id != "late"]
               for occ in (first.id, second.id)}
    assert written[first.id] == written[second.id] and len(written[first.id]) == 1200
    assert written[first.id][1] == ("p1", "人1", ["lead_a"], NOW, 0, None)
    (late,) = [e for e in got if e.person_id == "late"]
    assert (late.leader_ids, late.followups) == ([], 0)


async def test_rows_written_without_returning_anything_are_written_all_the_same(any_db: Database) -> None:
    # A fire on SQLite reads back nothing of its 20,000 expectations (returning=None), on every path.
    table = Expectation.__table__  # type: ignore[attr-defined]
    conflict = ["occurrence_id", "person_id"]
    async with any_db.session() as session:
        occ = Occurrence(reminder_id="study", due_at=NOW, title="学习日")
        session.add(occ)
        await session.commit()
        columns = outbox.Columns({"person_id": ["a", "b"], "person_name": ["甲", "乙"]},
                                 {"occurrence_id": occ.id, "leader_ids": [], "followups": 0, "escalations": 0})
        assert await outbox.insert_ignoring(session, table, columns, conflict, None) == set()
        partial = outbox.Columns({"person_id": ["a", "c"], "person_name": ["甲", "丙"]},
                                 {"occurrence_id": occ.id, "leader_ids": []})  # SQLAlchemy's own path
        assert await outbox.insert_ignoring(session, table, partial, conflict, None) == set()
        await session.commit()
    async with any_db.session() as session:
        got = (await session.exec(select(Expectation.person_id).order_by(Expectation.id))).all()
    assert got == ["a", "b", "c"]
