"""Robot lanes in the database, on SQLite and PostgreSQL: claimed once, shared fairly, taken over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select

from bot.delivery import lanes, outbox
from bot.platforms.wecom.config import WeComChannel
from storage.db import Database

NOW = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
LEASE, STALE = 10.0, 6.0
L = lanes.L


def robot(n: int) -> WeComChannel:
    return WeComChannel(id=f"c{n}", name=f"第{n}支部群", platform="wecom",
                        webhook=f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-{n}")


async def fill(db: Database, robots: int, per_robot: int = 2) -> None:
    async with db.session() as session:
        for n in range(robots * per_robot):
            await outbox.enqueue(session, dedupe_key=f"m{n}", channel=robot(n % robots), platform="wecom",
                                 bodies=[{"msgtype": "text", "text": {"content": str(n)}}], stage="due",
                                 summary="三会一课提醒", now=NOW)
        await session.commit()


async def test_two_instances_claiming_at_once_never_share_a_lane(any_db: Database) -> None:
    await fill(any_db, robots=10)
    for owner in ("A", "B"):
        await lanes.beat(any_db, owner, NOW, NOW)
    (a, _), (b, _) = await asyncio.gather(
        lanes.claim(any_db, "A", NOW, 10, LEASE, STALE), lanes.claim(any_db, "B", NOW, 10, LEASE, STALE))
    assert not set(a) & set(b) and len(set(a) | set(b)) == 10
    rows_a = await lanes.adopt(any_db, "A", list(a), 100)
    assert {r.robot for r in rows_a} == set(a) and len(rows_a) == 2 * len(a)


async def test_each_live_instance_takes_a_fair_share_of_the_robots(any_db: Database) -> None:
    await fill(any_db, robots=9)
    for owner in ("A", "B", "C"):
        await lanes.beat(any_db, owner, NOW, NOW)
    assert await lanes.fair_share(any_db, NOW, STALE) == 3
    await lanes.beat(any_db, "C", NOW - timedelta(seconds=STALE + 1), NOW)  # C went silent
    assert await lanes.fair_share(any_db, NOW, STALE) == 5  # 9 robots over the 2 live ones


async def test_lanes_of_a_silent_instance_are_taken_over_before_their_lease_ends(any_db: Database) -> None:
    await fill(any_db, robots=3)
    await lanes.beat(any_db, "A", NOW, NOW)
    won, _ = await lanes.claim(any_db, "A", NOW, 3, LEASE, STALE)
    (first, *_) = await lanes.adopt(any_db, "A", list(won), 100)
    await lanes.beat(any_db, "B", NOW + timedelta(seconds=3), NOW)
    assert (await lanes.claim(any_db, "B", NOW + timedelta(seconds=3), 3, LEASE, STALE))[0] == {}
    later = NOW + timedelta(seconds=STALE + 1)  # A's heartbeat is stale; its lease still runs
    await lanes.beat(any_db, "B", later, NOW)
    taken, _ = await lanes.claim(any_db, "B", later, 3, LEASE, STALE)
    assert set(taken) == set(won)
    assert len(await lanes.adopt(any_db, "B", list(taken), 100)) == 6
    assert not await outbox.mark_sent(any_db, "A", first.id, later)  # A can no longer mark it
    assert await lanes.renew(any_db, "A", later, LEASE) == set()  # and learns it lost its lanes


async def test_a_lane_let_go_in_a_batch_of_plain_successes_keeps_the_window_it_was_given(any_db: Database) -> None:
    """The writer's one-trip batch also lets lanes go (after their last results): one lane with its
    last success and window in the batch, one with nothing else there (its stored window stays)."""
    await fill(any_db, robots=2)
    won, _, taken = await lanes.take(any_db, "A", NOW, 10, LEASE, STALE, 10)
    assert len(won) == 2 and len(taken) == 4
    first, second = taken[0].robot, taken[1].robot
    writer = outbox.ResultWriter(any_db, "A", asyncio.Lock())

    def sent(row: outbox.Claimed, window: list[float] | None = None) -> asyncio.Future[bool]:
        return writer.submit(outbox.Result(row.id, "sent", NOW, http_status=200, robot=row.robot, window=window))

    try:
        assert all([await f for f in (sent(taken[0], [1.5]), sent(taken[1], [2.5]), sent(taken[3]))])
        last = sent(taken[2], [1.5, 3.5])
        gone = [writer.let_go(first), writer.let_go(second)]  # one batch with the success above
        assert await last and all([await g for g in gone])
    finally:
        await writer.close()
    async with any_db.engine.connect() as conn:
        held = {r.robot: (r.owner, r.lease_until, list(r.recent)) for r in await conn.execute(
            select(L.c.robot, L.c.owner, L.c.lease_until, L.c.recent))}
    assert held == {first: (None, None, [1.5, 3.5]), second: (None, None, [2.5])}
    async with any_db.engine.connect() as conn:
        assert {r.status for r in await conn.execute(select(outbox.T.c.status))} == {"sent"}


async def test_a_first_take_adopts_the_lanes_won_without_looking_for_rows_of_lanes_held_before(
        any_db: Database) -> None:
    """A dispatcher holding no lane (a burst's first claim) takes its lanes and all their rows in one
    update of the outbox: no second look for rows of lanes it held before (on PostgreSQL 5-25 ms
    before the first sends). Holding lanes, rows enqueued for them since are still adopted."""
    await fill(any_db, robots=10)
    await lanes.beat(any_db, "A", NOW, NOW)
    updates: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE OUTBOX"):
            updates.append(statement)

    event.listen(any_db.engine.sync_engine, "before_cursor_execute", count)
    try:
        won, _, rows = await lanes.take(any_db, "A", NOW, 5, LEASE, STALE, 100, held=False)
        assert len(won) == 5 and len(rows) == 10 and {r.robot for r in rows} == set(won)
        assert len(updates) == 1, updates
        await fill_more(any_db, sorted(won)[0])
        updates.clear()
        more, _, later = await lanes.take(any_db, "A", NOW, 0, LEASE, STALE, 100)  # held: the new row adopted
        assert not more and [r.robot for r in later] == [sorted(won)[0]] and len(updates) == 1
    finally:
        event.remove(any_db.engine.sync_engine, "before_cursor_execute", count)


async def fill_more(db: Database, robot_id: str) -> None:
    channel = next(robot(n) for n in range(10) if outbox.robot_key(robot(n)) == robot_id)
    async with db.session() as session:
        await outbox.enqueue(session, dedupe_key="later", channel=channel, platform="wecom",
                             bodies=[{"msgtype": "text", "text": {"content": "later"}}], stage="due",
                             summary="三会一课提醒", now=NOW)
        await session.commit()


async def test_the_running_services_base_url_is_read_from_its_live_heartbeat_only(any_db: Database) -> None:
    """What ``remindbot link`` in another terminal builds links on (trial 12): a service's own, not a
    command's one-off send (no base URL), not a stale or stopped instance's."""
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert await lanes.service_base_url(any_db, now, 30) is None
    await lanes.beat(any_db, "old", now - timedelta(minutes=5), now, "http://127.0.0.1:7000")  # killed long ago
    await lanes.beat(any_db, "burst", now, now)  # `remindbot fire` sending: no base URL of its own
    assert await lanes.service_base_url(any_db, now, 30) is None
    await lanes.beat(any_db, "svc", now - timedelta(seconds=5), now, "http://127.0.0.1:9000")
    assert await lanes.service_base_url(any_db, now, 30) == "http://127.0.0.1:9000"
    await lanes.leave(any_db, "svc")  # a clean stop
    assert await lanes.service_base_url(any_db, now, 30) is None
