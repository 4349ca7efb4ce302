"""Settled stages (``due_stage``) in the words admins read: 错过 (missed), 补发 (late)….

``remindbot status``, ``remindbot report``, the admin pages and the admin channel word them here
(``bot.scheduling.firelog`` reads and tells them); without SQLAlchemy, so ``report`` on a SQLite
file words its missed stages without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.config.models import DEFAULT_TZ
from bot.config.spans import Span
from bot.scheduling.datewords import ahead_text, when_text
from bot.scheduling.stages import stage_words

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from bot.runtime import Runtime

SETTLED_LABELS = {"fired": "按时发出", "late": "补发", "missed": "错过", "cancelled": "已取消",
                  "skipped": "已提前发出，未再发送"}


def stage_label(stage: str) -> str:
    """``due`` -> 当天提醒, ``notice:3d`` -> 提前3天通知 (see :func:`bot.scheduling.stages.stage_words`)."""
    return stage_words(stage)


def span_text(seconds: int | None) -> str:
    """``21600`` -> ``6小时``."""
    if not seconds:
        return ""
    days, rest = divmod(seconds, 86400)
    return Span(days=days, hours=rest // 3600, minutes=rest % 3600 // 60).describe()


def lateness_text(seconds: float | None) -> str:
    """How late, in words: ``3分钟``, ``2天6小时``."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{max(seconds, 0):.0f}秒"
    return span_text(int(seconds))


@dataclass(frozen=True)
class StageLine:
    """One settled stage as admins read it."""

    row: Any  # a DueStage, or storage.reads.Settled: the same fields
    title: str
    zone_name: str
    fired_by: str | None = None  # a skipped stage's: who fired its occurrence ahead, when recorded
    fired_at: datetime | None = None  # a skipped stage's: when its occurrence's day message went out

    @property
    def when(self) -> str:
        from zoneinfo import ZoneInfo

        return when_text(_utc(self.row.fire_at), ZoneInfo(self.zone_name))

    @property
    def text(self) -> str:
        r = self.row
        head = f"{self.title}（{stage_label(r.stage)}）原定 {self.when}"
        if r.status == "missed":
            why = f"，最后一次错误：{r.last_error}" if r.last_error else ""
            return f"{head}：超过补发时限 {span_text(r.grace_seconds)} 仍未发出，已记为错过{why}"
        if r.status == "skipped":
            return f"{head}：这次提醒{self.ahead}，此项未再发送"
        return f"{head}：晚 {lateness_text(r.lateness_seconds)} 补发"

    @property
    def ahead(self) -> str:
        """A skipped stage's occurrence fired ahead, in :func:`bot.scheduling.datewords.ahead_text`'s words:
        ``已于 2026年12月1日（星期二）18:13 由 zhangsan 在命令行提前发出``."""
        from zoneinfo import ZoneInfo

        when = when_text(_utc(self.fired_at), ZoneInfo(self.zone_name)) if self.fired_at else None
        return ahead_text(when, self.fired_by)


def sent_ahead(occurrence: Any, zone: ZoneInfo) -> str | None:
    """``已于 2026年12月1日（星期二）18:13 由 zhangsan 在命令行提前发出`` for a real occurrence whose day
    message went out before its due time (``remindbot fire --date``), from that moment on; None for one
    not fired yet, fired on time or late, or a rehearsal. ``occurrence``: a ``storage.models.Occurrence``
    or a ``storage.reads.OccurrenceRow`` (``due_at``, ``fired_at``, ``fired_by``, ``dry_run``); its time
    said in ``zone``."""
    fired_at = getattr(occurrence, "fired_at", None)
    if occurrence.dry_run or fired_at is None or _utc(fired_at) >= _utc(occurrence.due_at):
        return None
    return ahead_text(when_text(_utc(fired_at), zone), getattr(occurrence, "fired_by", None))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def lines_for(runtime: Runtime, rows: list[Any]) -> list[StageLine]:
    """``rows`` (DueStage or Settled) as admins read them; a Settled row names who fired a skipped one
    ahead, and when."""
    out = []
    for row in rows:
        reminder = runtime.schedules.reminders.get(row.reminder_id)
        out.append(StageLine(row, reminder.title if reminder else row.reminder_id,
                             reminder.timezone if reminder else DEFAULT_TZ, getattr(row, "fired_by", None),
                             getattr(row, "fired_at", None)))
    return out
