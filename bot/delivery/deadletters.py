"""Dead messages reach the admin channel as one digest per robot per window, never one each.

A robot with a wrong secret fails every message sent through it: a per-person reminder then
kills fifteen messages within a minute, and one notice each would flood the admin group. The
dispatcher hands each dead message to :meth:`DeadDigest.add`; the first one for a robot opens a
batch, and the batch is sent as one notice ("钉钉群“X”的机器人：签名错误，15 条消息未送达") when the
window (``REMINDBOT_DEAD_DIGEST_SECONDS``) has passed since it opened, or earlier when the
dispatcher has nothing more to send (burst mode) or stops. The notice never goes to the robot that
is failing: when the admin channel is that robot, or is a failing message's own channel, only the
log and the outbox page tell. Batches live in memory; a crash loses the digest, not the record
(every dead message keeps its row and reason on the outbox page).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.delivery import outbox
from bot.delivery.outbox import Claimed, robot_key
from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, Message, Platform
from bot.platforms.registry import platform_title
from storage.db import Database

log = logging.getLogger(__name__)

SHOWN_SUMMARIES = 5  # message summaries listed in one digest; the rest are counted
_RETRIED = "仍未成功，最后一次："


@dataclass
class _Batch:
    robot: str
    channel_name: str
    platform_title: str
    opened: datetime
    summaries: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    faults: dict[str, str] = field(default_factory=dict)  # reason -> FAULT_* (what the advice says)
    timer: asyncio.TimerHandle | None = None

    @property
    def count(self) -> int:
        return len(self.summaries)


def headline(reason: str) -> str:
    """The short cause of a reason ("签名错误：…（钉钉返回…）" → "签名错误"), or a generic one."""
    text = reason.split(_RETRIED, 1)[-1]
    for stop in ("：", "（", "，", "；"):
        text = text.split(stop, 1)[0]
    text = text.strip()
    return text if 0 < len(text) <= 24 else "发送失败"


def group_words(platform_title: str, channel_name: str) -> str:
    """``钉钉群“X”``, or ``群“市财政局党建群（钉钉）”`` when the name already says the platform."""
    if platform_title and platform_title in channel_name:
        return f"群“{channel_name}”"
    return f"{platform_title}群“{channel_name}”"


# What was at fault, as the advice to the admin depends on it: only a permanent refusal of the robot
# (bad key or signature, keyword, IP allowlist: FailureKind.CONFIG) is a matter of its settings.
FAULT_SETTINGS, FAULT_GONE, FAULT_MESSAGE = "settings", "gone", "message"
FAULT_SERVER, FAULT_NETWORK, FAULT_THROTTLED, FAULT_INTERNAL = "server", "network", "throttled", "internal"
INTERNAL = "内部错误"  # the dispatcher's reason for an exception of its own


def fault_of(err: DeliveryError | None, channel: ChannelBase | None) -> str:
    """Which ``FAULT_*`` a dead message's last error shows (no error: a refusal of the settings)."""
    if err is None or err.kind is FailureKind.CONFIG:
        return FAULT_SETTINGS if channel is not None else FAULT_GONE
    if err.kind is FailureKind.REJECTED:
        return FAULT_MESSAGE
    if err.message == INTERNAL:
        return FAULT_INTERNAL
    if err.code is None:  # no answer at all: a timeout or a connection that failed
        return FAULT_NETWORK
    if err.code == 429 or "限流" in err.message:  # every rate-limit text in describe.py says 限流
        return FAULT_THROTTLED
    return FAULT_SERVER  # HTTP 5xx, or the platform's "system busy"


def advice(fault: str, platform_title: str) -> str:
    """What the admin should make of it and do, fitting the cause."""
    retried = "remindbot 已自动重试，仍未成功，这些消息不再自动重发；之后的消息照常发送。"
    resend = "恢复后可在管理页面重发这些消息。"
    if fault == FAULT_SERVER:
        return f"问题出在{platform_title}服务器，不是机器人设置的问题：{retried}{resend}"
    if fault == FAULT_NETWORK:
        return f"问题出在网络或{platform_title}服务器（没有答复或连不上），不是机器人设置的问题：{retried}{resend}"
    if fault == FAULT_THROTTLED:
        return (f"发送太频繁，被{platform_title}限流，不是机器人设置的问题：{retried}"
                "请避免让大量提醒在同一时刻发送；稍后可在管理页面重发这些消息。")
    if fault == FAULT_INTERNAL:
        return f"remindbot 内部出错（详见服务日志）：{retried}{resend}"
    if fault == FAULT_MESSAGE:
        return ("平台拒收的是这些消息本身，自动重试不会成功：请按上面的原因处理（例如精简内容），"
                "改好后可在管理页面重发。")
    if fault == FAULT_GONE:
        return "这些消息所属的频道已不在日程配置中，不会再发送；如仍需发送，请恢复该频道的配置。"
    return "请检查该群机器人的设置（Webhook、加签密钥、关键词、IP 白名单），改好后可在管理页面重发。"


