"""The outbox on SQLite and PostgreSQL: idempotent enqueue, leases, marking by the owner only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlmodel import select

from bot.delivery import outbox
from bot.platforms.wecom.config import WeComChannel
from storage.db import Database
from storage.models import DeliveryAttempt, Outbox

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
WEBHOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-KEY-123"


def wecom(channel_id: str = "party", webhook: str | None = WEBHOOK) -> WeComChannel:
    return WeComChannel(id=channel_id, name="市直机关党务工作群", platform="wecom", webhook=webhook)


async def put(db: Database, key: str, parts: int = 1, channel: WeComChannel | None = None) -> int:
    async with db.session() as session:
        created = await outbox.enqueue(
            session,
            dedupe_key=key,
            channel=channel or wecom(),
            platform="wecom",
            bodies=[{"msgtype": "text", "text": {"content": f"{key} {i}"}} for i in range(parts)],
            stage="due",
            summary="三会一课提醒",
            now=NOW,
        )
        await session.commit()
    return created


async def rows(db: Database) -> list[Outbox]:
    async with db.session() as session:
        return list((await session.exec(select(Outbox).order_by(Outbox.id))).all())


async def attempts(db: Database) -> list[DeliveryAttempt]:
    async with db.session() as session:
        return list((await session.exec(select(DeliveryAttempt))).all())


async def test_enqueue_writes_one_row_per_body_with_numbered_keys(any_db: Database) -> None:
    assert await put(any_db, "occ1/due/party", parts=2) == 2
    assert [r.dedupe_key for r in await rows(any_db)] == ["occ1/due/party#1", "occ1/due/party#2"]


async def test_enqueuing_the_same_message_twice_stores_it_once(any_db: Database) -> None:
    assert await put(any_db, "occ1/due/party") == 1
    assert await put(any_db, "occ1/due/party") == 0
    assert len(await rows(any_db)) == 1


async def test_robot_key_is_a_hash_never_the_webhook(any_db: Database) -> None:
    await put(any_db, "a")
    (row,) = await rows(any_db)
    assert "SECRET" not in row.robot and "qyapi" not in row.robot
    assert row.robot == outbox.robot_key(wecom("other-id"))  # same webhook, same robot


def test_channel_without_webhook_gets_a_dry_run_robot_key() -> None:
    assert outbox.robot_key(wecom(webhook=None)) == "dry:party"


async def test_claim_leases_due_rows_oldest_first(any_db: Database) -> None:
    for key in ("a", "b", "c"):
        await put(any_db, key)
    claimed = await outbox.claim(any_db, "w1", 2, NOW)
    assert [r.dedupe_key for r in claimed] == ["a#1", "b#1"]
    assert all(r.lease_owner == "w1" for r in claimed)
    leased = [r for r in await rows(any_db) if r.dedupe_key in ("a#1", "b#1")]
    assert all(r.lease_until is not None and r.lease_until > NOW for r in leased)


async def test_second_claimer_does_not_take_a_leased_row(any_db: Database) -> None:
    await put(any_db, "a")
    assert len(await outbox.claim(any_db, "w1", 10, NOW)) == 1
    assert await outbox.claim(any_db, "w2", 10, NOW + timedelta(seconds=30)) == []


async def test_expired_lease_is_taken_over(any_db: Database) -> None:
    await put(any_db, "a")
    await outbox.claim(any_db, "w1", 10, NOW, lease_seconds=60)
    later = NOW + timedelta(seconds=61)
    (row,) = await outbox.claim(any_db, "w2", 10, later)
    assert row.lease_owner == "w2"


async def test_stale_worker_cannot_mark_a_row_taken_over(any_db: Database) -> None:
    await put(any_db, "a")
    (row,) = await outbox.claim(any_db, "w1", 10, NOW, lease_seconds=60)
    await outbox.claim(any_db, "w2", 10, NOW + timedelta(seconds=61))
    assert not await outbox.mark_sent(any_db, "w1", row.id or 0, NOW)
    assert (await rows(any_db))[0].status == "pending"
    assert await outbox.mark_sent(any_db, "w2", row.id or 0, NOW)
    assert (await rows(any_db))[0].status == "sent"


async def test_every_mark_leaves_an_attempt_row(any_db: Database) -> None:
    for key in ("a", "b", "c", "d"):
        await put(any_db, key)
    a, b, c, d = await outbox.claim(any_db, "w1", 10, NOW)
    retry_at = NOW + timedelta(minutes=1)
    assert await outbox.mark_sent(any_db, "w1", a.id or 0, NOW, http_status=200)
    assert await outbox.mark_retry(any_db, "w1", b.id or 0, NOW, retry_at, "系统繁忙")
    assert await outbox.mark_dead(any_db, "w1", c.id or 0, NOW, "Webhook 地址无效", "config")
    assert await outbox.mark_dry_run(any_db, "w1", d.id or 0, NOW)
    by_id = {r.id: r for r in await rows(any_db)}
    assert [by_id[r.id].status for r in (a, b, c, d)] == ["sent", "pending", "dead", "dry_run"]
    assert by_id[b.id].next_attempt_at == retry_at and by_id[b.id].last_error == "系统繁忙"
    assert by_id[c.id].error_kind == "config"
    assert sorted((t.outbox_id, t.ok) for t in await attempts(any_db)) == [
        (a.id, True), (b.id, False), (c.id, False), (d.id, False)
    ]


async def test_later_messages_of_a_robot_wait_behind_one_waiting_to_retry(any_db: Database) -> None:
    await put(any_db, "first")
    await put(any_db, "second")
    await put(any_db, "elsewhere", channel=wecom("other", WEBHOOK.replace("123", "456")))
    first, _, _ = await outbox.claim(any_db, "w1", 1, NOW) + [None, None]  # type: ignore[list-item]
    await outbox.mark_retry(any_db, "w1", first.id or 0, NOW, NOW + timedelta(minutes=5), "繁忙")
    await outbox.release(any_db, "w1")  # as after a restart
    (other,) = await outbox.claim(any_db, "w2", 10, NOW + timedelta(minutes=1))
    assert other.dedupe_key == "elsewhere#1"
    await outbox.mark_sent(any_db, "w2", other.id or 0, NOW + timedelta(minutes=1))
    claimed = await outbox.claim(any_db, "w2", 10, NOW + timedelta(minutes=6))
    assert [r.dedupe_key for r in claimed] == ["first#1", "second#1"]


async def test_batch_results_are_all_written(any_db: Database) -> None:
    for i in range(50):
        await put(any_db, f"m{i}")
    claimed = await outbox.claim(any_db, "w1", 100, NOW)
    results = [outbox.Result(r.id or 0, "sent", NOW, http_status=200) for r in claimed]
    assert await outbox.record(any_db, "w1", results) == {r.id for r in claimed}
    assert await outbox.counts(any_db) == {"sent": 50}
    assert len(await attempts(any_db)) == 50


async def test_two_workers_claiming_at_once_never_share_a_row(any_db: Database) -> None:
    for i in range(40):
        await put(any_db, f"m{i}")
    first, second = await asyncio.gather(
        outbox.claim(any_db, "w1", 25, NOW), outbox.claim(any_db, "w2", 25, NOW)
    )
    assert not {r.id for r in first} & {r.id for r in second}
    assert all(r.lease_owner == "w1" for r in first) and all(r.lease_owner == "w2" for r in second)


async def test_the_writers_one_trip_batches_write_what_record_writes_and_only_for_the_lease_owner(
    any_db: Database,
) -> None:
    """The dispatcher's writer (one statement on PostgreSQL, one hand-over to SQLite's thread)
    leaves the rows an admin reads exactly as ``record`` does: sent, its time, one attempt each."""
    for i in range(6):
        await put(any_db, f"m{i}")
    mine = await outbox.claim(any_db, "w1", 4, NOW)
    theirs = await outbox.claim(any_db, "w2", 10, NOW)
    writer = outbox.ResultWriter(any_db, "w1", asyncio.Lock())
    try:
        at = NOW + timedelta(seconds=1.5)
        marks = [writer.begin(r.id, at) for r in mine[2:] + theirs[:1]]
        sent = [writer.submit(outbox.Result(r.id, "sent", at, http_status=200)) for r in mine[:2] + theirs[1:2]]
        assert [await f for f in marks] == [True, True, False]  # not ours: left alone
        assert [await f for f in sent] == [True, True, False]
    finally:
        await writer.close()
    by_key = {r.dedupe_key: r for r in await rows(any_db)}
    for r in mine[:2]:
        row = by_key[r.dedupe_key]
        assert (row.status, row.sent_at, row.attempts, row.sending_since) == ("sent", at, 1, None)
    for r in mine[2:]:
        assert (by_key[r.dedupe_key].status, by_key[r.dedupe_key].sending_since) == ("pending", at)
    assert all(by_key[r.dedupe_key].status == "pending" and by_key[r.dedupe_key].sending_since is None for r in theirs)
    written = await attempts(any_db)
    assert sorted(a.outbox_id for a in written) == sorted(r.id for r in mine[:2])
    assert {(a.ok, a.attempt, a.http_status, a.at, a.possible_duplicate) for a in written} == {(True, 1, 200, at, 0)}


async def test_in_flight_marks_find_their_rows_by_primary_key_not_through_the_status_index(db: Database) -> None:
    """A mark names its rows by id and checks they are still pending; written ``status = 'pending'``,
    SQLite read them through ix_outbox_due (every pending row of the table) as soon as a batch marked
    five rows or more: most of the dispatcher's database time in bench/dispatch.py."""
    for i in range(40):
        await put(db, f"m{i}")
    ids = [r.id for r in await outbox.claim(db, "w1", 16, NOW)]
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "sending_since" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        assert await outbox.record(db, "w1", [], sending=ids, now=NOW) == set(ids)  # the writer's other path
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    statements = [(outbox._sqlite_mark(len(ids)), (None,) * (len(ids) + 2)), *seen]
    assert len(statements) == 2
    async with db.engine.connect() as conn:
        for sql, params in statements:
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(params))).all()
            assert [step[-1] for step in plan] == ["SEARCH outbox USING INTEGER PRIMARY KEY (rowid=?)"], sql
