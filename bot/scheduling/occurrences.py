"""Firing: a Fire becomes an occurrence row, its expectations, and outbox rows. Idempotent.

The occurrence is unique per reminder and due time, and every outbox row has a dedupe key
(occurrence / stage / channel / person), so firing the same thing twice sends it once. What the
messages are is planned in :mod:`bot.scheduling.planning` (no database there); its names are
re-exported here, where they lived before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from bot.config.gcpause import no_gc
from bot.config.models import Reminder
from bot.delivery.compose import queue_all
from bot.runtime import Runtime
from bot.scheduling.datewords import ahead_line, when_text
from bot.scheduling.planning import LINK_PLACEHOLDER as LINK_PLACEHOLDER
from bot.scheduling.planning import FiguresFor, deadline_for, expected_people, from_db, plan_fire, report_figures, to_db
from bot.scheduling.planning import late_context as late_context
from bot.scheduling.planning import lead_text as lead_text
from bot.scheduling.planning import leader_url as leader_url
from bot.scheduling.planning import work_end as work_end
from bot.scheduling.stages import stage_words
from bot.scheduling.timing import Due, Fire
from storage.reads import moment

if TYPE_CHECKING:
    from storage.writes import Writer

log = logging.getLogger(__name__)
ANALYZE_AFTER = 5_000  # expectations written at once, after which PostgreSQL's statistics are refreshed

# The firing path's statements, one text each, valid on SQLite and PostgreSQL, run through a
# ``storage.writes.Writer``: ``sqlite3`` for a command on a SQLite file (no SQLAlchemy imported), a
# session's connection (``text()``) for the service and PostgreSQL.
_OCCURRENCE_COLUMNS = "id, reminder_id, due_at, deadline_at, fired_at, dry_run, fired_by"
FIND_OCCURRENCE = f"""SELECT {_OCCURRENCE_COLUMNS} FROM occurrence
WHERE reminder_id = :reminder_id AND due_at = :due_at AND dry_run = :dry_run"""
# The columns' Python-side defaults (created_at) given as the model's; a row another instance made first wins.
ADD_OCCURRENCE = """INSERT INTO occurrence (reminder_id, due_at, original_date, title, kind, deadline_at, provisional,
  created_at, dry_run)
VALUES (:reminder_id, :due_at, :original_date, :title, :kind, :deadline_at, :provisional, :created_at, :dry_run)
ON CONFLICT (reminder_id, due_at, dry_run) DO NOTHING"""
REAL_FIRED_AT = ("SELECT fired_at, fired_by FROM occurrence"
                 " WHERE reminder_id = :reminder_id AND due_at = :due_at AND dry_run = false")
ANY_EXPECTATION = "SELECT id FROM expectation WHERE occurrence_id = :occurrence_id LIMIT 1"
QUEUED_KEYS = "SELECT dedupe_key FROM outbox WHERE occurrence_id = :occurrence_id AND stage = :stage"
MARK_FIRED = "UPDATE occurrence SET fired_at = :fired_at, fired_by = :fired_by WHERE id = :id"


class Occurrence(NamedTuple):
    """An occurrence's row, as the firing path reads it (times aware UTC)."""

    id: int
    reminder_id: str
    due_at: datetime
    deadline_at: datetime | None
    fired_at: datetime | None
    dry_run: bool
    fired_by: str | None = None  # who fired the day message by hand (``remindbot fire``), when recorded


def _occurrence(row: tuple[Any, ...]) -> Occurrence:
    occ_id, reminder_id, due_at, deadline_at, fired_at, dry_run, fired_by = row
    return Occurrence(occ_id, reminder_id, moment(due_at), moment(deadline_at), moment(fired_at),  # type: ignore[arg-type]
                      bool(dry_run), fired_by)


async def get_or_create_occurrence(writer: Writer, runtime: Runtime, reminder: Reminder,
                                   due: Due, *, dry_run: bool = False) -> Occurrence:
    """The occurrence of this due time, real or (``dry_run``) the rehearsal's own, made once (committed)."""
    key = {"reminder_id": reminder.id, "due_at": to_db(due.due_at), "dry_run": dry_run}
    found = await writer.rows(FIND_OCCURRENCE, key)
    if found:
        return _occurrence(found[0])
    deadline = deadline_for(runtime, reminder, due.due_at)
    await writer.execute(ADD_OCCURRENCE, {
        **key, "original_date": due.original_date, "title": reminder.title, "kind": reminder.kind,
        "deadline_at": to_db(deadline) if deadline else None, "provisional": due.provisional,
        "created_at": datetime.now(UTC)})
    await writer.commit()
    [row] = await writer.rows(FIND_OCCURRENCE, key)
    return _occurrence(row)


