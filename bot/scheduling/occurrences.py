"""Firing: a Fire becomes an occurrence row, its expectations, and outbox rows. Idempotent.

The occurrence is unique per reminder and due time, and every outbox row has a dedupe key
(occurrence / stage / channel / person), so firing the same thing twice sends it once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.models import Person, Reminder
from bot.confirming.inbound import reply_code
from bot.confirming.tokens import confirm_url, make_token, make_view_token, view_url
from bot.delivery.compose import (
    Planned,
    due_context,
    members,
    mention_for,
    person_context,
    queue_all,
    reminder_context,
    when_text,
)
from bot.delivery.directs import direct_channel
from bot.delivery.outbox import insert_ignoring
from bot.reporting.chart import report_chart
from bot.reporting.reports import figures_for
from bot.runtime import Runtime
from bot.scheduling.stages import stage_words
from bot.scheduling.timing import Due, Fire
from bot.scheduling.workhours import WorkHours
from storage.models import Expectation, Occurrence, Outbox

log = logging.getLogger(__name__)
ANALYZE_AFTER = 5_000  # expectations written at once, after which PostgreSQL's statistics are refreshed
# (reminder, person or None for a group message, the occurrence's due time) -> template figures
LINK_PLACEHOLDER = "确认链接在真正发送时生成"  # what `preview` shows where a personal link will be
FiguresFor = Callable[[Reminder, Person | None, datetime], Awaitable[dict[str, Any] | None]]


def to_db(moment: datetime) -> datetime:
    """Aware datetime -> aware UTC, as stored."""
    return moment.astimezone(UTC)


def from_db(moment: datetime) -> datetime:
    """Stored times come back aware UTC; older rows or drivers may hand back naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def work_end(runtime: Runtime) -> time:
    """End of the last working window of the day (deadlines in working days end then)."""
    return WorkHours.parse(runtime.settings.work_hours).windows[-1][1]  # "…-24:00" ends at midnight


def deadline_for(runtime: Runtime, reminder: Reminder, due_at: datetime) -> datetime | None:
    if reminder.confirm is None:
        return None
    span = reminder.confirm.deadline
    if span.workdays:
        local = due_at.astimezone(reminder.zone)
        day = runtime.calendar.add_workdays(local.date(), span.workdays)
        return datetime.combine(day, work_end(runtime), tzinfo=reminder.zone)
    return due_at + span.delta


async def get_or_create_occurrence(session: AsyncSession, runtime: Runtime, reminder: Reminder,
                                   due: Due, *, dry_run: bool = False) -> Occurrence:
    """The occurrence of this due time, real or (``dry_run``) the rehearsal's own, made once."""
    due_db = to_db(due.due_at)
    query = select(Occurrence).where(Occurrence.reminder_id == reminder.id, Occurrence.due_at == due_db,
                                     Occurrence.dry_run == dry_run)
    found = (await session.exec(query)).first()
    if found is not None:
        return found
    deadline = deadline_for(runtime, reminder, due.due_at)
    occ = Occurrence(
        reminder_id=reminder.id, due_at=due_db, original_date=due.original_date, title=reminder.title,
        kind=reminder.kind, deadline_at=to_db(deadline) if deadline else None, provisional=due.provisional,
        dry_run=dry_run,
    )
    session.add(occ)
    try:
        await session.commit()
    except IntegrityError:  # another instance created it first
        await session.rollback()
        return (await session.exec(query)).one()
    await session.refresh(occ)
    return occ


def expected_people(runtime: Runtime, reminder: Reminder) -> list[Person]:
    if reminder.confirm is None:
        return []
    return runtime.schedules.select(reminder.confirm.who or reminder.recipients.mention)


