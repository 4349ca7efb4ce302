"""Robot lanes and instance heartbeats: which instance sends which robot's messages.

A robot's lane (``robot_lane``) is held by one instance at a time. An instance claims free lanes
with one ``UPDATE … WHERE the lane is free RETURNING``, which succeeds once whoever runs it at the
same time; then it adopts the lane's pending rows (``outbox.lease_owner``), sends them in order
under the robot's rate limit and lets go when they are done. A lane is free when nobody holds it,
its lease (``lease_until``, renewed at every heartbeat) has run out, or its owner's heartbeat is
stale: a killed instance's lanes are taken over after ``heartbeat_stale_seconds``, not after a
long lease. ``recent`` keeps the robot's last send times (epoch seconds) so its rate window holds
across owners, batches and restarts.

Instances share robots evenly: each takes at most its fair share, the robots with pending
messages divided by the live instances (rounded up).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.delivery.outbox import _CLAIMED, PENDING, Claimed
from storage.db import Database, dialect_insert
from storage.models import InstanceHeartbeat, Outbox, RobotLane

T = Outbox.__table__  # type: ignore[attr-defined]
L = RobotLane.__table__  # type: ignore[attr-defined]
H = InstanceHeartbeat.__table__  # type: ignore[attr-defined]


def instance_id() -> str:
    """A new id at every start: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _insert(conn: AsyncConnection) -> Any:
    return dialect_insert(conn.dialect.name)


def _live(now: datetime, stale_seconds: float) -> Any:
    """Ids of instances that beat within ``stale_seconds`` (a subquery)."""
    return select(H.c.id).where(H.c.beat_at >= now - timedelta(seconds=stale_seconds))


def _free(now: datetime, stale_seconds: float) -> Any:
    """A lane nobody holds, whose lease ran out, or whose owner stopped beating."""
    return or_(
        L.c.owner.is_(None),
        L.c.lease_until.is_(None),
        L.c.lease_until < now,
        L.c.owner.not_in(_live(now, stale_seconds)),
    )


async def beat(db: Database, owner: str, now: datetime, started_at: datetime, base_url: str | None = None) -> None:
    """Record that ``owner`` is alive at ``now`` (UTC); creates its row on the first beat.

    ``base_url``: the service's REMINDBOT_BASE_URL, kept in the row for :func:`service_base_url`.
    Rows of instances silent for a day (killed, never stopped cleanly) are removed on the way.
    """
    async with db.engine.begin() as conn:
        values = {"id": owner, "host": socket.gethostname(), "pid": os.getpid(),
                  "started_at": started_at, "beat_at": now, "base_url": base_url}
        stmt = _insert(conn)(H).values(values)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"beat_at": now}))
        await conn.execute(delete(H).where(H.c.beat_at < now - timedelta(days=1)))


async def service_base_url(db: Database, now: datetime, stale_seconds: float) -> str | None:
    """The base URL of the running service that beat last, or None when none runs (a clean stop
    removes its row; a killed one's goes stale)."""
    stmt = (select(H.c.base_url).where(H.c.base_url.is_not(None), H.c.beat_at >= now - timedelta(seconds=stale_seconds))
            .order_by(H.c.beat_at.desc()).limit(1))
    async with db.engine.connect() as conn:
        return await conn.scalar(stmt)


async def renew(db: Database, owner: str, now: datetime, lease_seconds: float) -> set[str]:
    """Extend the owner's lane leases; returns the lanes it still holds (others were taken over)."""
    stmt = (
        update(L).where(L.c.owner == owner)
        .values(lease_until=now + timedelta(seconds=lease_seconds)).returning(L.c.robot)
    )
    async with db.engine.begin() as conn:
        return {row.robot for row in await conn.execute(stmt)}


async def fair_share(db: Database, now: datetime, stale_seconds: float) -> int:
    """Robots with pending messages divided by live instances, rounded up (at least 1)."""
    async with db.engine.connect() as conn:
        live = await conn.scalar(select(func.count()).select_from(_live(now, stale_seconds).subquery()))
        active = await conn.scalar(select(func.count(func.distinct(T.c.robot))).where(T.c.status == PENDING))
    return max(1, math.ceil((active or 0) / max(1, live or 0)))


def _ready(now: datetime) -> Any:
    """Robots with a due pending row and none waiting for a retry (their order must hold)."""
    waiting = select(T.c.robot).where(T.c.status == PENDING, T.c.next_attempt_at > now)
    return and_(T.c.status == PENDING, T.c.next_attempt_at <= now, not_(T.c.robot.in_(waiting)))


def _claimable(now: datetime, stale_seconds: float) -> Any:
    """Due, ready rows of lanes nobody else holds (what :func:`claim` would take)."""
    held = select(L.c.robot).where(not_(_free(now, stale_seconds)))
    return and_(_ready(now), not_(T.c.robot.in_(held)))


async def claimable(db: Database, now: datetime, stale_seconds: float) -> bool:
    """Whether :func:`claim` would find a lane now. Read-only: no write lock, no transaction to
    commit, so a burst can ask it while its last results are being written."""
    async with db.engine.connect() as conn:
        return await conn.scalar(select(T.c.id).where(_claimable(now, stale_seconds)).limit(1)) is not None