async def snapshot_expectations(writer: Writer, runtime: Runtime, reminder: Reminder,
                                occ: Occurrence) -> None:
    """Record who owes a confirmation, as the YAML says now (later edits do not rewrite history).

    A rehearsal's expectations only show the admin who would owe: they carry no follow-up or
    escalation time, so no engine ever picks them up.
    """
    if reminder.confirm is None:
        return
    if await writer.rows(ANY_EXPECTATION, {"occurrence_id": occ.id}):  # one row tells: recorded already
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
    people = expected_people(runtime, reminder)
    # What each unit's rows say, found once per unit (from the index: no unit or leader model built):
    # its name (None: no such unit) and leaders; the units of one walk up (a bureau's branches) share
    # one list of leaders, which the insert serialises once.
    units = [p.unit for p in people]
    facts = s.unit_facts(units)
    of_row = list(map(facts.__getitem__, units))
    names = [f[0] for f in of_row]
    places = s.unit_places()
    last = len(places)  # no unit (or one the schedules do not know): after every unit
    each = {  # a column at a time: no dict per row
        "person_id": [p.id for p in people], "person_name": [p.name for p in people],
              "unit_id": [u if name is not None else None for u, name in zip(units, names, strict=True)],
              "unit_name": names, "leader_ids": [f[1] for f in of_row],
              "unit_order": [places.get(u, last) if u is not None and name is not None else last
                             for u, name in zip(units, names, strict=True)]}
    same = {"occurrence_id": occ.id, "next_followup_at": first_followup, "next_escalation_at": escalation,
            "followups": 0, "escalations": 0}
    # set-based, ON CONFLICT DO NOTHING: another instance that recorded them first wins, nothing fails.
    # Only PostgreSQL reads back what was written (how many, for its statistics below): SQLite's
    # RETURNING of 20,000 ids cost 15 ms.
    postgres = writer.dialect == "postgresql"
    created = await writer.insert_ignoring("expectation", each, same, ["occurrence_id", "person_id"],
                                           "id" if postgres else None)
    await writer.commit()
    if postgres and len(created) >= ANALYZE_AFTER:
        # Fresh statistics at once: until autovacuum comes by (a minute or more), PostgreSQL would plan
        # the board's and the follow-ups' joins over these rows as if there were a handful of them.
        await writer.execute("ANALYZE expectation")
        await writer.commit()


@dataclass
class FireResult:
    occurrence_id: int
    queued: int
    dry_run: bool = False  # the occurrence is a rehearsal's own
    # When the real occurrence's day message had already been queued before this fire (``fire --date``
    # ahead of the day): a notice then queues nothing, and the day's own stage has nothing left to send.
    fired_before: datetime | None = None
    fired_before_by: str | None = None  # who fired it then (``remindbot fire``: the OS user), if recorded


async def fire(runtime: Runtime, fire: Fire, *, figures_for: FiguresFor | None = None,
               late: bool = False, by_hand: bool = False, fired_by: str | None = None) -> FireResult:
    """Create the occurrence (once) and queue this fire's messages (once).

    With ``Settings.dry_run`` this is a rehearsal: it fires into its own occurrence row
    (``dry_run``), whose messages are recorded as never sendable, so nothing of it can become real.
    ``late``: the stage goes out after its time (catching up after downtime); the messages say
    补发 with the original time (``fire.fire_at``); ``by_hand``: an admin fires it on another day than
    its own, said as such (补发, or 提前发送 before its time). ``fired_by``: who fires it (``remindbot
    fire``: the OS user), recorded with the day message's time, so a stage skipped later names them.
    Raises whatever the database or the templates raise; nothing is half-sent, since every write is
    idempotent and a retry completes it.
    """
    reminder = runtime.schedules.reminders[fire.reminder_id]
    figures_for = figures_for or report_figures(runtime)
    dry_run = runtime.settings.dry_run
    # The collector paused: a province's fire makes 10⁵ short-lived dicts and no cycles, and each of its
    # full collections would walk the whole heap (the schedules included) again.
    with no_gc():
        return await _fire(runtime, reminder, fire, figures_for, late=late, by_hand=by_hand, dry_run=dry_run,
                           fired_by=fired_by)


