"""Robot lanes across real ``remindbot serve`` processes: SIGKILL mid-burst, instances sharing work.

A fake WeCom server on loopback (its own thread) counts every message that arrives, by content,
and answers "rate limited" like WeCom when a robot gets more than 20 in any window. Bursts are
outbox rows written straight into the database the services use, as a firing would write them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from servehelp import Service, Workspace, wait_until
from sqlalchemy import func
from sqlmodel import select

from bot.delivery import outbox
from bot.platforms.wecom.config import WeComChannel
from storage.db import Database
from storage.models import DeliveryAttempt, Outbox, RobotLane
from tests.fakes import FakePlatforms, FakeRobot

WINDOW = 2.0  # seconds: the rate window of the fake and of the services
LIMIT = 20  # WeCom's limit per window
CONCURRENCY = 16
TAKEOVER_SECONDS = 15.0


@dataclass
class Fake:
    """FakePlatforms served from a thread of its own, so blocking test code never stalls it."""

    robots: list[FakeRobot] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    servers: FakePlatforms = field(default_factory=lambda: FakePlatforms(window=WINDOW))

    def start(self, robots: int) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.servers.start(), self.loop).result(10)
        self.robots = [self.servers.wecom(f"lane-{i:03d}", limit=LIMIT) for i in range(robots)]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.servers.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def arrivals(self) -> list[tuple[float, str, str]]:
        """(time, robot, content) of every accepted message, in arrival order."""
        found = [(r.at, robot.token, r.json["text"]["content"]) for robot in self.robots
                 for r in list(robot.requests) if r.accepted]
        return sorted(found)

    def refused(self) -> int:
        return sum(1 for robot in self.robots for r in list(robot.requests) if not r.accepted)

    def channels(self) -> list[WeComChannel]:
        return [WeComChannel(id=f"lane{i:03d}", name=f"第{i}支部群", platform="wecom",
                             webhook=robot.url, format="text") for i, robot in enumerate(self.robots)]


@pytest.fixture
def fake() -> Iterator[Fake]:
    running = Fake()
    yield running
    running.stop()


def write_channels(workspace: Workspace, channels: list[WeComChannel]) -> None:
    lines = ["channels:"]
    for c in channels:
        lines += [f"  - id: {c.id}", f"    name: {c.name}", "    platform: wecom",
                  f"    webhook: {c.webhook_url()}", "    format: text"]
    workspace.replace("lanes.yaml", "\n".join(lines) + "\n")


async def burst(db: Database, channels: list[WeComChannel], messages: int, tag: str) -> list[str]:
    """Queue ``messages`` texts round-robin over the channels; returns the texts."""
    texts = [f"{tag}-{n:05d}" for n in range(messages)]
    async with db.session() as session:
        for n, text in enumerate(texts):
            channel = channels[n % len(channels)]
            await outbox.enqueue(
                session, dedupe_key=f"{tag}/{n}", channel=channel, platform="wecom",
                bodies=[{"msgtype": "text", "text": {"content": text}}], stage="test", summary=text,
            )
        await session.commit()
    return texts


def env(**extra: str) -> dict[str, str]:
    return {"REMINDBOT_RATE_WINDOW_SECONDS": str(WINDOW), "REMINDBOT_SEND_CONCURRENCY": str(CONCURRENCY),
            **extra}


def start(workspace: Workspace, name: str, **extra: str) -> Service:
    service = Service.start(workspace, name=name, env=env(**extra))
    service.wait_ready()
    return service


async def possible_duplicates(db: Database) -> set[str]:
    """Contents whose audit rows say "可能重复"."""
    async with db.session() as session:
        query = (select(Outbox.summary).join(DeliveryAttempt, DeliveryAttempt.outbox_id == Outbox.id)
                 .where(DeliveryAttempt.possible_duplicate))
        return set((await session.exec(query)).all())


async def all_sent(db: Database, count: int) -> bool:
    async with db.session() as session:
        query = select(func.count()).select_from(Outbox).where(Outbox.status == "sent", Outbox.stage == "test")
        return (await session.exec(query)).one() == count


async def eventually(check: Callable[[], Awaitable[bool]], what: str, bound: float = 20.0) -> None:
    deadline = time.monotonic() + bound
    while not await check():
        assert time.monotonic() < deadline, f"gave up after {bound:.0f} s waiting for: {what}"
        await asyncio.sleep(0.1)


def wait_arrived(fake: Fake, texts: list[str], timeout: float = 120.0) -> None:
    wanted = set(texts)
    wait_until(lambda: wanted <= {c for _, _, c in fake.arrivals()}, f"all {len(wanted)} messages", timeout)


async def test_sigkill_at_three_moments_of_a_burst_loses_nothing_and_repeats_at_most_the_sends_in_flight(
    workspace: Workspace, fake: Fake, tmp_path: Path
) -> None:
    fake.start(robots=200)
    channels = fake.channels()
    write_channels(workspace, channels)
    db = Database(f"sqlite+aiosqlite:///{workspace.database}")
    await db.start()
    services = [start(workspace, "serve-0")]
    try:
        texts = await burst(db, channels, 4000, "kill")
        kills: list[tuple[float, float]] = []  # (killed at, restarted at), epoch seconds
        for moment, at_count in enumerate((600, 1800, 3000), start=1):
            wait_until(lambda n=at_count: len(fake.arrivals()) >= n, f"{at_count} arrivals", 60)
            services[-1].process.kill()
            services[-1].process.wait(10)
            # Taken once the process is gone: a send that arrives between the signal and the death
            # still belongs to this kill (taken before the signal, a loaded machine blamed it on the next).
            killed = restarted = time.time()
            services.append(start(workspace, f"serve-{moment}"))
            kills.append((killed, restarted))
        wait_arrived(fake, texts)
        await eventually(lambda: all_sent(db, 4000), "all 4000 rows marked sent")
        arrived = fake.arrivals()
        counts = Counter(c for _, _, c in arrived)
        assert set(counts) == set(texts)  # nothing lost
        first: dict[str, float] = {}
        for t, _, c in arrived:
            first.setdefault(c, t)
        repeated = {c for c, n in counts.items() if n > 1}
        for number, (killed, restarted) in enumerate(kills):
            # A repeat belongs to the first kill after its first arrival (its send was cut off there).
            earlier = kills[number - 1][0] if number else 0.0
            cut = {c for c in repeated if earlier <= first[c] < killed}
            resumed = min(t for t, _, _ in arrived if t > restarted) - restarted
            print(f"kill: {len(cut)} repeated, sending resumed {resumed:.1f} s after the restart")
            assert len(cut) <= CONCURRENCY, f"{len(cut)} repeated at one kill"
            assert resumed <= TAKEOVER_SECONDS, f"sending resumed {resumed:.1f} s after the restart"
        assert sum(counts.values()) - len(counts) <= 3 * CONCURRENCY
        assert repeated <= await possible_duplicates(db)  # every repeat is recorded as such
        assert fake.refused() == 0
        if repeated:
            _, page = services[-1].get("/admin/outbox", admin=True)
            assert "可能重复" in page
    finally:
        for service in services:
            service.kill()
        await db.stop()


async def sent_by_pid(db: Database, tag: str) -> dict[int, int]:
    """Messages each instance sent (by its process id), from the outbox rows' last owner."""
    async with db.session() as session:
        query = (select(Outbox.lease_owner, func.count()).where(Outbox.status == "sent", Outbox.stage == "test",
                                                                Outbox.summary.startswith(tag))  # type: ignore[attr-defined]
                 .group_by(Outbox.lease_owner))
        return {int(owner.split(":")[1]): n for owner, n in (await session.exec(query)).all() if owner}


