"""The dispatcher, end to end: outbox rows -> real WeCom adapter -> a fake WeCom server on loopback.

The fake checks what WeCom checks (the robot key, a JSON body with a msgtype, 20 messages in any
window per robot, counted strictly, failures included) and can be told to fail or stall.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlmodel import select

from bot.delivery import outbox
from bot.delivery.dispatch import Dispatcher
from bot.platforms.base import ChannelBase, Message
from bot.platforms.registry import platform_for
from bot.platforms.wecom.config import WeComChannel
from bot.platforms.wecom.robot import WeCom
from bot.settings import Settings
from storage.db import Database
from storage.models import DeliveryAttempt, Outbox
from tests.fakes.platforms import FakePlatforms

Answer = tuple[int, dict[str, str], dict[str, Any]]  # HTTP status, headers, JSON
OK: Answer = (200, {}, {"errcode": 0, "errmsg": "ok"})


@dataclass
class FakeWeCom:
    """WeCom's group-robot endpoint: ``POST /cgi-bin/webhook/send?key=...``."""

    limit: int = 20
    window: float = 60.0
    keys: set[str] = field(default_factory=set)
    hits: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    script: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    gates: dict[str, asyncio.Event] = field(default_factory=dict)  # key -> answer when set
    refused: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        key, arrived = request.query.get("key", ""), time.monotonic()
        if key not in self.keys:
            return self._json(200, {}, {"errcode": 93000, "errmsg": f"invalid webhook url, key={key}"})
        body = await request.json()
        if "msgtype" not in body:
            return self._json(200, {}, {"errcode": 40008, "errmsg": "invalid message type"})
        recent = [t for k, _, t in self.hits if k == key and t > arrived - self.window]
        self.hits.append((key, body, arrived))
        if key in self.gates:
            await self.gates[key].wait()
        if len(recent) >= self.limit:
            self.refused += 1
            return self._json(200, {}, {"errcode": 45009, "errmsg": "api freq out of limit"})
        return self._json(*(self.script[key].popleft() if self.script[key] else OK))

    @staticmethod
    def _json(status: int, headers: dict[str, str], data: dict[str, Any]) -> web.Response:
        return web.json_response(data, status=status, headers=headers)

    def channel(self, name: str, channel_id: str | None = None) -> WeComChannel:
        key = f"KEY-{name}-S3CRET"
        self.keys.add(key)
        return WeComChannel(
            id=channel_id or name, name=f"{name}党支部群", platform="wecom",
            webhook=f"{self.url}?key={key}", format="text",
        )

    def texts(self, name: str) -> list[str]:
        return [b["text"]["content"] for k, b, _ in self.hits if k == f"KEY-{name}-S3CRET"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    fake = FakeWeCom()
    app = web.Application()
    app.router.add_post("/cgi-bin/webhook/send", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/cgi-bin/webhook/send"))
    yield fake
    for gate in fake.gates.values():
        gate.set()
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        rate_window_seconds=60.0, max_attempts=3, send_timeout_seconds=5.0, var_dir=tmp_path
    )


async def enqueue(db: Database, channel: WeComChannel, *texts: str) -> None:
    async with db.session() as session:
        for text in texts:
            bodies = WeCom().build(channel, Message(title="提醒", markdown=text))
            await outbox.enqueue(
                session, dedupe_key=f"{channel.id}/{text}", channel=channel, platform="wecom",
                bodies=bodies, stage="due", summary=f"提醒：{text}",
            )
        await session.commit()


def dispatcher(
    db: Database,
    settings: Settings,
    http: aiohttp.ClientSession,
    *channels: WeComChannel,
    admin: str | None = None,
    backoff: float = 0.01,
) -> Dispatcher:
    by_id = {c.id: c for c in channels}
    return Dispatcher(
        db, settings, by_id.get, http, admin_channel=lambda: admin, backoff_base=backoff
    )


async def rows(db: Database) -> list[Outbox]:
    async with db.session() as session:
        return list((await session.exec(select(Outbox).order_by(Outbox.id))).all())


async def attempts(db: Database) -> list[DeliveryAttempt]:
    async with db.session() as session:
        query = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
        return list((await session.exec(query)).all())


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most 10 s) for a condition on the dispatcher's counters, which have no event."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """What the service logged (the fake server's own access log shows the key, as WeCom's would)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))


def body_text(n: int) -> str:
    return f"第{n:02d}条"


