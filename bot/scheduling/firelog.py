"""What the record of fired stages tells people: missed and late stages for admins.

``remindbot status``, ``remindbot report``, the admin pages and the admin channel all read
``due_stage`` through here, so they use the same words. A stage sent late is 补发; one that could
not be sent within its reminder's grace is 错过 (missed) and the admin channel is told once.

Rehearsals (dry runs) never reach this record: only the reconciliation pass writes it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select

from bot.platforms.base import Message
from bot.platforms.registry import platform_for
from bot.runtime import Runtime
from bot.scheduling.stagelines import (  # noqa: F401  (re-exported: the pages and commands import them here)
    SETTLED_LABELS,
    StageLine,
    lateness_text,
    lines_for,
    span_text,
    stage_label,
)
from storage import reads
from storage.db import Database
from storage.models import DueStage

log = logging.getLogger(__name__)

OPEN = ("planned", "failed")  # not settled yet: the pass still fires them
TELL_LIMIT = 30  # missed stages listed in one admin notice (more are counted)


async def settled(db: Database, start: datetime, end: datetime | None = None, *,
                  statuses: tuple[str, ...] = ("missed", "late"), reminder_ids: tuple[str, ...] = (),
                  limit: int = 200) -> list[reads.Settled]:
    """Stages with those outcomes whose time fell in [start, end), newest first (``storage.reads.SETTLED``:
    the text ``remindbot report`` reads a SQLite file with)."""
    async with reads.engine_reader(db.engine) as reader:
        return await reads.settled(reader, statuses, start, end, reminders=reminder_ids, limit=limit)


async def stage_of_occurrence(db: Database, occurrence_id: int) -> DueStage | None:
    """The ``due`` stage recorded for an occurrence (how its day's message went), if any."""
    async with db.session() as session:
        stmt = select(DueStage).where(col(DueStage.occurrence_id) == occurrence_id, col(DueStage.stage) == "due")
        return (await session.exec(stmt)).first()


def missed_notice(lines: list[StageLine], more: int) -> str:
    body = "\n".join(f"> {line.text}" for line in lines)
    extra = f"\n> 另有 {more} 项，见 remindbot status" if more else ""
    # No heading of its own: the platform shows the title (提醒未能发出（已错过）) once.
    return ("因服务中断等原因，以下提醒超过补发时限仍未发出，未再发送：\n"
            f"{body}{extra}\n\n请核实，如有需要请另行通知相关同志。")


async def tell_admin_missed(runtime: Runtime, now: datetime) -> int:
    """Tell the admin channel, once, about stages recorded as missed; returns how many were told.

    The stages are marked told in the same transaction that queues the notice, and only if no
    other instance marked them first, so the admin hears of each missed stage exactly once.
    Without an admin channel the stages are marked told and a warning is logged (they remain in
    ``status``, ``report`` and the admin pages).
    """
    async with runtime.db.session() as session:
        stmt = (select(DueStage).where(col(DueStage.status) == "missed", col(DueStage.admin_told_at).is_(None))
                .order_by(col(DueStage.fire_at)))
        rows = list((await session.exec(stmt)).all())
        if not rows:
            return 0
        ids = [r.id for r in rows]
        marked = await session.exec(update(DueStage).where(  # type: ignore[call-overload]
            col(DueStage.id).in_(ids), col(DueStage.admin_told_at).is_(None)).values(admin_told_at=now))
        if marked.rowcount != len(ids):  # another instance is telling them
            await session.rollback()
            return 0
        lines = lines_for(runtime, rows)
        admin_id = runtime.schedules.service.admin_channel
        channel = runtime.channel(admin_id) if admin_id else None
        if channel is None:
            log.warning("%d 项提醒已错过，但未设置管理员频道（service.admin_channel），无法通知：%s", len(rows),
                        "；".join(line.text for line in lines[:TELL_LIMIT]))
            await session.commit()
            return len(rows)
        from bot.delivery.outbox import enqueue  # not at import: `status` and `report` only read the log

        platform = platform_for(channel)
        text = missed_notice(lines[:TELL_LIMIT], max(len(lines) - TELL_LIMIT, 0))
        bodies = platform.build(channel, Message(title="提醒未能发出（已错过）", markdown=text))
        await enqueue(session, dedupe_key=f"admin:missed:{ids[0]}:{ids[-1]}:{len(ids)}", channel=channel,
                      platform=getattr(channel, "platform", platform.name), bodies=bodies, stage="admin",
                      summary=f"错过提醒通知（{len(ids)} 项）", now=now,
                      dry_run=runtime.settings.dry_run or channel.dry_run)
        await session.commit()
    runtime.wake_dispatcher()
    log.info("已通知管理员频道：%d 项提醒已错过", len(rows))
    return len(rows)
