"""Planning a fire: which messages go to which channel, with what context. Reads no database.

``remindbot preview`` prints these plans; :func:`bot.scheduling.occurrences.fire` writes them to the
outbox. Kept apart from the writing so that a preview imports neither SQLAlchemy nor the outbox: the
database is opened only when a message needs figures from it (a report, a leader's brief).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from typing import Any

from bot.config.models import Person, Reminder
from bot.confirming.codes import reply_code
from bot.confirming.tokens import confirm_url, make_token, make_view_token, view_url
from bot.delivery.compose import (
    Planned,
    due_context,
    members,
    mention_for,
    person_context,
    reminder_context,
    when_text,
)
from bot.delivery.directs import direct_channel
from bot.runtime import Runtime
from bot.scheduling.timing import Fire
from bot.scheduling.workhours import WorkHours

LINK_PLACEHOLDER = "确认链接在真正发送时生成"  # what `preview` shows where a personal link will be
# (reminder, person or None for a group message, the occurrence's due time) -> template figures
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


def expected_people(runtime: Runtime, reminder: Reminder) -> list[Person]:
    if reminder.confirm is None:
        return []
    return runtime.schedules.select(reminder.confirm.who or reminder.recipients.mention)


def leader_url(runtime: Runtime, person_id: str, period: str | None = None, *, base: str | None = None) -> str:
    """A leader's own read-only page (``/l/<token>``), valid ``Settings.view_ttl_days``.

    ``period`` (``2026-Q3``, ``2026``, ``2026-11``): the brief's own period, which the page then
    shows (with the trend over periods of that kind); without it the page shows this month.
    ``base``: the base URL, when not the settings' (a command building links for the running service).
    """
    payload: list[str | int] = [person_id, period] if period else [person_id]
    token = make_view_token(runtime.link_key, "leader", payload, now=runtime.clock())
    return view_url(base or runtime.settings.base_url, "leader", token)


def report_figures(runtime: Runtime) -> FiguresFor:
    """Figures for reports and leaders' briefs, for the period before the occurrence's due time."""

    async def figures(reminder: Reminder, person: Person | None, at: datetime) -> dict[str, Any] | None:
        from bot.reporting.reports import figures_for  # the database's figures: only when a message has some

        await runtime.ensure_database()  # a preview opens it only now
        return await figures_for(runtime, reminder, person, at)

    return figures


def lead_text(fire: Fire, zone: Any) -> str | None:
    """How far ahead this notice really goes out: a 3-day notice moved off a holiday says 4天."""
    lead = fire.lead
    if lead is None:
        return None
    if lead.workdays or lead.hours or lead.minutes:
        return lead.describe()
    days = (fire.due.due_at.astimezone(zone).date() - fire.fire_at.astimezone(zone).date()).days
    return f"{days}天"


LATE_WORDS = {  # the template's ``late.label`` and ``late.why``, by how the stage came to go out at another time
    "downtime": ("补发", "因服务中断延后补发"),  # the service catching up after an outage
    "by_hand": ("补发", "由管理员手动补发"),  # `remindbot fire` of a day already past
    "early": ("提前发送", "由管理员提前发出"),  # `remindbot fire` of a day still to come
}


def late_context(fire: Fire, zone: Any, *, by_hand: bool = False, now: datetime | None = None) -> dict[str, str]:
    """The template's ``late`` for a stage sent at another time than its own: its original time,
    ``11月6日 09:00``, with the line's ``label`` and ``why`` (:data:`LATE_WORDS`). ``by_hand``: an admin
    fired it on another day (``remindbot fire --date``), before its time when ``now`` is earlier."""
    local = fire.fire_at.astimezone(zone)
    kind = "downtime" if not by_hand else "early" if now is not None and now < fire.fire_at else "by_hand"
    label, why = LATE_WORDS[kind]
    return {"original": f"{local.month}月{local.day}日 {local:%H:%M}", "label": label, "why": why}


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
                    late: bool = False, by_hand: bool = False,
                    done: frozenset[str] = frozenset()) -> list[Planned]:
    """The messages of one fire, per channel: one per group, or one per person where personal.

    Without an occurrence (``preview``) there is nothing a link could confirm: personal links
    are shown as :data:`LINK_PLACEHOLDER`, never signed for a made-up id. ``done``: outbox keys
    already written (:func:`queued_keys`); a message whose first row is among them is left out
    (it was queued whole, in one transaction), so firing twice costs a query, not a rendering.
    ``late``: the service sends the stage after its time (downtime); ``by_hand``: an admin fires it on
    another day than its own; either way the messages carry the template's ``late`` line.
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
        "late": late_context(fire, zone, by_hand=by_hand, now=runtime.clock()) if late or by_hand else None,
    }
    mentioned = s.select(reminder.recipients.mention)
    unit_names = s.unit_names()
    expected = {p.id for p in expected_people(runtime, reminder)} if needs_confirm else set()
    key = f"occ{occurrence_id}/{fire.stage}"
    plans: list[Planned] = []
    group_chart: tuple[Any, Any, str | None] | None = None
    # Only a report, or a leader in charge of some unit, has figures: asking for everyone else
    # would scan the units once per person (a province's fire: 20,000 × 20,000).
    in_charge = s.leaders_in_charge()

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
                pc = person_context(s, person, unit_names)
                figures = await person_figures(person)
                if figures is not None and channel.personal_links and s.units_overseen_by(person.id):
                    # personal: not in shared groups; the page shows the brief's own period
                    figures = figures | {"page": leader_url(runtime, person.id, figures.get("spec"))}
                picture, picture_url = await _chart(runtime, reminder, person, fire.due.due_at, figures)
                ctx = base | {"people": [pc], "person": pc, "unit": pc["unit"],
                              "confirm": base["confirm"] | {"link": link, "code": code}, "figures": figures}
                plans.append(Planned(**common, context=ctx, mentions=[mention_for(person)], link=link,
                                     dedupe_key=f"{key}/{channel_id}/{person.id}",
                                     summary=f"{reminder.title}·{person.name}",
                                     picture=picture, picture_url=picture_url))
            continue
        if done and _first_key(runtime, channel, f"{key}/{channel_id}/group") in done:
            continue
        ctx = base | {"people": [person_context(s, p, unit_names) for p in people], "person": None, "unit": None,
                      "confirm": base["confirm"] | {"code": code}}
        if figures_for and reminder.kind == "report":
            if group_chart is None:  # the same figures for every group channel: drawn once
                group_figures = await figures_for(reminder, None, fire.due.due_at)
                group_chart = (group_figures, *await _chart(runtime, reminder, None, fire.due.due_at,
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


async def _chart(runtime: Runtime, reminder: Reminder, person: Person | None, due_at: datetime,
                 figures: dict[str, Any] | None) -> tuple[Any, str | None]:
    """:func:`bot.reporting.chart.report_chart`, imported only when there are figures to draw."""
    if not figures:
        return None, None
    from bot.reporting.chart import report_chart

    return await report_chart(runtime, reminder, person, due_at, figures)
