"""Firing from the database: plan each reminder's stages, fire what is due, record how it went.

The ``due_stage`` table is the record of what must go out (``storage.models.DueStage``). A
reconciliation pass (:meth:`Reconciler.run_pass`):

1. reads when the last pass completed (``scheduler_mark``; after downtime it looks back from
   there, at most :data:`MAX_LOOK_BACK`; on a new database, from now: a first start sends
   nothing due before it, and says so in one log line). The first start's time is kept too, and
   no pass ever looks back before it (not the next pass's overlap, not a restart's catch-up);
2. plans every enabled reminder's stages from there until :data:`LOOK_AHEAD` from now, and
   cancels open stages the schedules no longer name (a reminder edited, disabled or removed);
3. settles each open stage whose time has come: claimed by one ``UPDATE`` that succeeds once
   (so two instances never both fire it), then fired — on time, or 补发 (late) when more than
   :data:`ON_TIME` late — or, beyond the reminder's ``grace``, recorded as missed;
4. tells the admin channel once about stages newly missed; writes the mark.

A stage whose firing raises stays open (``failed``, with ``attempts`` and ``last_error``) and is
tried again after a bounded backoff; if it cannot be sent within the grace it becomes missed.
A pass that cannot reach the database changes nothing and the next pass starts over.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.models import DEFAULT_TZ, Reminder
from bot.metrics import FIRE_LATENESS, FIRES
from bot.platforms.markup import redact
from bot.runtime import Runtime
from bot.scheduling.datewords import ahead_line, short_when, when_text
from bot.scheduling.firelog import OPEN, lateness_text, tell_admin_missed
from bot.scheduling.occurrences import FireResult, fire, from_db, get_or_create_occurrence
from bot.scheduling.stages import stage_words
from bot.scheduling.timing import Fire, fires
from storage.db import dialect_insert
from storage.models import DueStage, SchedulerMark

log = logging.getLogger(__name__)
ZONE = ZoneInfo(DEFAULT_TZ)  # a removed reminder's stages are named in the service's zone

ON_TIME = timedelta(seconds=30)  # queued later than this after its time: sent as 补发 (late)
LOOK_AHEAD = timedelta(hours=24)  # stages are planned this far ahead
OVERLAP = timedelta(minutes=10)  # each pass looks back this far before the last pass
MAX_LOOK_BACK = timedelta(days=400)  # after a longer downtime, older stages are not looked for
CLAIM_LEASE = timedelta(minutes=2)  # a claim by an instance that died lapses after this
RETRY_BASE_SECONDS = 5.0  # a failed stage is tried again after 5, 10, 20 … seconds
RETRY_MAX_SECONDS = 300.0  # … at most 5 minutes apart
SETTLE_LIMIT = 500  # stages settled per pass (the next pass takes the rest)
LAST_PASS, FIRST_START = 1, 2  # the rows of ``scheduler_mark``: when the last pass completed; the first start
NAMED_AT_START = 5  # stages the first start's line names (then 等 N 项)

Key = tuple[str, str, datetime]  # reminder id, stage, due time (aware UTC)
FireFn = Callable[[Fire, bool], Awaitable[FireResult]]


def utc(moment: datetime) -> datetime:
    """Aware UTC, whatever the driver handed back (SQLite returns naive UTC)."""
    return from_db(moment).astimezone(UTC)


def retry_delay(attempts: int) -> float:
    """Seconds before trying a stage again after its ``attempts``-th failure (bounded)."""
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))


def key_of(fire_: Fire) -> Key:
    return fire_.reminder_id, fire_.stage, utc(fire_.due.due_at)


def row_key(row: DueStage) -> Key:
    return row.reminder_id, row.stage, utc(row.due_at)


@dataclass
class PassResult:
    """What one pass did (counts of stages), and when the next failed stage may be retried."""

    planned: int = 0
    on_time: int = 0
    late: int = 0
    missed: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0  # stages of an occurrence fired ahead of its day (``fire --date``): nothing sent
    next_retry_at: datetime | None = None  # aware UTC
    missed_rows: list[int] = field(default_factory=list)

    @property
    def fired(self) -> int:
        return self.on_time + self.late


class Reconciler:
    """Runs reconciliation passes for one service instance (``owner`` names it in claims)."""

    def __init__(self, runtime: Runtime, *, fire_fn: FireFn | None = None, owner: str | None = None) -> None:
        self.runtime = runtime
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._fire: FireFn = fire_fn or (lambda f, late: fire(runtime, f, late=late))
        self._rehearsed_until: datetime | None = None  # ``serve --dry-run``: kept in memory only

    # ------------------------------------------------------------ the pass

    async def run_pass(self) -> PassResult:
        """One pass; raises when the database cannot be reached (nothing is lost: retry later)."""
        now = utc(self.runtime.clock())
        result = PassResult()
        if self.runtime.settings.dry_run:
            await self._rehearse(now, result)
            return result
        async with self.runtime.db.session() as session:
            mark, first_start = await self._mark(session, LAST_PASS), await self._mark(session, FIRST_START)
            if mark is None and first_start is None:
                first_start = await self._write_first_start(session, now)
            computed = await self._plan(session, now, mark, first_start, result)
            rows = await self._due_rows(session, now)
        for row in rows:
            await self._settle(row, computed, result)
        await tell_admin_missed(self.runtime, utc(self.runtime.clock()))
        async with self.runtime.db.session() as session:
            result.next_retry_at = await self._next_retry(session)
            await self._write_mark(session, now)
        return result

    async def _rehearse(self, now: datetime, result: PassResult) -> None:
        """``serve --dry-run``: fire what comes due (recorded as dry runs), but never touch the
        record of stages: a rehearsal must not count as the real reminder having gone out."""
        start = self._rehearsed_until or now - ON_TIME
        for reminder in self.runtime.schedules.reminders.values():
            if not reminder.enabled:
                continue
            for f in fires(reminder, self.runtime.calendar, start, now + timedelta(microseconds=1)):
                try:
                    await self._fire(f, False)
                    result.on_time += 1
                except Exception as exc:  # a rehearsal only reports
                    result.failed += 1
                    log.warning("演练：提醒“%s”（%s）失败：%s", reminder.title, stage_words(f.stage),
                                redact(str(exc))[:300])
        self._rehearsed_until = now + timedelta(microseconds=1)

    async def _mark(self, session: AsyncSession, which: int) -> datetime | None:
        row = await session.get(SchedulerMark, which)
        return utc(row.last_pass_at) if row is not None else None

    async def _write_first_start(self, session: AsyncSession, now: datetime) -> datetime:
        """Record the first real start before anything is planned: a pass cut short, a restart and
        the next pass's overlap all look back no further. ``serve --dry-run`` never gets here, so a
        rehearsal's runs never stand for it. Two instances starting at once keep the first written."""
        await session.exec(self._insert(session).values(id=FIRST_START, last_pass_at=now)  # type: ignore[call-overload]
                           .on_conflict_do_nothing(index_elements=["id"]))
        await session.commit()
        return await self._mark(session, FIRST_START) or now

    async def _write_mark(self, session: AsyncSession, now: datetime) -> None:
        """Advance the mark to ``now`` (never backwards: another instance may be ahead)."""
        stmt = (update(SchedulerMark).where(col(SchedulerMark.id) == LAST_PASS, col(SchedulerMark.last_pass_at) < now)
                .values(last_pass_at=now))
        await session.exec(stmt)  # type: ignore[call-overload]
        await session.exec(self._insert(session).values(id=LAST_PASS, last_pass_at=now)  # type: ignore[call-overload]
                           .on_conflict_do_nothing(index_elements=["id"]))
        await session.commit()

    @staticmethod
    def _insert(session: AsyncSession, table: type = SchedulerMark):  # type: ignore[no-untyped-def]
        return dialect_insert(session.bind.dialect.name)(table)

    # ------------------------------------------------------------ planning

    def _start(self, reminder: Reminder, now: datetime, mark: datetime | None, first_start: datetime | None,
               earliest_open: datetime | None) -> datetime:
        """Where this reminder's fires are looked for: the last pass, or now on a new database.

        A first start (no pass ever recorded) is not a return from downtime: sending what fell due
        before it would be 补发 "因服务中断" of an outage that never was (a fresh install at 17:29
        sent the 15:00 reminder to every group). Nor may a later pass reach back before it: the
        overlap of the second pass, a minute on, sent what the first had just said it would not."""
        # A first pass cut short (recorded its start, not its end) is taken up from that start.
        start = mark - OVERLAP if mark is not None else first_start or now
        if earliest_open is not None:
            start = min(start, earliest_open)
        if first_start is not None:
            start = max(start, first_start)
        return max(start, now - MAX_LOOK_BACK)

    def _say_not_caught_up(self, now: datetime) -> None:
        """One line on a first start naming what fell due within its grace before it (not sent):
        which send and when (``每月学习日（提前3天通知，12月1日 09:00）``), the latest first, at most
        :data:`NAMED_AT_START` (then 等 N 项)."""
        before = sorted(((reminder, f) for reminder in self.runtime.schedules.reminders.values() if reminder.enabled
                         for f in fires(reminder, self.runtime.calendar, now - reminder.grace.delta, now)),
                        key=lambda pair: pair[1].fire_at, reverse=True)
        if not before:
            return
        shown = "、".join(f"{reminder.title}（{stage_words(f.stage)}，{short_when(utc(f.fire_at), reminder.zone)}）"
                         for reminder, f in before[:NAMED_AT_START])
        more = f"等 {len(before)} 项" if len(before) > NAMED_AT_START else ""
        log.info("首次启动：启动前已到期的 %d 项提醒不补发：%s%s；从现在起按时发送", len(before), shown, more)

    async def _plan(self, session: AsyncSession, now: datetime, mark: datetime | None,
                    first_start: datetime | None, result: PassResult) -> dict[Key, Fire]:
        """Insert the stages the schedules name and the table lacks; cancel those it no longer names."""
        open_rows = (await session.exec(select(DueStage).where(col(DueStage.status).in_(OPEN)))).all()
        earliest: dict[str, datetime] = {}
        for row in open_rows:
            at = utc(row.fire_at)
            earliest[row.reminder_id] = min(at, earliest.get(row.reminder_id, at))
        if mark is None:
            self._say_not_caught_up(now)
        computed: dict[Key, Fire] = {}
        first = now
        for reminder in self.runtime.schedules.reminders.values():
            if not reminder.enabled:
                continue
            start = self._start(reminder, now, mark, first_start, earliest.get(reminder.id))
            first = min(first, start)
            for f in fires(reminder, self.runtime.calendar, start, now + LOOK_AHEAD):
                computed[key_of(f)] = f
        known: dict[Key, tuple[int | None, str]] = {
            (rid, stage, utc(due)): (row_id, status) for row_id, rid, stage, due, status in (await session.exec(
                select(DueStage.id, DueStage.reminder_id, DueStage.stage, DueStage.due_at, DueStage.status)
                .where(col(DueStage.fire_at) >= first))).all()
        }
        # A stage cancelled by an edit that the schedules name again (the edit was undone) reopens.
        again = [row_id for k, (row_id, status) in known.items() if status == "cancelled" and k in computed]
        if again:
            await session.exec(update(DueStage).where(  # type: ignore[call-overload]
                col(DueStage.id).in_(again), col(DueStage.status) == "cancelled",
            ).values(status="planned", settled_at=None, last_error=None, next_try_at=None))
        new = [f for k, f in computed.items() if k not in known]
        if new:
            values = [{"reminder_id": f.reminder_id, "stage": f.stage, "due_at": utc(f.due.due_at),
                       "fire_at": utc(f.fire_at), "status": "planned", "attempts": 0, "created_at": now}
                      for f in new]
            stmt = self._insert(session, DueStage).values(values).on_conflict_do_nothing(
                index_elements=["reminder_id", "stage", "due_at"])
            await session.exec(stmt)  # type: ignore[call-overload]
            result.planned = len(new)
        gone_rows = [row for row in open_rows if row_key(row) not in computed]
        gone = [row.id for row in gone_rows]
        if gone:
            await session.exec(update(DueStage).where(  # type: ignore[call-overload]
                col(DueStage.id).in_(gone), col(DueStage.status).in_(OPEN),
            ).values(status="cancelled", settled_at=now, claimed_by=None, claimed_until=None,
                     last_error="日程已修改或停用，此项不再发送"))
            result.cancelled = len(gone)
            log.warning("日程已修改：%d 项尚未发出的提醒不再发送：%s", len(gone), self._named(gone_rows))
        await session.commit()
        return computed

    def _named(self, rows: list[DueStage], most: int = 10) -> str:
        """``每月学习日（study，当天 2026年12月4日（星期五）09:00）、……等 12 项``: the first ``most``
        stages by fire time (a reminder removed from the schedules by its id only)."""
        reminders = self.runtime.schedules.reminders
        shown = []
        for row in sorted(rows, key=lambda r: r.fire_at)[:most]:
            reminder = reminders.get(row.reminder_id)
            title = f"{reminder.title}（{row.reminder_id}，" if reminder is not None else f"{row.reminder_id}（"
            zone = reminder.zone if reminder is not None else ZONE
            shown.append(f"{title}{stage_words(row.stage)} {when_text(utc(row.fire_at), zone)}）")
        return "、".join(shown) + (f"等 {len(rows)} 项" if len(rows) > most else "")

    async def _due_rows(self, session: AsyncSession, now: datetime) -> list[DueStage]:
        stmt = (select(DueStage).where(
            col(DueStage.status).in_(OPEN),
            col(DueStage.fire_at) <= now,
            or_(col(DueStage.next_try_at).is_(None), col(DueStage.next_try_at) <= now),
            self._claim_free(now),
        ).order_by(col(DueStage.fire_at)).limit(SETTLE_LIMIT))
        return list((await session.exec(stmt)).all())

    def _claim_free(self, now: datetime):  # type: ignore[no-untyped-def]
        # A claim of this instance still set means an earlier pass of ours was cut short.
        return or_(col(DueStage.claimed_until).is_(None), col(DueStage.claimed_until) < now,
                   col(DueStage.claimed_by) == self.owner)

    async def _next_retry(self, session: AsyncSession) -> datetime | None:
        stmt = select(DueStage.next_try_at).where(col(DueStage.status) == "failed").order_by(
            col(DueStage.next_try_at)).limit(1)
        found = (await session.exec(stmt)).first()
        return utc(found) if found is not None else None

    # ------------------------------------------------------------ settling one stage

    async def _claim(self, row: DueStage, now: datetime) -> bool:
        """Take the stage for this instance; False when another instance has it (or it is settled)."""
        async with self.runtime.db.session() as session:
            stmt = update(DueStage).where(
                col(DueStage.id) == row.id, col(DueStage.status).in_(OPEN), self._claim_free(now),
            ).values(claimed_by=self.owner, claimed_until=now + CLAIM_LEASE, attempts=DueStage.attempts + 1)
            done = await session.exec(stmt)  # type: ignore[call-overload]
            await session.commit()
            return bool(done.rowcount == 1)

    async def _record(self, row: DueStage, **values: object) -> None:
        async with self.runtime.db.session() as session:
            stmt = update(DueStage).where(col(DueStage.id) == row.id, col(DueStage.claimed_by) == self.owner)
            await session.exec(stmt.values(claimed_by=None, claimed_until=None, **values))  # type: ignore[call-overload]
            await session.commit()

    async def _settle(self, row: DueStage, computed: dict[Key, Fire], result: PassResult) -> None:
        f = computed.get(row_key(row))
        reminder = self.runtime.schedules.reminders.get(row.reminder_id)
        if f is None or reminder is None or not await self._claim(row, utc(self.runtime.clock())):
            return
        now = utc(self.runtime.clock())
        lateness = (now - utc(row.fire_at)).total_seconds()
        grace = reminder.grace.delta
        if lateness > grace.total_seconds():
            await self._missed(row, f, reminder, now, lateness, result)
            return
        late = lateness > ON_TIME.total_seconds()
        try:
            fired = await self._fire(f, late)
        except Exception as exc:  # any failure leaves the stage open for the next pass
            await self._failed(row, reminder, exc, now, result)
            return
        done = utc(self.runtime.clock())
        # Fired before this stage's own time (by hand, ahead): not a retry of this stage's own fire.
        if fired.fired_before is not None and fired.queued == 0 and fired.fired_before < utc(row.fire_at):
            await self._skipped(row, fired, done, lateness, grace, result)
            return
        outcome = "late" if late else "on_time"
        await self._record(row, status="late" if late else "fired", fired_at=done, settled_at=done,
                           lateness_seconds=lateness, grace_seconds=int(grace.total_seconds()),
                           occurrence_id=fired.occurrence_id, next_try_at=None)
        setattr(result, outcome, getattr(result, outcome) + 1)
        self._count(row, outcome, lateness, done, fired.queued)

    async def _skipped(self, row: DueStage, fired: FireResult, done: datetime, lateness: float,
                       grace: timedelta, result: PassResult) -> None:
        """The occurrence's day message went out ahead of its day (``fire --date``): this stage sent
        nothing, recorded as such (``skipped``) and said so — not as "按时发出，排队 0 条"."""
        assert fired.fired_before is not None
        await self._record(row, status="skipped", settled_at=done, lateness_seconds=lateness,
                           grace_seconds=int(grace.total_seconds()), occurrence_id=fired.occurrence_id,
                           next_try_at=None)
        result.skipped += 1
        FIRES.labels("skipped").inc()
        reminder = self.runtime.schedules.reminders.get(row.reminder_id)
        zone = reminder.zone if reminder is not None else ZONE
        log.info("提醒“%s”（%s）已跳过：这次提醒%s", self._title(row.reminder_id), stage_words(row.stage),
                 ahead_line(when_text(fired.fired_before, zone), fired.fired_before_by, row.stage),
                 extra={"event": "fire", "reminder_id": row.reminder_id, "stage": row.stage,
                        "due_at": utc(row.due_at).isoformat(), "fire_at": utc(row.fire_at).isoformat(),
                        "fired_at": None, "outcome": "skipped", "lateness_seconds": round(lateness, 3),
                        "queued": 0, "fired_early_at": fired.fired_before.isoformat(),
                        "fired_early_by": fired.fired_before_by})

    async def _failed(self, row: DueStage, reminder: Reminder, exc: Exception, now: datetime,
                      result: PassResult) -> None:
        attempts = row.attempts + 1
        delay = retry_delay(attempts)
        reason = redact(f"{type(exc).__name__}: {exc}")[:1000]
        await self._record(row, status="failed", last_error=reason,
                           next_try_at=now + timedelta(seconds=delay))
        result.failed += 1
        FIRES.labels("failed").inc()
        log.warning("提醒“%s”（%s）发送失败（第 %d 次），%.0f 秒后重试：%s", reminder.title,
                    stage_words(row.stage), attempts, delay, reason,
                    extra={"event": "fire_failed", "reminder_id": row.reminder_id,
                           "stage": row.stage, "attempts": attempts, "error": reason})

    async def _missed(self, row: DueStage, f: Fire, reminder: Reminder, now: datetime, lateness: float,
                      result: PassResult) -> None:
        """Beyond the grace: record it (and, for the due stage, its occurrence), never send it."""
        occurrence_id = None
        if f.stage == "due":
            from bot.delivery.outbox import SessionWriter

            async with self.runtime.db.session() as session:
                occurrence_id = (await get_or_create_occurrence(SessionWriter(session), self.runtime, reminder,
                                                                f.due)).id
        await self._record(row, status="missed", settled_at=now, lateness_seconds=lateness,
                           grace_seconds=int(reminder.grace.delta.total_seconds()), occurrence_id=occurrence_id,
                           next_try_at=None)
        result.missed += 1
        if row.id is not None:
            result.missed_rows.append(row.id)
        self._count(row, "missed", lateness, None, 0)

    def _count(self, row: DueStage, outcome: str, lateness: float, fired_at: datetime | None, queued: int) -> None:
        """Metrics and the one structured log line per settled stage."""
        FIRES.labels(outcome).inc()
        if fired_at is not None:
            FIRE_LATENESS.observe(max(lateness, 0.0))
        words = {"on_time": "按时发出", "late": "已补发", "missed": "已错过（超过补发时限，未发送）"}
        title = self._title(row.reminder_id)
        extra = {"event": "fire", "reminder_id": row.reminder_id, "stage": row.stage,
                 "due_at": utc(row.due_at).isoformat(), "fire_at": utc(row.fire_at).isoformat(),
                 "fired_at": fired_at.isoformat() if fired_at else None, "outcome": outcome,
                 "lateness_seconds": round(lateness, 3), "queued": queued}
        if outcome == "missed":
            log.warning("提醒“%s”（%s）%s，已晚 %s", title, stage_words(row.stage), words[outcome],
                        lateness_text(lateness), extra=extra)
        else:
            log.info("提醒“%s”（%s）%s，排队 %d 条消息，延迟 %.1f 秒", title, stage_words(row.stage),
                     words[outcome], queued, lateness, extra=extra)

    def _title(self, reminder_id: str) -> str:
        reminder = self.runtime.schedules.reminders.get(reminder_id)
        return reminder.title if reminder else reminder_id