async def lanes_by_owner(db: Database) -> dict[str, set[str]]:
    async with db.session() as session:
        query = select(RobotLane.owner, RobotLane.robot).where(RobotLane.owner.is_not(None))  # type: ignore[union-attr]
        rows = (await session.exec(query)).all()
    held: dict[str, set[str]] = {}
    for owner, robot in rows:
        held.setdefault(owner, set()).add(robot)
    return held


async def taken_over(db: Database, robots: set[str], victim: str, killed: float) -> float:
    """Seconds from the kill to the first of the victim's robots' messages stored as sent by another."""
    async with db.session() as session:
        query = select(func.min(Outbox.sent_at)).where(
            Outbox.robot.in_(robots), Outbox.lease_owner != victim,  # type: ignore[attr-defined]
            Outbox.sent_at > datetime.fromtimestamp(killed, UTC))  # type: ignore[operator]
        first = (await session.exec(query)).one()
    assert first is not None, "nobody took over the killed instance's robots"
    return first.timestamp() - killed


@pytest.mark.postgres
@pytest.mark.parametrize("instances", [2, 3])
async def test_instances_share_a_burst_within_each_robots_limit_and_take_over_from_a_killed_one(
    instances: int, pg_db: Database, workspace: Workspace, fake: Fake
) -> None:
    fake.start(robots=50)
    channels = fake.channels()
    write_channels(workspace, channels)
    await pg_db.instance_nonce()
    extra = {"REMINDBOT_DATABASE_URL": pg_db.url, "REMINDBOT_DATABASE_SCHEMA": pg_db.schema or ""}
    services = [Service.start(workspace, name=f"serve-{i}", env=env(**extra)) for i in range(instances)]
    try:
        for service in services:
            service.wait_ready()
        # 1. A burst of 40 messages per robot (two windows' worth) is shared, within every limit.
        shared = await burst(pg_db, channels, 2000, "share")
        wait_arrived(fake, shared, 60)
        await eventually(lambda: all_sent(pg_db, 2000), "2000 rows marked sent")
        shares = await sent_by_pid(pg_db, "share")
        print(f"{instances} instances, share of 2000 messages: {sorted(shares.values(), reverse=True)}")
        assert set(shares) == {s.process.pid for s in services} and all(n > 0 for n in shares.values())
        assert fake.refused() == 0
        assert Counter(c for _, _, c in fake.arrivals()) == Counter(shared)  # each exactly once
        # 2. The next burst starts inside the robots' windows; the busiest instance is killed.
        before = len(fake.arrivals())
        taken = await burst(pg_db, channels, 2000, "takeover")
        wait_until(lambda: len(fake.arrivals()) >= before + 200, "the second burst under way", 30)
        owner, robots = max((await lanes_by_owner(pg_db)).items(), key=lambda item: len(item[1]))
        victim = next(s for s in services if s.process.pid == int(owner.split(":")[1]))
        killed = time.time()
        victim.process.kill()
        victim.process.wait(10)
        wait_arrived(fake, taken, 90)
        arrived = [(t, c) for t, robot, c in fake.arrivals() if c.startswith("takeover")]
        await eventually(lambda: all_sent(pg_db, 4000), "4000 rows marked sent")
        resumed = await taken_over(pg_db, robots, owner, killed)
        counts = Counter(c for _, c in arrived)
        print(f"{instances} instances: the busiest held {len(robots)} lanes; taken over {resumed:.1f} s after "
              f"SIGKILL; {sum(counts.values()) - len(counts)} repeated")
        assert resumed <= TAKEOVER_SECONDS
        assert set(counts) == set(taken) and sum(counts.values()) - len(counts) <= CONCURRENCY
        assert fake.refused() == 0
    finally:
        for service in services:
            service.kill()
