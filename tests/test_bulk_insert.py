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
from storage.models import Outbox

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