async def claim(
    db: Database, owner: str, now: datetime, want: int, lease_seconds: float, stale_seconds: float
) -> tuple[dict[str, list[float]], bool]:
    """Claim up to ``want`` free lanes with due messages, oldest message first.

    Returns ({robot: its recent send times}, whether free ready lanes remain unclaimed).
    """
    if want <= 0:
        return {}, True
    async with db.engine.begin() as conn:
        return await _claim_on(conn, owner, now, want, lease_seconds, stale_seconds)


async def _claim_on(
    conn: AsyncConnection, owner: str, now: datetime, want: int, lease_seconds: float, stale_seconds: float
) -> tuple[dict[str, list[float]], bool]:
    first = func.min(T.c.id)
    candidates = (
        select(T.c.robot).where(_claimable(now, stale_seconds))
        .group_by(T.c.robot).order_by(first).limit(want + 1)
    )
    robots = [row.robot for row in await conn.execute(candidates)]
    more = len(robots) > want
    robots = sorted(robots[:want])  # one lock order for every instance (no deadlock)
    if not robots:
        return {}, False
    # One statement for every lane (an executemany): compiled once and cached, where a VALUES list of
    # as many rows as lanes was compiled anew at every claim (~1.5 µs a message at 500 lanes).
    await conn.execute(
        _insert(conn)(L).on_conflict_do_nothing(index_elements=["robot"]),
        [{"robot": r, "recent": []} for r in robots],
    )
    stmt = (
        update(L).where(L.c.robot.in_(robots), _free(now, stale_seconds))
        .values(owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
        .returning(L.c.robot, L.c.recent)
    )
    won = {row.robot: list(row.recent or []) for row in await conn.execute(stmt)}
    return won, more


async def take(
    db: Database, owner: str, now: datetime, want: int, lease_seconds: float, stale_seconds: float,
    room: int, mark: Callable[[list[Claimed], dict[str, list[float]]], Sequence[int]] | None = None,
    held: bool = True,
) -> tuple[dict[str, list[float]], bool, list[Claimed]]:
    """:func:`claim` then :func:`adopt` in one transaction (one commit before the first sends);
    ``mark`` also gets the lanes won with their stored send times. Returns (won, more, rows).
    ``held=False``: the owner holds no lane from before, so only the lanes just won have rows to adopt."""
    async with db.engine.begin() as conn:
        won, more = await _claim_on(conn, owner, now, want, lease_seconds, stale_seconds) if want > 0 else ({}, True)
        chosen = (lambda rows: mark(rows, won)) if mark is not None else None
        rows = await _adopt_on(conn, owner, list(won), room if held else 0, chosen, now)
    return won, more, rows


async def adopt(
    db: Database, owner: str, new: Sequence[str], room: int,
    mark: Callable[[list[Claimed]], Sequence[int]] | None = None, at: datetime | None = None,
) -> list[Claimed]:
    """The pending rows of the owner's lanes, oldest first, leased to it.

    Rows of lanes just claimed (``new``) are all taken, whoever held them before; for lanes held
    longer only rows enqueued since (not yet the owner's), at most ``room`` of them. ``mark``
    picks, among the new lanes' rows (oldest first), those to mark in flight (``sending_since`` =
    ``at``) in the same transaction: the sends their windows let go at once wait for no other
    commit. Their ``maybe_sent`` is read before, so it still says whether an earlier send died.
    """
    async with db.engine.begin() as conn:
        return await _adopt_on(conn, owner, new, room, mark, at)


async def _adopt_on(
    conn: AsyncConnection, owner: str, new: Sequence[str], room: int,
    mark: Callable[[list[Claimed]], Sequence[int]] | None, at: datetime | None,
) -> list[Claimed]:
    mine = select(L.c.robot).where(L.c.owner == owner)
    older = and_(T.c.robot.in_(mine), or_(T.c.lease_owner.is_(None), T.c.lease_owner != owner))
    taken: list[Claimed] = []
    if new:
        stmt = (
            update(T).where(T.c.robot.in_(list(new)), T.c.status == PENDING)
            .values(lease_owner=owner).returning(*_CLAIMED)
        )
        taken += [Claimed(*row) for row in await conn.execute(stmt)]
        ids = list(mark(sorted(taken, key=lambda row: row.id))) if mark is not None and taken else []
        if ids:
            await conn.execute(
                update(T).where(T.c.id.in_(ids), T.c.lease_owner == owner).values(sending_since=at))
    if room > len(taken):
        ids = (
            select(T.c.id).where(T.c.status == PENDING, older)
            .order_by(T.c.id).limit(room - len(taken))
            .with_for_update(skip_locked=True)
        )
        stmt = update(T).where(T.c.id.in_(ids)).values(lease_owner=owner).returning(*_CLAIMED)
        taken += [Claimed(*row) for row in await conn.execute(stmt)]
    return sorted(taken, key=lambda row: row.id)


async def leave(db: Database, owner: str) -> int:
    """At a clean stop: let go of every lane and pending row, and remove the heartbeat.

    Rows whose send was cut off keep their in-flight mark (``sending_since``), so their re-send
    is recorded as a possible duplicate. Returns how many pending rows were given back.
    """
    async with db.engine.begin() as conn:
        await conn.execute(update(L).where(L.c.owner == owner).values(owner=None, lease_until=None))
        mine = and_(T.c.lease_owner == owner, T.c.status == PENDING)
        result = await conn.execute(update(T).where(mine).values(lease_owner=None, lease_until=None))
        await conn.execute(delete(H).where(H.c.id == owner))
    return result.rowcount or 0
