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
from pathlib import Path

import pytest
from servehelp import Service, Workspace, wait_until
from sqlalchemy import func
from sqlmodel import select

from bot import outbox
from bot.platforms.wecom import WeComChannel
from storage.db import Database
from storage.models import DeliveryAttempt, Outbox
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
            killed = time.time()
            services[-1].process.kill()
            services[-1].process.wait(10)
            restarted = time.time()
            services.append(start(workspace, f"serve-{moment}"))
            kills.append((killed, restarted))
        wait_arrived(fake, texts)
        await eventually(lambda: all_sent(db, 4000), "all 4000 rows marked sent")
        arrived = fake.arrivals()
        counts = Counter(c for _, _, c in arrived)
        assert set(counts) == set(texts)  # nothing lost
        for killed, restarted in kills:
            straddling = {c for t, _, c in arrived if t < killed} & {c for t, _, c in arrived if t > restarted}
            resumed = min(t for t, _, _ in arrived if t > restarted) - restarted
            print(f"kill: {len(straddling)} repeated, sending resumed {resumed:.1f} s after the restart")
            assert len(straddling) <= CONCURRENCY, f"{len(straddling)} repeated at one kill"
            assert resumed <= TAKEOVER_SECONDS, f"sending resumed {resumed:.1f} s after the restart"
        repeated = {c for c, n in counts.items() if n > 1}
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
