"""Follow-ups and escalations, sent only within working hours, driven by the database.

Everything lives in ``Expectation`` rows (``next_followup_at``/``followups``,
``next_escalation_at``/``escalations``), so a restart neither loses nor repeats one. A round is
claimed with set-based conditional UPDATEs (ids in a batch, the counter and due time they were read with, and
still no confirmation) and its outbox and ``Nudge`` rows are written in the same transaction:
of two instances only one can claim a round, and a crash before the commit claims nothing.

Policy:

* **Follow-up** (``followup`` template): when a person's ``next_followup_at`` has come and they
  have not confirmed, one message per channel of the reminder mentions everyone of that round
  who is in the channel; where the channel allows personal links, one message per person with
  their own link. The next one is ``remind_every`` later (working days by the calendar). The
  person owes the work after the deadline too, so follow-ups go on at the same interval (the
  message marks the deadline as passed) while escalation tells their leaders; after
  ``LATE_FOLLOWUPS`` past the deadline they stop, so a forgotten occurrence does not nag forever.
* **Escalation** (``escalation`` template): from the deadline on, each leader in charge (the
  ``leader_ids`` snapshot for ``unit_leaders``, or the person ids in ``escalate_to``) gets one
  message listing their overdue people with how often each was followed up, mentioning them,
  in the reminder's channels they are a member of (those shared with the overdue people when
  there are such). Again every ``escalate_every``, or only once. Where an app can reach the leader
  directly (:func:`bot.delivery.directs.direct_channel`), the escalation goes as one direct message instead.
* Personal follow-ups (one per person, with their own link) go as direct messages where an app
  reaches the person, with the platform's confirm button.
* **Working hours**: nothing is sent outside ``Settings.work_hours`` on working days (in the
  reminder's zone); what falls due outside waits for the next window and is never dropped.
* A confirmation stops everything for that person; reminders removed from the schedules (or
  disabled, or no longer asking for confirmation) stop their follow-ups and escalations.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.gcpause import no_gc
from bot.config.models import Person, Reminder
from bot.config.spans import Span
from bot.confirming.codes import reply_code
from bot.confirming.confirmations import to_db_time as db_time
from bot.confirming.tokens import confirm_url, make_token
from bot.delivery.compose import (
    Planned,
    due_context,
    members,
    mention_for,
    person_context,
    queue_all,
    queue_message,
    reminder_context,
    split_by_channel,
    when_text,
)
from bot.delivery.directs import direct_channel
from bot.delivery.outbox import SessionWriter, insert_all
from bot.platforms.base import Mention
from bot.repeats import whole
from bot.runtime import Runtime
from bot.scheduling.workhours import WorkHours
from storage.models import Confirmation, Expectation, Nudge, Occurrence

log = logging.getLogger(__name__)

POLL_SECONDS = 30.0
MIN_WAIT_SECONDS = 5.0  # a round waiting on another zone's working hours must not spin the loop
LATE_FOLLOWUPS = 3  # follow-ups to a person after the deadline, at most
CLAIM_BATCH = 900  # ids per claiming UPDATE: under SQLite's bound-parameter limit with room to spare
KIND_ZH = {"followup": "催办", "escalation": "逾期告知"}

def utc(moment: datetime) -> datetime:
    """Aware UTC from a database value (naive UTC or aware, depending on the column type)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_CONFIRMED = exists().where(
    Confirmation.occurrence_id == Expectation.occurrence_id,
    Confirmation.person_id == Expectation.person_id,
)
EXP = Expectation.__table__  # type: ignore[attr-defined]
# The columns a round reads of each expectation (Core rows with these attributes stand for it).
OWING_COLUMNS = ("id", "occurrence_id", "person_id", "person_name", "unit_name", "leader_ids",
                 "next_followup_at", "next_escalation_at", "followups", "escalations")
Owing = Any  # a Core row of OWING_COLUMNS (or an Expectation: the same attributes)
# A rehearsal's expectations carry no due times; this keeps them out even if one ever did.
_REAL = exists().where(Occurrence.id == Expectation.occurrence_id, col(Occurrence.dry_run).is_(False))


