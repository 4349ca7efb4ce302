"""Calendar feeds (RFC 5545, built with ``icalendar``): what a person or a unit is reminded of.

A person's feed holds every enabled reminder that mentions them or asks them to confirm; a
unit's feed those that concern anyone in the unit or its sub-units. Each coming occurrence,
after holiday moves (a skipped one is left out), is a ``VEVENT`` at its due time in the
reminder's zone (with ``VTIMEZONE``), one hour long, whose text gives the confirmation
deadline. Dates in a year whose holidays are not announced yet carry the mark 临时 in the
summary. An occurrence that already fired and is still open stays in the feed until its
deadline, and a person's feed links to its personal confirm page when they owe one.

Times: ``now`` is aware UTC; events are written in each reminder's zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

from icalendar import Calendar, Event
from sqlalchemy import exists
from sqlmodel import col, select

from bot.config.models import Person, Reminder
from bot.confirming.tokens import confirm_url, make_token
from bot.delivery.compose import date_text, when_text
from bot.runtime import Runtime
from bot.scheduling.occurrences import deadline_for, expected_people
from bot.scheduling.timing import Due, due_times
from storage.models import Confirmation, Expectation, Occurrence

FEED_DAYS = 400  # how far ahead a feed reaches
OPEN_LOOKBACK_DAYS = 60  # fired occurrences still open (deadline ahead) stay this long at most
EVENT_LENGTH = timedelta(hours=1)
PRODID = "-//remindbot//党建工作提醒//ZH"
Scope = Literal["person", "unit"]


def concerned(runtime: Runtime, reminder: Reminder) -> list[Person]:
    """Everyone a reminder is for: those mentioned and those who must confirm."""
    people = {p.id: p for p in runtime.schedules.select(reminder.recipients.mention)}
    people.update({p.id: p for p in expected_people(runtime, reminder)})
    return list(people.values())


def reminders_for(runtime: Runtime, scope: Scope, target: str) -> list[Reminder]:
    """Enabled reminders that concern a person (``target`` = person id) or a unit (unit id)."""
    s = runtime.schedules

    def hit(person: Person) -> bool:
        if scope == "person":
            return person.id == target
        return any(u.id == target for u in s.unit_chain(person.unit))

    return [r for r in s.reminders.values() if r.enabled and any(hit(p) for p in concerned(runtime, r))]


async def _open_occurrences(runtime: Runtime, reminder_ids: Iterable[str],
                            start: datetime) -> dict[tuple[str, datetime], Occurrence]:
    """Real occurrences due since ``start``, keyed by (reminder, due time UTC)."""
    query = select(Occurrence).where(col(Occurrence.reminder_id).in_(list(reminder_ids)),
                                     col(Occurrence.dry_run).is_(False),
                                     col(Occurrence.due_at) >= start.astimezone(UTC))
    async with runtime.db.session() as session:
        rows = (await session.exec(query)).all()
    return {(o.reminder_id, _utc(o.due_at)): o for o in rows}


async def _states(runtime: Runtime, person_id: str, occurrence_ids: list[int]) -> dict[int, str]:
    """Occurrence id -> the person's state in it: ``owed`` (on the list, not confirmed by any way,
    not excused), ``confirmed`` or ``excused``; occurrences they are not on the list of are absent."""
    confirmed = exists().where(Confirmation.occurrence_id == Expectation.occurrence_id,
                               Confirmation.person_id == Expectation.person_id)
    query = select(Expectation.occurrence_id, Expectation.excused_at, confirmed.label("confirmed")).where(
        col(Expectation.person_id) == person_id, col(Expectation.occurrence_id).in_(occurrence_ids))
    async with runtime.db.session() as session:
        rows = (await session.exec(query)).all()  # type: ignore[call-overload]
    return {occ_id: "confirmed" if done else "excused" if excused_at is not None else "owed"
            for occ_id, excused_at, done in rows}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _uid(reminder: Reminder, due: Due) -> str:
    return f"{reminder.id}-{due.due_at.astimezone(UTC):%Y%m%dT%H%M%SZ}@remindbot"


STATE_LINES = {"confirmed": "已确认，无需再确认。", "excused": "已登记免于确认（请假、出差等），无需确认。"}


def _description(reminder: Reminder, due: Due, deadline: datetime | None, link: str | None,
                 state: str | None = None) -> str:
    lines = [f"时间：{when_text(due.due_at, reminder.zone)}"]
    if due.original_date is not None:
        lines.append(f"原定 {date_text(due.original_date)}{'，适逢' + due.holiday_name if due.holiday_name else ''}，"
                     "已按规定调整。")
    if deadline is not None:
        lines.append(f"确认截止：{when_text(deadline.astimezone(reminder.zone), reminder.zone)}")
    if due.provisional:
        lines.append("临时：该年份的节假日安排尚未公布，日期按常规推算，公布后可能调整。")
    if link:
        lines.append(f"确认链接：{link}")
    elif state in STATE_LINES:
        lines.append(STATE_LINES[state])
    elif reminder.confirm is not None and state is None:
        lines.append("确认方式：提醒发出后，按消息中的链接或群内回复确认。")
    if reminder.note:
        lines.append(reminder.note.strip())
    return "\n".join(lines)


async def build_feed(runtime: Runtime, scope: Scope, target: str, name: str, now: datetime) -> bytes:
    """The feed as iCalendar bytes (CRLF lines, folded at 75 octets by ``icalendar``)."""
    reminders = reminders_for(runtime, scope, target)
    start = now - timedelta(days=OPEN_LOOKBACK_DAYS)
    end = now + timedelta(days=FEED_DAYS)
    fired = await _open_occurrences(runtime, [r.id for r in reminders], start)
    states = await _states(runtime, target, [o.id for o in fired.values() if o.id]) if scope == "person" else {}
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"党建工作提醒 · {name}")
    cal.add("x-wr-timezone", "Asia/Shanghai")
    for reminder in reminders:
        dues = due_times(reminder, runtime.calendar, start, end)
        scheduled = {d.due_at.astimezone(UTC) for d in dues}
        # Fired but no longer on the schedule (fired by hand, or the YAML changed since): still open.
        dues += [_due_of(o, reminder) for (rid, at), o in fired.items() if rid == reminder.id and at not in scheduled]
        for due in sorted(dues, key=lambda d: d.due_at):
            occ = fired.get((reminder.id, due.due_at.astimezone(UTC)))
            deadline = _utc(occ.deadline_at) if occ and occ.deadline_at else deadline_for(runtime, reminder, due.due_at)
            if due.due_at < now and (occ is None or deadline is None or deadline < now):
                continue  # past and closed: not "coming"
            link, state = None, states.get(occ.id or 0) if occ is not None else None
            if state == "owed" and occ is not None:
                link = confirm_url(runtime.settings.base_url, make_token(runtime.link_key, occ.id or 0, target))
            cal.add_component(_event(reminder, due, deadline, link, now, state))
    cal.add_missing_timezones()
    return cal.to_ical()


def _due_of(occ: Occurrence, reminder: Reminder) -> Due:
    """A fired occurrence as a :class:`Due` (its stored due time, in the reminder's zone)."""
    return Due(reminder.id, _utc(occ.due_at).astimezone(reminder.zone), occ.original_date, False,
               occ.provisional, None)


def _event(reminder: Reminder, due: Due, deadline: datetime | None, link: str | None, now: datetime,
           state: str | None = None) -> Event:
    event = Event()
    event.add("uid", _uid(reminder, due))
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", due.due_at)
    event.add("dtend", due.due_at + EVENT_LENGTH)
    event.add("summary", f"{reminder.title}{'（临时）' if due.provisional else ''}")
    event.add("description", _description(reminder, due, deadline, link, state))
    if due.provisional:
        event.add("categories", ["临时"])
    if link:
        event.add("url", link)
    return event