async def _fire(runtime: Runtime, reminder: Reminder, fire: Fire, figures_for: FiguresFor, *,
                late: bool, by_hand: bool, dry_run: bool, fired_by: str | None) -> FireResult:
    async with writing(runtime) as writer:
        occ = await get_or_create_occurrence(writer, runtime, reminder, fire.due, dry_run=dry_run)
        fired_before, before_by = await real_fired_at(writer, occ)
        if fired_before is not None and fire.stage.startswith("notice:"):
            # Announcing a day whose message already went out would @ people who already confirmed.
            log.info("%s（%s）已跳过：这次提醒%s", reminder.title, stage_words(fire.stage),
                     ahead_line(when_text(fired_before, reminder.zone), before_by, fire.stage))
            return FireResult(occ.id, 0, dry_run, fired_before, before_by)
        if fire.stage == "due":
            await snapshot_expectations(writer, runtime, reminder, occ)
        deadline = occ.deadline_at
        done = await queued_keys(writer, occ.id, fire.stage)
        plans = await plan_fire(runtime, reminder, fire, occ.id, deadline, figures_for, late=late, by_hand=by_hand,
                                done=done)
        queued = 0
        now = runtime.clock()
        admin_id = runtime.schedules.service.admin_channel
        admin = runtime.schedules.channels.get(admin_id) if admin_id else None
        for plan in plans:
            plan.now, plan.dry_run, plan.admin = now, dry_run, admin
        queued += await queue_all(writer, runtime.renderer, plans)
        if fire.stage == "due" and occ.fired_at is None:
            await writer.execute(MARK_FIRED, {"fired_at": to_db(runtime.clock()), "fired_by": fired_by, "id": occ.id})
        await writer.commit()
    if queued:
        runtime.wake_dispatcher()
    log.info("%s（%s）已%s %d 条消息", reminder.title, stage_words(fire.stage), "演练" if dry_run else "排队", queued)
    return FireResult(occ.id, queued, dry_run, fired_before, before_by)


@asynccontextmanager
async def writing(runtime: Runtime) -> AsyncIterator[Writer]:
    """The runtime's own writer (``runtime.writer``: a command on a SQLite file), else a session's
    (rolled back on leaving when not committed, as the session is)."""
    if runtime.writer is not None:
        try:
            yield runtime.writer
        except BaseException:
            await runtime.writer.rollback()
            raise
        return
    from bot.delivery.outbox import SessionWriter

    async with runtime.db.session() as session:
        yield SessionWriter(session)


async def real_fired_at(writer: Writer, occ: Occurrence) -> tuple[datetime | None, str | None]:
    """When the real occurrence of ``occ``'s due time had its day message queued (None: not yet), and
    who fired it by hand (None: the service, or not recorded).

    A rehearsal asks the real row too: it shows what the real pass would do, and its own
    ``fired_at`` (a dry run's) must never stand for the real message having gone out."""
    if not occ.dry_run:
        return occ.fired_at, occ.fired_by
    found = await writer.rows(REAL_FIRED_AT, {"reminder_id": occ.reminder_id, "due_at": occ.due_at})
    return (moment(found[0][0]), found[0][1]) if found else (None, None)


async def queued_keys(writer: Writer, occurrence_id: int, stage: str) -> frozenset[str]:
    """The outbox keys (``…#<part>``) already written for this occurrence and stage: firing again
    (another instance, a catch-up after a restart) renders only what is missing."""
    return frozenset(r[0] for r in await writer.rows(QUEUED_KEYS, {"occurrence_id": occurrence_id, "stage": stage}))


def due_from_date(runtime: Runtime, reminder: Reminder, day: date) -> Due | None:
    """The occurrence of a reminder on a given local date (for `preview`/`fire --date`)."""
    from bot.scheduling.timing import due_times

    zone = reminder.zone
    start = datetime.combine(day, time(0), tzinfo=zone)
    dues = due_times(reminder, runtime.calendar, start, start + timedelta(days=1))
    return dues[0] if dues else None