class FollowUps:
    """The follow-up engine: ``run_once(now)`` for tests and tools, ``start()``/``stop()`` to run."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.runtime.settings.dry_run:
            log.info("演练模式：不发催办和逾期告知（真实提醒的催办留待正式运行时发送）")
            return
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="followups")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before the run, so a wake during it is not lost
            self.runtime.ticks["followups"] = self.runtime.clock()
            try:
                delay = await whole(self._turn(), "催办/逾期告知检查")
            except Exception:  # one bad round must not stop the engine
                log.exception("催办/逾期告知检查出错，%d 秒后重试", int(POLL_SECONDS))
                delay = POLL_SECONDS
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _turn(self) -> float:
        """One round, then the seconds until the next is due (a stop lets it finish: ``whole``)."""
        await self.run_once(self.runtime.clock())
        return await self.seconds_to_next(self.runtime.clock())

    async def seconds_to_next(self, now: datetime) -> float:
        """Seconds until the earliest pending follow-up or escalation may go, at most the poll."""
        stmt = select(func.min(Expectation.next_followup_at), func.min(Expectation.next_escalation_at)).where(
            ~_CONFIRMED, _REAL)
        async with self.runtime.db.session() as session:
            row = (await session.exec(stmt)).one()  # type: ignore[call-overload]
        pending = [utc(t) for t in row if t is not None]
        if not pending:
            return POLL_SECONDS
        target = self._hours().next_window(max(min(pending), now), self.runtime.calendar)
        return min(POLL_SECONDS, max(MIN_WAIT_SECONDS, (target - now).total_seconds()))

    # ------------------------------------------------------------ one pass

    async def run_once(self, now: datetime) -> int:
        """Send every follow-up and escalation due at ``now``; return outbox rows queued.

        Under ``Settings.dry_run`` nothing is claimed: a rehearsal must neither send a real
        occurrence's follow-up nor use it up (the next real run sends it).
        """
        if self.runtime.settings.dry_run:
            return 0
        # The cyclic collector is paused for the pass: a province's round holds ~20 new containers per
        # person until its rows are written, and the collector, triggered by them, walked the whole heap
        # (the schedules' 10⁵ objects and more) four times a 20,000-people pass: a quarter of its CPU.
        # Reference counting still frees everything the pass drops; the few cycles it makes (a
        # session's, an exception's) wait for the first collection after it.
        with no_gc():
            return await self._pass(utc(now))

    async def _pass(self, now: datetime) -> int:
        due = await self._due(now)
        rounds: dict[tuple[int, str, int], list[Owing]] = defaultdict(list)
        occurrences: dict[int, Occurrence] = {}
        retire: list[int] = []
        for exp, occ, confirmed in due:
            occurrences[occ.id or 0] = occ
            reminder = self.runtime.schedules.reminders.get(occ.reminder_id)
            if confirmed or reminder is None or reminder.confirm is None or not reminder.enabled:
                retire.append(exp.id or 0)
                continue
            if exp.next_followup_at is not None and utc(exp.next_followup_at) <= now:
                rounds[(occ.id or 0, "followup", exp.followups + 1)].append(exp)
            if exp.next_escalation_at is not None and utc(exp.next_escalation_at) <= now:
                rounds[(occ.id or 0, "escalation", exp.escalations + 1)].append(exp)
        if retire:
            await self._retire(retire)
        queued = 0
        for (occ_id, kind, number), exps in sorted(rounds.items()):
            occ = occurrences[occ_id]
            reminder = self.runtime.schedules.reminders[occ.reminder_id]
            if not self._hours().in_window(now, self.runtime.calendar, reminder.zone):
                continue  # stays due; the first run inside the next window sends it
            try:
                queued += await self._round(kind, number, reminder, occ, exps, now)
            except Exception:  # e.g. a broken template: the claim rolls back, other rounds go on
                log.exception("%s：第 %d 次%s未能排队，稍后重试", reminder.title, number, KIND_ZH[kind])
        if queued:
            self.runtime.wake_dispatcher()
        return queued

    def _hours(self) -> WorkHours:
        return WorkHours.parse(self.runtime.settings.work_hours)

    async def _due(self, now: datetime) -> list[tuple[Owing, Occurrence, bool]]:
        """Every real expectation with a follow-up or escalation due at ``now``, with its occurrence and
        whether it is confirmed. Expectations come back as Core rows of :data:`OWING_COLUMNS` (a
        province's round has 20,000 of them: no ORM objects); occurrences, a few, as ORM objects."""
        t = EXP
        stmt = (
            select(*(t.c[name] for name in OWING_COLUMNS), _CONFIRMED)  # type: ignore[call-overload]
            .join(Occurrence, col(Occurrence.id) == t.c.occurrence_id)
            .where(col(Occurrence.dry_run).is_(False))
            .where(or_(t.c.next_followup_at <= db_time(now), t.c.next_escalation_at <= db_time(now)))
            .order_by(t.c.id)
        )
        async with self.runtime.db.session() as session:
            rows = (await session.exec(stmt)).all()
            ids = {r.occurrence_id for r in rows}
            occs = {o.id: o for o in (await session.exec(select(Occurrence).where(col(Occurrence.id).in_(ids))))}
        return [(r, occs[r.occurrence_id], bool(r[-1])) for r in rows]

    async def _retire(self, ids: Sequence[int]) -> None:
        """Confirmed, or the reminder is gone: nothing more is owed to these rows."""
        stmt = update(Expectation).where(col(Expectation.id).in_(ids)).values(
            next_followup_at=None, next_escalation_at=None)
        async with self.runtime.db.session() as session:
            await session.exec(stmt)
            await session.commit()

    async def _round(self, kind: str, number: int, reminder: Reminder, occ: Occurrence,
                     exps: list[Owing], now: datetime) -> int:
        late = await self._late_followups(occ, now) if kind == "followup" else {}
        async with self.runtime.db.session() as session:
            # The claim is the transaction's first statement, so on SQLite it takes the write
            # lock before anything is read and a second instance waits, then finds nothing.
            claimed = await self._claim(session, kind, reminder, occ, exps, now, late)
            if not claimed:
                return 0
            if kind == "followup":
                queued, nudged = await self._send_followups(session, reminder, occ, claimed, number, now)
            else:
                queued, nudged = await self._send_escalations(session, reminder, occ, claimed, number, now)
            if nudged:
                at = db_time(now)
                rows = [{"occurrence_id": occ.id or 0, "person_id": p, "kind": kind, "number": number,
                         "at": at} for p in sorted(nudged)]
                await insert_all(session, Nudge.__table__, rows)  # type: ignore[attr-defined]
            await session.commit()
        log.info("%s：第 %d 次%s，涉及 %d 人，排队 %d 条消息", reminder.title, number, KIND_ZH[kind],
                 len(nudged), queued)
        return queued

    async def _late_followups(self, occ: Occurrence, now: datetime) -> dict[str, int]:
        """Follow-ups each person of the occurrence got at or after its deadline (none before it passes).

        By occurrence, not by a list of the round's people: a province's round has 20,000 of them.
        """
        if occ.deadline_at is None or now < utc(occ.deadline_at):
            return {}
        stmt = (
            select(Nudge.person_id, func.count())
            .where(Nudge.occurrence_id == occ.id, Nudge.kind == "followup",
                   col(Nudge.at) >= db_time(utc(occ.deadline_at)))
            .group_by(col(Nudge.person_id))
        )
        async with self.runtime.db.session() as session:
            return dict((await session.exec(stmt)).all())  # type: ignore[call-overload]

    async def _claim(self, session: AsyncSession, kind: str, reminder: Reminder, occ: Occurrence,
                     exps: list[Owing], now: datetime, late: dict[str, int]) -> list[Owing]:
        """Claim this round for ``exps`` in set-based UPDATEs; the ones this call claimed.

        Rows read alike (same counter, same due time, same next time) are claimed together:
        ``UPDATE … WHERE occurrence = … AND counter = … AND due = … AND NOT confirmed RETURNING id``
        when they are all the rows read with that counter and due time (the usual case: one
        statement for the whole round), else ``… WHERE id IN (…) …`` per :data:`CLAIM_BATCH`. A row
        another instance claimed first (or confirmed since) no longer matches, so each round is
        claimed once; a row that matches but was not read (it came in since) rolls the round back.
        """
        assert reminder.confirm is not None
        past_deadline = int(occ.deadline_at is not None and now >= utc(occ.deadline_at))
        groups: dict[tuple[Any, ...], list[Owing]] = defaultdict(list)
        every = reminder.confirm.remind_every if kind == "followup" else reminder.confirm.escalate_every
        following: dict[Any, datetime | None] = {}  # a round's rows share a few due times: each computed once
        for exp in exps:
            if kind == "followup":
                was, count = exp.next_followup_at, exp.followups
            else:
                was, count = exp.next_escalation_at, exp.escalations
            if was not in following:
                following[was] = self._next(was, every, reminder.zone, now)
            nxt = following[was]
            if kind == "followup" and late.get(exp.person_id, 0) + past_deadline >= LATE_FOLLOWUPS:
                nxt = None  # this one is the last after the deadline
            groups[(was, count, nxt)].append(exp)
        claimed_ids: set[int] = set()
        shared = Counter((was, count) for was, count, _ in groups)
        for (was, count, nxt), members_ in groups.items():
            if kind == "followup":
                values = {"followups": count + 1, "next_followup_at": nxt}
                condition = and_(EXP.c.followups == count, EXP.c.next_followup_at == db_time(was))
            else:
                values = {"escalations": count + 1, "next_escalation_at": nxt}
                condition = and_(EXP.c.escalations == count, EXP.c.next_escalation_at == db_time(was))
            if shared[(was, count)] == 1:
                # The usual round: everyone read with this counter and due time goes to the same next
                # time, so one UPDATE by those conditions claims them all (no id list to send).
                batches: list[Any] = [EXP.c.occurrence_id == occ.id]
            else:
                ids = [e.id for e in members_]
                batches = [EXP.c.id.in_(ids[start:start + CLAIM_BATCH]) for start in range(0, len(ids), CLAIM_BATCH)]
            connection = await session.connection()  # Core: no ORM bookkeeping for 20,000 rows
            for which in batches:
                stmt = update(EXP).where(which, condition, ~_CONFIRMED).values(**values).returning(EXP.c.id)
                claimed_ids.update((await connection.execute(stmt)).scalars().all())
        if claimed_ids - {e.id for e in exps}:  # a row that came in after the read: roll back, read again
            raise RuntimeError(f"occurrence {occ.id}: rows changed while claiming a round; retried on the next pass")
        return [e for e in exps if e.id in claimed_ids]

    def _next(self, was: datetime | None, every: Span | None, zone: ZoneInfo, now: datetime) -> datetime | None:
        """The next due time (as the column takes it) after the one just sent, none already past.

        Counted from when the round actually went (a round deferred from Saturday to Monday
        09:00 comes back on Tuesday 09:00; one sent late after an outage waits a whole interval
        before the next), so people are never nudged twice in quick succession.
        """
        if every is None or was is None:
            return None
        sent = max(utc(now), self._hours().next_window(utc(was), self.runtime.calendar, zone))
        return db_time(self._step(sent, every, zone))

    def _step(self, moment: datetime, every: Span, zone: ZoneInfo) -> datetime:
        if not every.workdays:
            return moment + (every.delta or timedelta(days=1))
        local = moment.astimezone(zone)
        day = self.runtime.calendar.add_workdays(local.date(), every.workdays)
        return datetime.combine(day, local.time(), tzinfo=zone)

    # ------------------------------------------------------------ messages

    def _context(self, reminder: Reminder, occ: Occurrence, stage: str, now: datetime) -> dict[str, Any]:
        zone = reminder.zone
        deadline = None
        if occ.deadline_at is not None:
            passed = utc(occ.deadline_at) <= now
            deadline = when_text(utc(occ.deadline_at), zone) + ("（已逾期）" if passed else "")
        return {
            "reminder": reminder_context(reminder),
            "stage": stage,
            "lead": None,
            "due": due_context(utc(occ.due_at), zone, moved_from=occ.original_date,
                               provisional=occ.provisional),
            "deadline": deadline,
            "confirm": {"required": True, "link": None, "code": None},
            "overdue": [],
            "figures": None,
        }

    def _person(self, exp: Owing) -> tuple[Person | None, dict[str, Any], Mention]:
        person = self.runtime.schedules.people.get(exp.person_id)
        if person is None:  # removed from the YAML since: still owes it, named by the snapshot
            ctx = {"id": exp.person_id, "name": exp.person_name, "title": None, "unit": exp.unit_name,
                   "roles": []}
            return None, ctx, Mention(person_id=exp.person_id, name=exp.person_name)
        return person, person_context(self.runtime.schedules, person), mention_for(person)

    def _link(self, occ: Occurrence, person_id: str, now: datetime) -> str:
        token = make_token(self.runtime.link_key, occ.id or 0, person_id, now=now)
        return confirm_url(self.runtime.settings.base_url, token)

    async def _send_followups(self, session: AsyncSession, reminder: Reminder, occ: Occurrence,
                              exps: list[Owing], number: int, now: datetime) -> tuple[int, set[str]]:
        assert reminder.confirm is not None
        s = self.runtime.schedules
        base = self._context(reminder, occ, "followup", now)
        stage = f"followup:{number}"
        people = [self._person(e) for e in exps]
        nudged: set[str] = set()
        plans: list[Planned] = []
        queued = 0  # direct messages, queued one by one; the group plans go in one set below
        common = {"template": "followup", "title": reminder.title, "occurrence_id": occ.id, "stage": stage,
                  "now": now, "dry_run": self.runtime.settings.dry_run}
        groups = split_by_channel([p for p, _, _ in people], reminder.recipients.channels)
        for channel_id in reminder.recipients.channels:
            channel = s.channels.get(channel_id)
            if channel is None:
                continue
            here = [people[i] for i in groups[channel_id]]
            if not here:
                continue
            key = f"occ{occ.id}/{stage}/{channel_id}"
            code = reply_code(s, channel, occ.id)
            if channel.personal_links and reminder.confirm.link:
                for person, ctx, mention in here:
                    link = self._link(occ, mention.person_id, now)
                    direct = direct_channel(self.runtime, person)
                    if direct is not None:
                        queued += await self._direct(session, reminder, occ, base, direct, ctx, mention, link,
                                                     "followup", f"occ{occ.id}/{stage}/dm/{mention.person_id}",
                                                     stage, f"{reminder.title}·第{number}次催办·{mention.name}（私信）",
                                                     now)
                        continue
                    context = base | {"people": [ctx], "person": ctx, "unit": ctx["unit"],
                                      "confirm": {"required": True, "link": link, "code": code}}
                    plans.append(Planned(channel=channel, context=context, mentions=[mention], link=link,
                                         dedupe_key=f"{key}/{mention.person_id}",
                                         summary=f"{reminder.title}·第{number}次催办·{mention.name}", **common))
            else:
                context = base | {"people": [ctx for _, ctx, _ in here], "person": None, "unit": None,
                                  "confirm": {"required": True, "link": None, "code": code}}
                plans.append(Planned(channel=channel, context=context, mentions=[m for _, _, m in here],
                                     dedupe_key=f"{key}/group",
                                     summary=f"{reminder.title}·第{number}次催办（{len(here)}人）", **common))
            nudged.update(m.person_id for _, _, m in here)
        return queued + await queue_all(SessionWriter(session), self.runtime.renderer, plans), nudged

    async def _direct(self, session: AsyncSession, reminder: Reminder, occ: Occurrence, base: dict[str, Any],
                      direct: Any, ctx: dict[str, Any], mention: Mention, link: str, template: str, key: str,
                      stage: str, summary: str, now: datetime) -> int:
        """One person's own follow-up as a direct message, with their link, code and confirm button."""
        code = reply_code(self.runtime.schedules, direct, occ.id)
        context = base | {"people": [ctx], "person": ctx, "unit": ctx["unit"],
                          "confirm": {"required": True, "link": link, "code": code}}
        return await queue_message(
            session, self.runtime.renderer, channel=direct, template=template, title=reminder.title,
            context=context, mentions=[mention], link=link, dedupe_key=key, occurrence_id=occ.id, stage=stage,
            summary=summary, now=now, dry_run=self.runtime.settings.dry_run, confirm_button=True)

    def _leaders(self, reminder: Reminder, exp: Owing) -> list[str]:
        assert reminder.confirm is not None
        found: list[str] = []
        for target in reminder.confirm.escalate_to:
            for pid in exp.leader_ids if target == "unit_leaders" else [target]:
                if pid not in found and pid != exp.person_id:
                    found.append(pid)
        return found

    def _escalation_channels(self, reminder: Reminder, leader: Person, overdue: list[Owing]) -> list[str]:
        """The reminder's channels the leader is in; of those, the ones the overdue people share.

        A leader listed in no particular group is in all of them, and an escalation about one
        organ's branches does not belong in another organ's group chat.
        """
        s = self.runtime.schedules
        theirs = [c for c in reminder.recipients.channels if c in s.channels and members(s, [leader], c)]
        people = [s.people.get(e.person_id) for e in overdue]
        groups = split_by_channel(people, theirs)
        shared = [c for c in theirs if groups[c]]
        return shared or theirs

    async def _send_escalations(self, session: AsyncSession, reminder: Reminder, occ: Occurrence,
                                exps: list[Owing], number: int, now: datetime) -> tuple[int, set[str]]:
        s = self.runtime.schedules
        base = self._context(reminder, occ, "escalation", now)
        since = when_text(utc(occ.deadline_at), reminder.zone) if occ.deadline_at else ""
        stage = f"escalation:{number}"
        by_leader: dict[str, list[Owing]] = defaultdict(list)
        for exp in exps:
            for leader_id in self._leaders(reminder, exp):
                by_leader[leader_id].append(exp)
            if not self._leaders(reminder, exp):
                log.warning("%s：%s 已逾期，但没有可告知的分管领导", reminder.title, exp.person_name)
        queued, nudged = 0, set()
        for leader_id, overdue in by_leader.items():
            leader = s.people.get(leader_id)
            if leader is None:
                log.warning("%s：逾期告知对象 %s 不在人员名单中", reminder.title, leader_id)
                continue
            ctx = person_context(s, leader)
            rows = [{"name": e.person_name, "unit": e.unit_name, "since": since, "nudges": e.followups}
                    for e in overdue]
            context = base | {"people": [ctx], "person": ctx, "unit": ctx["unit"], "overdue": rows}
            direct = direct_channel(self.runtime, leader)
            if direct is not None:
                queued += await queue_message(
                    session, self.runtime.renderer, channel=direct, template="escalation",
                    title=reminder.title, context=context, mentions=[mention_for(leader)],
                    dedupe_key=f"occ{occ.id}/{stage}/dm/{leader_id}", occurrence_id=occ.id, stage=stage,
                    summary=f"{reminder.title}·逾期告知·{leader.name}（{len(rows)}人，私信）",
                    now=now, dry_run=self.runtime.settings.dry_run)
                nudged.update(e.person_id for e in overdue)
                continue
            channels = self._escalation_channels(reminder, leader, overdue)
            if not channels:
                log.warning("%s：领导 %s 不在本提醒的任何群中，逾期告知未发出", reminder.title, leader.name)
            for channel_id in channels:
                queued += await queue_message(
                    session, self.runtime.renderer, channel=s.channels[channel_id], template="escalation",
                    title=reminder.title, context=context, mentions=[mention_for(leader)],
                    dedupe_key=f"occ{occ.id}/{stage}/{channel_id}/{leader_id}", occurrence_id=occ.id,
                    stage=stage, summary=f"{reminder.title}·逾期告知·{leader.name}（{len(rows)}人）",
                        now=now, dry_run=self.runtime.settings.dry_run)
            if channels:
                nudged.update(e.person_id for e in overdue)
        return queued, nudged