async def snapshot_expectations(session: AsyncSession, runtime: Runtime, reminder: Reminder,
                                occ: Occurrence) -> None:
    """Record who owes a confirmation, as the YAML says now (later edits do not rewrite history).

    A rehearsal's expectations only show the admin who would owe: they carry no follow-up or
    escalation time, so no engine ever picks them up.
    """
    assert occ.id is not None
    existing = (await session.exec(select(Expectation.person_id).where(
        Expectation.occurrence_id == occ.id))).all()
    if existing or reminder.confirm is None:
        return
    s = runtime.schedules
    first_followup = None
    every = reminder.confirm.remind_every
    if occ.dry_run:
        every = None
    if every is not None and every.workdays:
        local = from_db(occ.due_at).astimezone(reminder.zone)
        day = runtime.calendar.add_workdays(local.date(), every.workdays)
        first_followup = to_db(datetime.combine(day, local.time(), tzinfo=reminder.zone))
    elif every is not None:
        first_followup = to_db(from_db(occ.due_at) + every.delta)
    escalation = None if occ.dry_run else occ.deadline_at
    rows = []
    for person in expected_people(runtime, reminder):
        unit = s.units.get(person.unit or "")
        rows.append({
            "occurrence_id": occ.id, "person_id": person.id, "person_name": person.name,
            "unit_id": unit.id if unit else None, "unit_name": unit.name if unit else None,
            "leader_ids": [p.id for p in s.leaders_of(person)],
            "next_followup_at": first_followup, "next_escalation_at": escalation,
            "followups": 0, "escalations": 0,
        })
    # set-based, ON CONFLICT DO NOTHING: another instance that recorded them first wins, nothing fails
    created = await insert_ignoring(session, Expectation.__table__, rows,  # type: ignore[attr-defined]
                                    ["occurrence_id", "person_id"], Expectation.__table__.c.id)  # type: ignore[attr-defined]
    await session.commit()
    if len(created) >= ANALYZE_AFTER and (await session.connection()).dialect.name == "postgresql":
        # Fresh statistics at once: until autovacuum comes by (a minute or more), PostgreSQL would plan
        # the board's and the follow-ups' joins over these rows as if there were a handful of them.
        await (await session.connection()).execute(text("ANALYZE expectation"))
        await session.commit()


def leader_url(runtime: Runtime, person_id: str, period: str | None = None) -> str:
    """A leader's own read-only page (``/l/<token>``), valid ``Settings.view_ttl_days``.

    ``period`` (``2026-Q3``, ``2026``, ``2026-11``): the brief's own period, which the page then
    shows (with the trend over periods of that kind); without it the page shows this month.
    """
    payload: list[str | int] = [person_id, period] if period else [person_id]
    token = make_view_token(runtime.link_key, "leader", payload, now=runtime.clock())
    return view_url(runtime.settings.base_url, "leader", token)


@dataclass
class FireResult:
    occurrence_id: int
    queued: int
    dry_run: bool = False  # the occurrence is a rehearsal's own


def report_figures(runtime: Runtime) -> FiguresFor:
    """Figures for reports and leaders' briefs, for the period before the occurrence's due time."""

    async def figures(reminder: Reminder, person: Person | None, at: datetime) -> dict[str, Any] | None:
        return await figures_for(runtime, reminder, person, at)

    return figures


async def fire(runtime: Runtime, fire: Fire, *, figures_for: FiguresFor | None = None,
               late: bool = False) -> FireResult:
    """Create the occurrence (once) and queue this fire's messages (once).

    With ``Settings.dry_run`` this is a rehearsal: it fires into its own occurrence row
    (``dry_run``), whose messages are recorded as never sendable, so nothing of it can become real.
    ``late``: the stage goes out after its time (catching up after downtime); the messages say
    补发 with the original time (``fire.fire_at``). Raises whatever the database or the
    templates raise; nothing is half-sent, since every write is idempotent and a retry completes it.
    """
    reminder = runtime.schedules.reminders[fire.reminder_id]
    figures_for = figures_for or report_figures(runtime)
    dry_run = runtime.settings.dry_run
    async with runtime.db.session() as session:
        occ = await get_or_create_occurrence(session, runtime, reminder, fire.due, dry_run=dry_run)
        if fire.stage == "due":
            await snapshot_expectations(session, runtime, reminder, occ)
        deadline = from_db(occ.deadline_at) if occ.deadline_at else None
        done = await queued_keys(session, occ.id or 0, fire.stage)
        plans = await plan_fire(runtime, reminder, fire, occ.id, deadline, figures_for, late=late, done=done)
        queued = 0
        now = runtime.clock()
        admin_id = runtime.schedules.service.admin_channel
        admin = runtime.schedules.channels.get(admin_id) if admin_id else None
        for plan in plans:
            plan.now, plan.dry_run, plan.admin = now, dry_run, admin
        queued += await queue_all(session, runtime.renderer, plans)
        if fire.stage == "due" and occ.fired_at is None:
            occ.fired_at = to_db(runtime.clock())
            session.add(occ)
        await session.commit()
    if queued:
        runtime.wake_dispatcher()
    log.info("%s（%s）已%s %d 条消息", reminder.title, stage_words(fire.stage), "演练" if dry_run else "排队", queued)
    assert occ.id is not None
    return FireResult(occ.id, queued, dry_run)