async def test_burst_is_paced_within_the_robot_limit_and_all_arrive_in_order(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    fake.window = settings.rate_window_seconds = 1.0
    robot = fake.channel("a")
    await enqueue(db, robot, *[body_text(n) for n in range(25)])
    await dispatcher(db, settings, http, robot).run_once()
    assert fake.refused == 0
    assert fake.texts("a") == [f"【提醒】\n\n{body_text(n)}" for n in range(25)]
    assert {r.status for r in await rows(db)} == {"sent"}


async def test_a_retried_message_keeps_its_place_before_later_ones(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fake.channel("a")
    fake.script["KEY-a-S3CRET"].extend([(502, {}, {}), (502, {}, {})])
    await enqueue(db, robot, "一", "二", "三")
    await dispatcher(db, settings, http, robot).run_once()
    assert [t.rsplit("\n", 1)[-1] for t in fake.texts("a")] == ["一", "一", "一", "二", "三"]
    first = (await rows(db))[0]
    assert (first.status, first.attempts) == ("sent", 3)
    assert [a.ok for a in await attempts(db)][:3] == [False, False, True]


async def test_a_stalled_robot_does_not_hold_up_another(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    slow, quick = fake.channel("slow"), fake.channel("quick")
    fake.gates["KEY-slow-S3CRET"] = asyncio.Event()
    await enqueue(db, slow, "慢1", "慢2")
    await enqueue(db, quick, *[body_text(n) for n in range(5)])
    worker = dispatcher(db, settings, http, slow, quick)
    await worker.start()
    await until(lambda: worker.stats.sent >= 5)
    assert len(fake.texts("quick")) == 5 and len(fake.texts("slow")) == 1
    fake.gates["KEY-slow-S3CRET"].set()
    await until(lambda: worker.stats.sent >= 7)
    await worker.stop()
    assert {r.status for r in await rows(db)} == {"sent"}


async def test_retry_after_from_the_platform_is_honoured(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fake.channel("a")
    fake.script["KEY-a-S3CRET"].append((429, {"Retry-After": "1"}, {}))
    await enqueue(db, robot, "一")
    await dispatcher(db, settings, http, robot).run_once()
    (row,), (failed, ok) = await rows(db), await attempts(db)
    assert row.status == "sent" and not failed.ok and ok.ok
    assert failed.http_status == 429 and failed.error_kind == "retry"
    assert (row.next_attempt_at - failed.at).total_seconds() >= 1.0


async def test_after_the_last_attempt_the_message_is_dead_and_the_admin_channel_told(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot, admin = fake.channel("a"), fake.channel("admin")
    fake.script["KEY-a-S3CRET"].extend([(503, {}, {})] * 3)
    await enqueue(db, robot, "一")
    await dispatcher(db, settings, http, robot, admin, admin="admin").run_once()
    first = (await rows(db))[0]
    assert (first.status, first.attempts) == ("dead", 3)
    assert "已尝试 3 次" in (first.last_error or "")
    (notice,) = fake.texts("admin")
    assert "消息投递失败" in notice and "a党支部群" in notice and "S3CRET" not in notice


async def test_a_permanent_failure_is_dead_at_once(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot, admin = fake.channel("a"), fake.channel("admin")
    fake.keys.discard("KEY-a-S3CRET")  # the robot was removed from the group
    await enqueue(db, robot, "一", "二")
    await dispatcher(db, settings, http, robot, admin, admin="admin").run_once()
    first, second, _digest = await rows(db)
    assert (first.status, first.attempts, first.error_kind) == ("dead", 1, "config")
    assert "Webhook 地址无效" in (first.last_error or "")
    assert second.status == "dead"  # a dead message does not block the next one
    (digest,) = fake.texts("admin")  # one digest for the robot, not one notice per message
    assert "2 条消息未送达" in digest


async def test_failures_of_the_admin_channel_are_not_reported_to_itself(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    admin = fake.channel("admin")
    fake.keys.discard("KEY-admin-S3CRET")
    await enqueue(db, admin, "一")
    await dispatcher(db, settings, http, admin, admin="admin").run_once()
    assert [r.status for r in await rows(db)] == ["dead"]


async def test_a_sent_message_is_never_sent_again_even_after_a_restart(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fake.channel("a")
    await enqueue(db, robot, "一", "二")
    first = dispatcher(db, settings, http, robot)
    await first.run_once()
    await first.run_once()
    await first.stop()
    await enqueue(db, robot, "一", "二")  # firing again changes nothing
    await dispatcher(db, settings, http, robot).run_once()
    assert len(fake.hits) == 2


async def test_a_channel_without_webhook_is_recorded_as_dry_run_and_nothing_is_sent(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unhooked = WeComChannel(id="r", name="空群", platform="wecom", format="text")
    await enqueue(db, unhooked, "一")
    with caplog.at_level(logging.INFO):
        sender = dispatcher(db, settings, http, unhooked)
        await sender.run_once()
        await sender.stop()
    assert [r.status for r in await rows(db)] == ["dry_run"]
    assert fake.hits == [] and "空群" in caplog.text and "一" in caplog.text
    # Record-only for want of a webhook is not a rehearsal: 演练 means --dry-run only.
    assert "只记录、不发送（未配置 webhook）：频道“空群”" in caplog.text
    assert "未配置 webhook 只记录 1 条" in caplog.text and "演练" not in caplog.text


async def test_dry_run_setting_sends_nothing_even_with_a_webhook(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.dry_run = True
    robot = fake.channel("a")
    await enqueue(db, robot, "一")
    with caplog.at_level(logging.INFO):
        sender = dispatcher(db, settings, http, robot)
        await sender.run_once()
        await sender.stop()
    assert [r.status for r in await rows(db)] == ["dry_run"] and fake.hits == []
    assert "S3CRET" not in ours(caplog)
    assert "只记录、不发送（演练）" in caplog.text and "演练未发送 1 条" in caplog.text


async def test_a_timeout_is_retried(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    settings.send_timeout_seconds = 0.2
    robot = fake.channel("a")
    fake.gates["KEY-a-S3CRET"] = asyncio.Event()
    await enqueue(db, robot, "一")
    worker = dispatcher(db, settings, http, robot, backoff=30.0)
    await worker.run_once(max_retry_wait=1.0)
    (row,), (attempt,) = await rows(db), await attempts(db)
    assert (row.status, attempt.error_kind) == ("pending", "retry")
    assert "发送超时" in (attempt.detail or "") and row.lease_owner is None


async def test_an_unreachable_server_is_retried_and_logs_hold_no_secret(
    db: Database, settings: Settings, http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = WeComChannel(
        id="gone", name="断网群", platform="wecom",
        webhook="http://127.0.0.1:9/cgi-bin/webhook/send?key=KEY-gone-S3CRET",
    )
    await enqueue(db, gone, "一")
    with caplog.at_level(logging.DEBUG):
        await dispatcher(db, settings, http, gone).run_once()
    (row,) = await rows(db)
    assert (row.status, row.attempts) == ("dead", 3) and "连接失败" in (row.last_error or "")
    assert "S3CRET" not in ours(caplog) and "S3CRET" not in (row.last_error or "")


async def test_platform_errors_with_the_key_in_them_leak_no_secret(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    robot, admin = fake.channel("a"), fake.channel("admin")
    fake.keys.discard("KEY-a-S3CRET")  # the fake echoes the key in its errmsg
    await enqueue(db, robot, "一")
    with caplog.at_level(logging.DEBUG):
        await dispatcher(db, settings, http, robot, admin, admin="admin").run_once()
    stored = json.dumps([(r.last_error, r.body) for r in await rows(db)], ensure_ascii=False)
    details = " ".join(a.detail or "" for a in await attempts(db))
    assert "S3CRET" not in ours(caplog) + details + stored


async def test_a_message_for_a_channel_removed_from_the_schedules_is_dead(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    await enqueue(db, fake.channel("old"), "一")
    await dispatcher(db, settings, http).run_once()
    (row,) = await rows(db)
    assert row.status == "dead" and "已不在配置中" in (row.last_error or "")


async def test_stop_gives_back_unsent_messages_and_logs_one_summary(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    robot = fake.channel("a")
    fake.gates["KEY-a-S3CRET"] = asyncio.Event()
    await enqueue(db, robot, "一", "二")
    worker = dispatcher(db, settings, http, robot)
    await worker.start()
    await until(lambda: bool(fake.hits))
    with caplog.at_level(logging.INFO):
        await worker.stop(timeout=0.1)
    summary = [r.getMessage() for r in caplog.records if "发送器已停止" in r.getMessage()]
    assert len(summary) == 1 and "中断 1 个发送" in summary[0]
    assert all(r.status == "pending" and r.lease_owner is None for r in await rows(db))


async def test_wake_sends_newly_enqueued_messages_without_waiting_for_the_poll(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fake.channel("a")
    worker = Dispatcher(db, settings, {"a": robot}.get, http, poll_seconds=3600)
    await worker.start()
    await asyncio.sleep(0.05)  # let the first poll find nothing
    await enqueue(db, robot, "一")
    worker.wake()
    await until(lambda: worker.stats.sent >= 1)
    await worker.stop()
    assert len(fake.texts("a")) == 1


# ---- every platform, through the real adapters and the shared fake platform servers ----------

PLATFORM_NAMES = ["wecom", "dingtalk", "feishu", "lark", "slack", "generic"]


@pytest.fixture
async def fakes() -> AsyncIterator[FakePlatforms]:
    async with FakePlatforms(window=0.5) as servers:
        yield servers


async def enqueue_texts(db: Database, channel: ChannelBase, count: int) -> None:
    adapter = platform_for(channel)
    async with db.session() as session:
        for n in range(count):
            bodies = adapter.build(channel, Message(title="提醒", markdown=body_text(n)))
            await outbox.enqueue(
                session, dedupe_key=f"{channel.id}/{n}", channel=channel, platform=adapter.name,
                bodies=bodies, stage="due", summary=body_text(n),
            )
        await session.commit()


def platform_dispatcher(
    db: Database, settings: Settings, http: aiohttp.ClientSession, channel: ChannelBase
) -> Dispatcher:
    return Dispatcher(db, settings, {channel.id: channel}.get, http, backoff_base=0.01)


@pytest.mark.parametrize("name", PLATFORM_NAMES)
async def test_every_platform_gets_a_burst_paced_in_order_with_nothing_refused(
    name: str, db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    settings.rate_window_seconds = 0.5
    robot = fakes.add(name, limit=3, secret="SEC-test-S3CRET" if name != "slack" else None)
    channel = robot.channel(rate_per_minute=3)
    await enqueue_texts(db, channel, 8)
    await platform_dispatcher(db, settings, http, channel).run_once()
    assert all(r.accepted for r in robot.requests) and len(robot.requests) == 8
    assert [body_text(n) in text for n, text in enumerate(robot.texts())] == [True] * 8


@pytest.mark.parametrize("name", PLATFORM_NAMES)
async def test_every_platform_throttle_is_waited_out_then_sent(
    name: str, db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fakes.add(name)
    robot.throttle_next(1, retry_after=0.2)
    channel = robot.channel()
    await enqueue_texts(db, channel, 1)
    await platform_dispatcher(db, settings, http, channel).run_once()
    (row,), (throttled, sent) = await rows(db), await attempts(db)
    assert row.status == "sent" and (throttled.ok, throttled.error_kind, sent.ok) == (False, "retry", True)


@pytest.mark.parametrize("name", PLATFORM_NAMES)
async def test_every_platform_revoked_robot_is_dead_at_once_without_leaking_its_secret(
    name: str, db: Database, fakes: FakePlatforms, http: aiohttp.ClientSession, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    robot = fakes.add(name)
    robot.revoke()
    channel = robot.channel()
    await enqueue_texts(db, channel, 1)
    with caplog.at_level(logging.DEBUG):
        await platform_dispatcher(db, settings, http, channel).run_once()
    (row,) = await rows(db)
    assert (row.status, row.attempts, row.error_kind) == ("dead", 1, "config")
    assert robot.token not in ours(caplog) + (row.last_error or "")


# ---- robot lanes: the rate window lives in the database; in-flight sends are marked ----------


async def test_a_robot_whose_queue_empties_keeps_its_window_for_the_next_batch(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    fake.window = settings.rate_window_seconds = 1.0
    fake.limit = 3
    robot = fake.channel("a").model_copy(update={"rate_per_minute": 3})
    first = dispatcher(db, settings, http, robot)
    await enqueue(db, robot, "一", "二", "三")
    await first.run_once()
    await enqueue(db, robot, "四", "五")  # the lane was emptied and let go: a second batch
    await first.run_once()
    await enqueue(db, robot, "六", "七")  # another instance (or a restart) inside the window
    await dispatcher(db, settings, http, robot).run_once()
    arrived = [t for _, _, t in fake.hits]
    assert fake.refused == 0 and len(arrived) == 7
    assert arrived[3] - arrived[0] >= 0.99 and arrived[6] - arrived[3] >= 0.99  # paced, not refused
    assert {r.status for r in await rows(db)} == {"sent"}


async def test_a_message_in_flight_when_its_sender_died_is_resent_marked_possible_duplicate(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fake.channel("a")
    await enqueue(db, robot, "一", "二")
    async with db.session() as session:  # as a killed instance leaves it: leased, marked in flight
        first = (await session.exec(select(Outbox).order_by(Outbox.id))).first()
        assert first is not None
        first.lease_owner, first.sending_since = "dead-host:1:x", first.created_at
        session.add(first)
        await session.commit()
    await dispatcher(db, settings, http, robot).run_once()
    one, two = await attempts(db)
    assert (one.possible_duplicate, two.possible_duplicate) == (True, False)
    assert all(r.status == "sent" and r.sending_since is None for r in await rows(db))


async def test_a_paused_robots_next_message_is_marked_before_its_window_opens_and_a_stop_unmarks_it(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    fake.window = settings.rate_window_seconds = 2.0
    robot = fake.channel("a")
    await enqueue(db, robot, *[body_text(n) for n in range(21)])  # WeCom: 20 per window
    worker = dispatcher(db, settings, http, robot)
    await worker.start()
    async with asyncio.timeout(10):  # the 21st waits for the window; its mark is stored before that
        while not ((last := (await rows(db))[-1]).sending_since is not None):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert len(fake.hits) == 20 and last.status == "pending"  # marked, not yet sent
    await worker.stop(timeout=0.1)
    last = (await rows(db))[-1]
    assert (last.status, last.sending_since, last.lease_owner) == ("pending", None, None)

    await dispatcher(db, settings, http, robot).run_once()  # the next run sends it: not a possible duplicate
    assert fake.refused == 0 and len(fake.hits) == 21
    assert not any(a.possible_duplicate for a in await attempts(db))


async def test_the_stop_summary_counts_rows_recorded_only_when_they_were_queued(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unhooked = WeComChannel(id="r", name="空群", platform="wecom", format="text")
    sender = dispatcher(db, settings, http, unhooked)
    bodies = WeCom().build(unhooked, Message(title="提醒", markdown="一"))
    async with db.session() as session:  # how firing records a message for a channel without a webhook
        for key in ("a", "b"):
            await outbox.enqueue(session, dedupe_key=key, channel=unhooked, platform="wecom", bodies=bodies,
                                 stage="due", summary="提醒：一", dry_run=True)
        await session.commit()
    async with db.session() as session:  # a fire that failed: nothing recorded, nothing counted
        await outbox.enqueue(session, dedupe_key="c", channel=unhooked, platform="wecom", bodies=bodies,
                             stage="due", summary="提醒：一", dry_run=True)
        await session.rollback()
    with caplog.at_level(logging.INFO):
        await sender.run_once()
        await sender.stop()
    assert [r.status for r in await rows(db)] == ["dry_run", "dry_run"] and fake.hits == []
    assert "未配置 webhook 只记录 2 条" in caplog.text


async def test_a_runs_first_sends_are_marked_as_far_as_the_window_lets_them_go_and_a_stop_unmarks_the_unsent(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    robot = fake.channel("a").model_copy(update={"rate_per_minute": 2})  # two per window
    fake.gates["KEY-a-S3CRET"] = asyncio.Event()  # the first send hangs
    await enqueue(db, robot, *[body_text(n) for n in range(5)])
    worker = dispatcher(db, settings, http, robot)
    await worker.start()
    async with asyncio.timeout(10):
        while not fake.hits:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # Marked before the first send: the rows the window lets go at once, no more.
    assert [r.sending_since is not None for r in await rows(db)] == [True, True, False, False, False]
    await worker.stop(timeout=0.1)  # the hanging send is cut off; the second never left
    after = await rows(db)
    assert [r.sending_since is not None for r in after] == [True, False, False, False, False]
    assert {(r.status, r.lease_owner) for r in after} == {("pending", None)}


async def test_the_young_generation_is_widened_while_sending_and_given_back_after(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings
) -> None:
    """bot/delivery/gcyoung.py: sized for the sends in flight during the burst, restored after it."""
    import gc

    from bot.delivery import gcyoung

    before = gc.get_threshold()
    seen: list[int] = []
    robot = fake.channel("a")
    await enqueue(db, robot, body_text(1))
    sender = dispatcher(db, settings, http, robot)
    post = sender._post

    async def watched(*args: Any) -> Any:
        seen.append(gc.get_threshold()[0])
        return await post(*args)

    sender._post = watched  # type: ignore[method-assign]
    await sender.run_once()
    widened = max(before[0], gcyoung.YOUNG_PER_SEND * settings.send_concurrency) if before[0] else 0
    assert seen == [widened]
    assert gc.get_threshold() == before
