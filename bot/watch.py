"""Watch schedules/ and message_templates/ while serving: a valid change takes effect at once;
an invalid one is refused with the same messages as ``remindbot validate`` and the last good
schedules keep running.

The folder is checked in a child process (:mod:`bot.config.worker`) within the limits of
:class:`bot.config.limits.Limits`, so no file can stall the service. A refusal is never only logged:
it is counted (``remindbot_reload_failures_total``), kept in :class:`bot.runtime.ReloadState` for
``/healthz`` and the admin pages' banner, and told once to the admin channel per distinct failure.
A change that empties a file or removes reminders is logged as such, so a truncation is noticed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import awatch

from bot.config.issues import bounded
from bot.config.limits import Limits
from bot.config.models import Schedules
from bot.config.snapshot import cache_dir_for
from bot.config.worker import check_in_worker
from bot.metrics import RELOAD_FAILURES
from bot.platforms.markup import redact
from bot.runtime import ReloadState, system_clock
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
TellAdmin = Callable[[list[str]], Awaitable[None]]
NOTICE_ERRORS = 10  # errors quoted in the admin-channel notice (the rest are counted)


@dataclass
class Reloader:
    """One reload: check the folder off the event loop, apply it when valid, make a refusal visible.

    ``apply`` receives valid schedules; ``current`` gives the running ones (to log what a change
    removes); ``state`` is updated on every attempt; ``tell_admin`` receives the errors of each
    new, distinct failure.
    """

    settings: Settings
    apply: Callable[[Schedules], None]
    current: Callable[[], Schedules | None] = lambda: None
    state: ReloadState = field(default_factory=ReloadState)
    tell_admin: TellAdmin | None = None
    clock: Callable[[], datetime] = system_clock
    _told: tuple[str, ...] | None = field(default=None, init=False, repr=False)

    async def __call__(self) -> bool:
        """Returns whether the folder was applied."""
        s = self.settings
        schedules, issues = await check_in_worker(s.schedules_dir, templates_dir=s.templates_dir,
                                                  limits=Limits.from_settings(s), timeout=s.reload_timeout_seconds,
                                                  cache_dir=cache_dir_for(s.var_dir, s.schedules_cache))
        shown, more = bounded(issues)
        for issue in shown:
            (log.warning if issue.warning or schedules is None else log.info)("%s", issue)
        if more:
            log.warning("%s", more)
        if schedules is None:
            await self._refused([redact(str(i)) for i in issues if not i.warning])
            return False
        for line in removals(self.current(), schedules, s.schedules_dir):
            log.warning("%s", line)
        self.apply(schedules)
        now = self.clock()
        if not self.state.ok:
            self.state.since = now
        self.state.ok, self.state.errors, self.state.last_good_at = True, [], now
        self._told = None
        log.info("日程配置已重新加载：%d 个提醒", len(schedules.reminders))
        return True

    async def _refused(self, errors: list[str]) -> None:
        RELOAD_FAILURES.inc()
        log.error("日程配置有 %d 处错误，未生效；继续使用上一次有效的配置", len(errors))
        if self.state.ok:
            self.state.since = self.clock()
        self.state.ok, self.state.errors = False, errors
        if tuple(errors) == self._told:
            return  # the admin channel already has exactly these
        self._told = tuple(errors)
        if self.tell_admin is not None:
            await self.tell_admin(errors)


async def reload_schedules(settings: Settings, apply: Callable[[Schedules], None]) -> bool:
    """Check the folder (in a child process); apply it when valid. Returns whether it was applied."""
    return await Reloader(settings, apply)()


async def watch_schedules(reload: Callable[[], Awaitable[object]], settings: Settings,
                          *, debounce_ms: int = 300) -> None:
    """Run ``reload`` after each batch of changes (changes made meanwhile make the next batch)."""
    folders = [settings.schedules_dir, settings.templates_dir]
    async for _changes in awatch(*[str(f) for f in folders if f.exists()], debounce=debounce_ms,
                                 recursive=True):
        try:
            await reload()
        except Exception:  # a reload bug must not stop the service
            log.exception("重新加载日程配置时出错，继续使用上一次有效的配置")


# ---------------------------------------------------------------- what a change removes

_COUNTED = (("reminders", "个提醒"), ("people", "人"), ("units", "个单位"), ("channels", "个频道"))


def removals(old: Schedules | None, new: Schedules, folder: Path) -> list[str]:
    """Lines (in Chinese) naming what a change takes away: files left empty, reminders removed."""
    if old is None:
        return []
    lines = []
    before, after = _entries_by_file(old), _entries_by_file(new)
    for label, counts in before.items():
        if label in after:
            continue
        gone = "、".join(f"{counts[section]} {word}" for section, word in _COUNTED if counts[section])
        state = "变为空" if (folder.resolve().parent / label).exists() else "已删除"
        lines.append(f"{label} {state}，移除了 {gone}")
    removed = [r for r in old.reminders.values() if r.id not in new.reminders]
    if removed:
        lines.append(f"移除了 {len(removed)} 个提醒：" + "、".join(f"{r.title}（{r.id}）" for r in removed))
    return lines


def _entries_by_file(schedules: Schedules) -> dict[str, Counter[str]]:
    """File label -> entries per section, from ``sources`` ("reminders:<id>" -> "file:line")."""
    files: dict[str, Counter[str]] = {}
    for key, where in schedules.sources.items():
        section = key.split(":", 1)[0]
        files.setdefault(where.rsplit(":", 1)[0], Counter())[section] += 1
    return files


# ---------------------------------------------------------------- telling the admin channel


def admin_notifier(runtime: Runtime) -> TellAdmin:
    """Queue a notice of refused schedules to the running schedules' ``service.admin_channel``."""
    from bot.delivery import outbox
    from bot.platforms.base import Message
    from bot.platforms.registry import platform_for

    async def tell(errors: list[str]) -> None:
        channel_id = runtime.schedules.service.admin_channel
        channel = runtime.channel(channel_id) if channel_id else None
        if channel is None:
            return
        now = runtime.clock()
        try:
            adapter = platform_for(channel)
            bodies = adapter.build(channel, Message(title="日程配置未生效", markdown=notice_text(errors)))
            digest = hashlib.sha256("\n".join(errors).encode()).hexdigest()[:16]
            async with runtime.db.session() as session:
                await outbox.enqueue(
                    session, dedupe_key=f"admin:schedules:{digest}:{now.isoformat()}", channel=channel,
                    platform=getattr(channel, "platform", adapter.name), bodies=bodies, stage="admin",
                    summary=f"日程配置未生效通知（{len(errors)} 处错误）", now=now)
                await session.commit()
        except Exception as exc:  # the log, /healthz and the admin pages still show the failure
            log.warning("无法通知管理员频道：%s", type(exc).__name__)
            return
        log.info("已通知管理员频道：日程配置未生效（%d 处错误）", len(errors))
        runtime.wake_dispatcher()

    return tell


def notice_text(errors: list[str]) -> str:
    quoted = "\n".join(f"> {e}" for e in errors[:NOTICE_ERRORS])
    more = f"\n> ……另有 {len(errors) - NOTICE_ERRORS} 处" if len(errors) > NOTICE_ERRORS else ""
    return (f"**日程配置有 {len(errors)} 处错误，未生效**\n\n{quoted}{more}\n\n"
            "服务继续使用上一次有效的配置。请修改后保存，改正后会自动生效"
            "（也可运行 remindbot validate 检查）。")