def lead_text(fire: Fire, zone: Any) -> str | None:
    """How far ahead this notice really goes out: a 3-day notice moved off a holiday says 4天."""
    lead = fire.lead
    if lead is None:
        return None
    if lead.workdays or lead.hours or lead.minutes:
        return lead.describe()
    days = (fire.due.due_at.astimezone(zone).date() - fire.fire_at.astimezone(zone).date()).days
    return f"{days}天"


def late_context(fire: Fire, zone: Any) -> dict[str, str]:
    """The template's ``late`` for a stage sent after its time: its original time, ``11月6日 09:00``."""
    local = fire.fire_at.astimezone(zone)
    return {"original": f"{local.month}月{local.day}日 {local:%H:%M}"}


async def queued_keys(session: AsyncSession, occurrence_id: int, stage: str) -> frozenset[str]:
    """The outbox keys (``…#<part>``) already written for this occurrence and stage: firing again
    (another instance, a catch-up after a restart) renders only what is missing."""
    t = Outbox.__table__  # type: ignore[attr-defined]
    stmt = select(t.c.dedupe_key).where(t.c.occurrence_id == occurrence_id, t.c.stage == stage)
    return frozenset((await session.exec(stmt)).all())  # type: ignore[call-overload]


def _reached(done: frozenset[str], *dedupe_keys: str) -> bool:
    """Whether this stage's personal message already went to the person by any route: as a direct
    message or in their channel (recorded-only ones too). An app added or removed between two fires
    of one occurrence changes the route, and so the key, but must not message the person again."""
    return any(f"{prefix}{k}#1" in done for k in dedupe_keys for prefix in ("", "dry/"))


def _first_key(runtime: Runtime, channel: Any, dedupe_key: str) -> str:
    """The first outbox row's key of a plan, as :func:`bot.delivery.outbox.outbox_rows` writes it."""
    dry = runtime.settings.dry_run or channel.dry_run
    return f"{'dry/' if dry else ''}{dedupe_key}#1"