def digest_text(batch: _Batch) -> str:
    """The notice's markdown: who failed, how many, why, which messages, what to do. No heading of its
    own: the platform shows the notice's title (消息投递失败) once."""
    reason, _ = batch.reasons.most_common(1)[0]
    cause = headline(reason)
    lines = [
        f"{group_words(batch.platform_title, batch.channel_name)}的机器人：{cause}，{batch.count} 条消息未送达。",
        "",
        f"> 原因：{reason}",
    ]
    shown = "；".join(batch.summaries[:SHOWN_SUMMARIES])
    more = batch.count - SHOWN_SUMMARIES
    lines.append(f"> 内容：{shown}" + (f" 等（另有 {more} 条）" if more > 0 else ""))
    lines += ["", advice(batch.faults.get(reason, FAULT_SETTINGS), batch.platform_title)]
    return "\n".join(lines)


class DeadDigest:
    """Collects dead messages per robot and queues one admin notice per robot per window."""

    def __init__(
        self,
        db: Database,
        *,
        channel_for: Callable[[str], ChannelBase | None],
        platform_for: Callable[[ChannelBase], Platform],
        admin_channel: Callable[[], str | None],
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        window_seconds: float,
    ) -> None:
        self.db, self._channel_for, self._platform_for = db, channel_for, platform_for
        self._admin_channel, self._clock, self._wake = admin_channel, clock, wake
        self.window_seconds = window_seconds
        self._batches: dict[str, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, row: Claimed, channel: ChannelBase | None, reason: str, err: DeliveryError | None = None) -> None:
        """Count one dead message of ``row``'s robot (admin notices themselves are not reported);
        ``err`` is its last error, which decides the advice."""
        if row.stage == "admin":
            return
        batch = self._batches.get(row.robot)
        if batch is None:
            title = self._platform_title(channel, row.platform)
            name = channel.name if channel else row.channel_id
            batch = self._batches[row.robot] = _Batch(row.robot, name, title, self._clock())
            loop = asyncio.get_running_loop()
            batch.timer = loop.call_later(self.window_seconds, self._flush_later, row.robot)
        batch.summaries.append(row.summary)
        batch.reasons[reason] += 1
        batch.faults.setdefault(reason, fault_of(err, channel))

    def pending(self) -> int:
        """Robots with dead messages not yet told."""
        return len(self._batches)

    async def flush(self) -> int:
        """Queue every open batch's notice now; returns how many notices were queued."""
        robots = list(self._batches)
        sent = 0
        for robot in robots:
            sent += await self._send(robot)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return sent

    def _flush_later(self, robot: str) -> None:
        task = asyncio.create_task(self._send(robot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _platform_title(self, channel: ChannelBase | None, platform: str) -> str:
        if channel is None:
            return platform
        try:
            return platform_title(channel, self._platform_for)
        except KeyError:
            return platform

    async def _send(self, robot: str) -> int:
        batch = self._batches.pop(robot, None)
        if batch is None:
            return 0
        if batch.timer is not None:
            batch.timer.cancel()
        admin = self._target(batch)
        if admin is None:
            return 0
        try:
            adapter = self._platform_for(admin)
            bodies = adapter.build(admin, Message(title="消息投递失败", markdown=digest_text(batch)))
            async with self.db.session() as session:
                await outbox.enqueue(
                    session, dedupe_key=f"admin:dead:{robot}:{batch.opened.isoformat()}", channel=admin,
                    platform=getattr(admin, "platform", adapter.name), bodies=bodies, stage="admin",
                    summary=f"投递失败通知：{batch.channel_name}（{batch.count} 条）", now=self._clock(),
                )
                await session.commit()
        except Exception as exc:
            log.warning("无法通知管理员频道：%s", type(exc).__name__)
            return 0
        self._wake()
        return 1

    def _target(self, batch: _Batch) -> ChannelBase | None:
        """The admin channel, unless it is unset, unknown, or the failing robot itself."""
        admin_id = self._admin_channel()
        admin = self._channel_for(admin_id) if admin_id else None
        if admin is None:
            return None
        if robot_key(admin) == batch.robot:
            log.warning("管理员频道“%s”的机器人本身投递失败（%d 条），不再向它发送通知", admin.name, batch.count)
            return None
        return admin