async def plan_fire(runtime: Runtime, reminder: Reminder, fire: Fire, occurrence_id: int | None,
                    deadline: datetime | None, figures_for: FiguresFor | None = None, *,
                    late: bool = False, done: frozenset[str] = frozenset()) -> list[Planned]:
    """The messages of one fire, per channel: one per group, or one per person where personal.

    Without an occurrence (``preview``) there is nothing a link could confirm: personal links
    are shown as :data:`LINK_PLACEHOLDER`, never signed for a made-up id. ``done``: outbox keys
    already written (:func:`queued_keys`); a message whose first row is among them is left out
    (it was queued whole, in one transaction), so firing twice costs a query, not a rendering.
    """
    s = runtime.schedules
    zone = reminder.zone
    needs_confirm = reminder.confirm is not None and fire.stage == "due"
    base = {
        "reminder": reminder_context(reminder),
        "stage": "notice" if fire.stage.startswith("notice") else fire.stage,
        "lead": lead_text(fire, zone),
        "due": due_context(fire.due.due_at, zone, moved_from=fire.due.original_date,
                           holiday=fire.due.holiday_name, provisional=fire.due.provisional),
        "deadline": when_text(deadline, zone) if deadline else None,
        "confirm": {"required": reminder.confirm is not None, "link": None, "code": None},
        "figures": None,
        "late": late_context(fire, zone) if late else None,
    }
    mentioned = s.select(reminder.recipients.mention)
    expected = {p.id for p in expected_people(runtime, reminder)} if needs_confirm else set()
    key = f"occ{occurrence_id}/{fire.stage}"
    plans: list[Planned] = []
    group_chart: tuple[Any, Any, str | None] | None = None
    # Only a report, or a leader in charge of some unit, has figures: asking for everyone else
    # would scan the units once per person (a province's fire: 20,000 × 20,000).
    in_charge = {pid for unit in s.units.values() for pid in unit.leaders}

    async def person_figures(person: Person) -> dict[str, Any] | None:
        if figures_for is None or (reminder.kind != "report" and person.id not in in_charge):
            return None
        return await figures_for(reminder, person, fire.due.due_at)

    for channel_id in reminder.recipients.channels:
        channel = s.channels[channel_id]
        people = members(s, mentioned, channel_id)
        links = bool(needs_confirm and channel.personal_links and reminder.confirm and reminder.confirm.link)
        common = {"channel": channel, "template": reminder.template, "title": reminder.title,
                  "stage": fire.stage, "occurrence_id": occurrence_id}
        code = reply_code(s, channel, occurrence_id) if needs_confirm else None
        if reminder.recipients.per_person or links:
            for person in people:
                direct = direct_channel(runtime, person)
                if done and _reached(done, f"{key}/dm/{person.id}", f"{key}/{channel_id}/{person.id}"):
                    continue
                if direct is not None:  # a personal message: straight to the person through their app
                    plans.append(await _direct_plan(runtime, reminder, fire, base, direct, person, occurrence_id,
                                                    person.id in expected, figures_for, key))
                    continue
                link = None
                if links and person.id in expected:
                    link = LINK_PLACEHOLDER
                    if occurrence_id is not None:
                        token = make_token(runtime.link_key, occurrence_id, person.id)
                        link = confirm_url(runtime.settings.base_url, token)
                pc = person_context(s, person)
                figures = await person_figures(person)
                if figures is not None and channel.personal_links and s.units_overseen_by(person.id):
                    # personal: not in shared groups; the page shows the brief's own period
                    figures = figures | {"page": leader_url(runtime, person.id, figures.get("spec"))}
                picture, picture_url = await report_chart(runtime, reminder, person, fire.due.due_at, figures)
                ctx = base | {"people": [pc], "person": pc, "unit": pc["unit"],
                              "confirm": base["confirm"] | {"link": link, "code": code}, "figures": figures}
                plans.append(Planned(**common, context=ctx, mentions=[mention_for(person)], link=link,
                                     dedupe_key=f"{key}/{channel_id}/{person.id}",
                                     summary=f"{reminder.title}·{person.name}",
                                     picture=picture, picture_url=picture_url))
            continue
        if done and _first_key(runtime, channel, f"{key}/{channel_id}/group") in done:
            continue
        ctx = base | {"people": [person_context(s, p) for p in people], "person": None, "unit": None,
                      "confirm": base["confirm"] | {"code": code}}
        if figures_for and reminder.kind == "report":
            if group_chart is None:  # the same figures for every group channel: drawn once
                group_figures = await figures_for(reminder, None, fire.due.due_at)
                group_chart = (group_figures, *await report_chart(runtime, reminder, None, fire.due.due_at,
                                                                   group_figures))
            ctx["figures"] = group_chart[0]
        picture, picture_url = group_chart[1:] if group_chart is not None else (None, None)
        plans.append(Planned(**common, context=ctx, mentions=[mention_for(p) for p in people],
                             mention_all=reminder.recipients.mention.all,
                             dedupe_key=f"{key}/{channel_id}/group", summary=reminder.title,
                             picture=picture, picture_url=picture_url))
    return plans


async def _direct_plan(runtime: Runtime, reminder: Reminder, fire: Fire, base: dict[str, Any], direct: Any,
                       person: Person, occurrence_id: int | None, owes: bool, figures_for: FiguresFor | None,
                       key: str) -> Planned:
    """One person's message as a direct message: their own link and the confirm button when they owe one
    (a direct message is private, so the channel's ``personal_links`` does not matter)."""
    s = runtime.schedules
    link = None
    if owes and reminder.confirm is not None and reminder.confirm.link:
        link = LINK_PLACEHOLDER
        if occurrence_id is not None:
            link = confirm_url(runtime.settings.base_url, make_token(runtime.link_key, occurrence_id, person.id))
    pc = person_context(s, person)
    figures = await figures_for(reminder, person, fire.due.due_at) if figures_for else None
    code = reply_code(s, direct, occurrence_id) if owes else None
    ctx = base | {"people": [pc], "person": pc, "unit": pc["unit"],
                  "confirm": base["confirm"] | {"link": link, "code": code}, "figures": figures}
    return Planned(channel=direct, template=reminder.template, title=reminder.title, stage=fire.stage,
                   occurrence_id=occurrence_id, context=ctx, mentions=[mention_for(person)], link=link,
                   dedupe_key=f"{key}/dm/{person.id}", summary=f"{reminder.title}·{person.name}（私信）",
                   confirm_button=owes and occurrence_id is not None)


def due_from_date(runtime: Runtime, reminder: Reminder, day: date) -> Due | None:
    """The occurrence of a reminder on a given local date (for `preview`/`fire --date`)."""
    from bot.scheduling.timing import due_times

    zone = reminder.zone
    start = datetime.combine(day, time(0), tzinfo=zone)
    dues = due_times(reminder, runtime.calendar, start, start + timedelta(days=1))
    return dues[0] if dues else None
