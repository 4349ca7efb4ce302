"""Read queries shared by the CLI's hot commands and the pages: one SQL text each, two executors.

Each query below is written once, valid on SQLite and PostgreSQL (named ``:params``; ``false`` and
``true`` for booleans, SQLite 3.23+). :func:`sqlite_reader` runs it through the standard library's
``sqlite3`` on a SQLite file, read-only, without importing SQLAlchemy, SQLModel or the table models
(their import is ~0.6 s, half of ``report`` on a province); :func:`engine_reader` runs it through
SQLAlchemy ``text()`` on the service's engine (PostgreSQL, the pages). The executors adapt what
differs: SQLite keeps SQLAlchemy's ``DateTime`` as ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text (so a time
is bound as that text, which compares in time order, and read back with :func:`moment`) and its ``Date``
as ISO text (a date is bound so), PostgreSQL as ``timestamptz`` and ``date``; a list parameter
(``IN (:ids)``) is expanded to one parameter per item.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

FIRED_AHEAD_LIMIT = 10_000  # occurrences read at most (a window of 3660 days of every reminder)

# The real occurrences due in [start, end) whose day message already went out (``fire --date``).
FIRED_AHEAD = """
SELECT reminder_id, due_at, fired_at, {fired_by} FROM occurrence
WHERE dry_run = false AND fired_at IS NOT NULL AND due_at >= :start AND due_at < :end
LIMIT :limit"""
# Whether the occurrence table has 0009's fired_by: ``upcoming`` reads a database the new code has not
# migrated yet (read only, before the service restarts) and still marks what went out ahead there.
HAS_FIRED_BY = {
    "sqlite": "SELECT count(*) FROM pragma_table_info('occurrence') WHERE name = 'fired_by'",
    "postgresql": "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema()"
                  " AND table_name = 'occurrence' AND column_name = 'fired_by'",
}


class Reader(Protocol):
    """Runs one of this module's SQL texts; rows as tuples."""

    dialect: str  # "sqlite" or "postgresql"

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (``sqlite:///rel.db``, ``sqlite+aiosqlite:////abs/bot.db``);
    None for another database or an in-memory one."""
    scheme, _, rest = url.partition("://")
    if not scheme.lower().startswith("sqlite") or not rest.startswith("/"):
        return None
    name = rest[1:].partition("?")[0]
    return Path(name) if name and name != ":memory:" else None


def is_sqlite(url: str) -> bool:
    return url.partition("://")[0].lower().startswith("sqlite")


def db_text(moment: datetime) -> str:
    """A time as SQLAlchemy's ``DateTime`` keeps it on SQLite: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{aware:%Y-%m-%d %H:%M:%S.%f}"


def moment(value: Any) -> datetime | None:
    """A time read by either executor (SQLite's text, PostgreSQL's datetime) as aware UTC."""
    if value is None:
        return None
    found = datetime.fromisoformat(value) if isinstance(value, str) else value
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def bound(sql: str, params: Mapping[str, Any], dialect: str) -> tuple[str, dict[str, Any]]:
    """``sql`` and ``params`` as ``dialect`` takes them: lists expanded (``:ids`` -> ``:ids_0, :ids_1``,
    an empty one -> ``NULL``, which matches nothing), times and dates as text on SQLite (times as
    SQLAlchemy's ``DateTime`` text, dates ISO as its ``Date``: sqlite3's own date adapter is deprecated)."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            names = [f"{name}_{i}" for i in range(len(items))]
            sql = re.sub(rf":{name}\b", ", ".join(f":{n}" for n in names) or "NULL", sql)
            out.update(zip(names, items, strict=True))
        else:
            out[name] = value
    if dialect == "sqlite":
        out = {k: sqlite_value(v) for k, v in out.items()}
    return sql, out


def sqlite_value(value: Any) -> Any:
    """A parameter as SQLite keeps it: a time as :func:`db_text`, a date ISO (``datetime`` is a ``date``)."""
    if isinstance(value, datetime):
        return db_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class _Sqlite:
    """:class:`Reader` over a SQLite file opened read-only through ``sqlite3`` (blocking: a command's
    one task; the service reads through its engine)."""

    dialect = "sqlite"

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        text, values = bound(sql, params, self.dialect)
        return self.connection.execute(text, values).fetchall()


class _Engine:
    """:class:`Reader` over a SQLAlchemy ``AsyncConnection`` (``text()``)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        query, values = bound(sql, params, self.dialect)
        return [tuple(r) for r in (await self.connection.execute(text(query), values)).all()]


@asynccontextmanager
async def sqlite_reader(path: Path) -> AsyncIterator[Reader]:
    """A read-only :class:`Reader` on the SQLite file ``path`` (never created: ``sqlite3.OperationalError``
    when it does not exist)."""
    connection = _read_only(path)
    try:
        yield _Sqlite(connection)
    finally:
        connection.close()


def _read_only(path: Path) -> Any:
    import sqlite3

    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def connection_reader(connection: Any) -> Reader:
    """A :class:`Reader` on an open SQLAlchemy ``AsyncConnection`` (a session's, the engine's)."""
    return _Engine(connection)


@asynccontextmanager
async def engine_reader(engine: Any) -> AsyncIterator[Reader]:
    """A :class:`Reader` on a connection of the SQLAlchemy ``AsyncEngine`` ``engine``."""
    async with engine.connect() as connection:
        yield _Engine(connection)


# ---------------------------------------------------------------- queries


class FiredAhead(NamedTuple):
    """When an occurrence's day message went out, and who fired it by hand (None: not recorded)."""

    at: datetime
    by: str | None = None


async def fired_ahead(reader: Reader, start: datetime, end: datetime,
                      limit: int) -> dict[tuple[str, datetime], FiredAhead]:
    """(reminder id, due time in UTC) -> when its day message went and who fired it, for the real
    occurrences due in [start, end) fired ahead of their day (at most ``limit``)."""
    by = "fired_by" if await _has_fired_by(reader) else "NULL"
    found = await reader.rows(FIRED_AHEAD.format(fired_by=by), {"start": start, "end": end, "limit": limit})
    return {(rid, moment(due)): FiredAhead(moment(at), who) for rid, due, at, who in found}  # type: ignore[misc]


async def _has_fired_by(reader: Reader) -> bool:
    sql = HAS_FIRED_BY.get(reader.dialect)
    return sql is not None and bool((await reader.rows(sql, {}))[0][0])


# ---------------------------------------------------------------- which occurrences


class Occurrences(NamedTuple):
    """Which occurrences a figure covers: a subquery of their ids, and its parameters."""

    sql: str
    params: dict[str, Any]


def in_period(start: datetime, end: datetime, reminders: Sequence[str] | None = None) -> Occurrences:
    """The real occurrences (rehearsals never count) due in [start, end), of these reminders or all."""
    sql = "SELECT id FROM occurrence WHERE due_at >= :start AND due_at < :end AND dry_run = false"
    params: dict[str, Any] = {"start": start, "end": end}
    if reminders is not None:
        sql += " AND reminder_id IN (:reminders)"
        params["reminders"] = list(reminders)
    return Occurrences(sql, params)


def listed(ids: Sequence[int]) -> Occurrences:
    """These occurrences (a board's one, a page's few)."""
    return Occurrences("SELECT id FROM occurrence WHERE id IN (:occurrences)", {"occurrences": list(ids)})


def rehearsals(start: datetime, end: datetime, reminders: Sequence[str] | None = None) -> Occurrences:
    """The dry-run occurrences due in [start, end): left out of every figure, but counted for the report."""
    real = in_period(start, end, reminders)
    return Occurrences(real.sql.replace("dry_run = false", "dry_run = true"), real.params)


# ---------------------------------------------------------------- figures (bot.reporting.figures)

# The owed confirmations as ``bot.reporting.figures.tally`` counts them, over an expectation ``e``, its
# occurrence ``o`` and its confirmation ``c`` (outer-joined): an excused person who did not confirm is only
# ``excused``; on time means at or before the occurrence's deadline, or no deadline; ``pending``: missing
# and the deadline still ahead of ``:now``. The one definition of these rules in SQL: the texts below and
# the pages' SQLAlchemy statements (``bot.reporting.reports._owed_sums``) both sum these conditions.
OWED = {
    "on_time": "c.person_id IS NOT NULL AND (o.deadline_at IS NULL OR c.confirmed_at <= o.deadline_at)",
    "late": "c.person_id IS NOT NULL AND o.deadline_at IS NOT NULL AND c.confirmed_at > o.deadline_at",
    "missing": "c.person_id IS NULL AND e.excused_at IS NULL",
    "pending": "c.person_id IS NULL AND e.excused_at IS NULL AND (o.deadline_at IS NULL OR o.deadline_at > :now)",
    "excused": "c.person_id IS NULL AND e.excused_at IS NOT NULL",
}
OWED_FROM = """expectation e JOIN occurrence o ON o.id = e.occurrence_id
LEFT OUTER JOIN confirmation c ON c.occurrence_id = e.occurrence_id AND c.person_id = e.person_id"""
_SUMS = ",\n  ".join(f"sum(CASE WHEN {rule} THEN 1 ELSE 0 END) AS {name}" for name, rule in OWED.items())

# A unit's place in the admins' order (``expectation.unit_order``) where none was recorded (rows fired
# before migration 0008): after every unit that has one; those then follow by name.
NO_PLACE = 2_147_483_647

# Per snapshot unit, the owed confirmations summed by :data:`OWED`, and the unit's place in the admins'
# order (the first, should the period's occurrences have recorded several; None: none recorded).
UNIT_COUNTS = f"""
SELECT e.unit_id, max(e.unit_name) AS unit_name,
  {_SUMS},
  min(e.unit_order) AS unit_order
FROM {OWED_FROM}
WHERE e.occurrence_id IN ({{occurrences}}){{units}}
GROUP BY e.unit_id"""

# The follow-up rounds (催办) of the occurrences, each with the unit of the person it was for.
NUDGE_ROUNDS = """
SELECT n.occurrence_id, n.person_id, n.number, e.unit_id FROM nudge n
JOIN expectation e ON e.occurrence_id = n.occurrence_id AND e.person_id = n.person_id
WHERE n.occurrence_id IN ({occurrences}) AND n.kind = 'followup'{units}"""

# Follow-up messages that went or wait to go. A personal one names its person in its dedupe key
# (``…/<person>#<part>``); a group one (``…/group#<part>``, or a key without a part) its mentions,
# of which only the list travels (``->``: JSON on PostgreSQL, JSON text on SQLite 3.38+), not the body.
_FOLLOWUPS = ("FROM outbox WHERE occurrence_id IN ({occurrences}) AND stage LIKE 'followup:%'"
              " AND status IN ('sent', 'pending') AND ")
_GROUP = "(dedupe_key LIKE '%/group#%' OR dedupe_key NOT LIKE '%#%')"
PERSONAL_FOLLOWUPS = f"SELECT occurrence_id, stage, dedupe_key {_FOLLOWUPS}NOT {_GROUP}"
GROUP_FOLLOWUPS = f"SELECT occurrence_id, stage, body -> 'mentions' {_FOLLOWUPS}{_GROUP}"

COUNT = "SELECT count(*) FROM occurrence WHERE id IN ({occurrences})"

# Stages settled with these outcomes whose time fell in [start, end), newest first.
SETTLED = """
SELECT d.reminder_id, d.stage, d.fire_at, d.status, d.last_error, d.grace_seconds, d.lateness_seconds, {fired_by},
       o.fired_at
FROM due_stage d LEFT JOIN occurrence o ON o.id = d.occurrence_id
WHERE d.status IN (:statuses) AND d.fire_at >= :start{end}{reminders}
ORDER BY d.fire_at DESC LIMIT :limit"""


def _units(column: str, units: Sequence[str | None] | None, params: dict[str, Any]) -> str:
    """A condition keeping rows of these units (None: no unit recorded), or none at all."""
    if units is None:
        return ""
    params["units"] = [u for u in units if u is not None]
    return f" AND ({column} IN (:units){f' OR {column} IS NULL' if None in units else ''})"


async def unit_counts(reader: Reader, occurrences: Occurrences, now: datetime,
                      units: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
    """``unit_id, unit_name, on_time, late, missing, pending, excused, unit_order`` per snapshot unit
    (:data:`UNIT_COUNTS`)."""
    params = {**occurrences.params, "now": now}
    sql = UNIT_COUNTS.format(occurrences=occurrences.sql, units=_units("e.unit_id", units, params))
    return await reader.rows(sql, params)


async def nudge_rounds(reader: Reader, occurrences: Occurrences,
                       units: Sequence[str | None] | None = None) -> list[tuple[Any, ...]]:
    """``occurrence_id, person_id, number, unit_id`` of each follow-up round (:data:`NUDGE_ROUNDS`)."""
    params = dict(occurrences.params)
    sql = NUDGE_ROUNDS.format(occurrences=occurrences.sql, units=_units("e.unit_id", units, params))
    return await reader.rows(sql, params)


async def reached(reader: Reader, occurrences: Occurrences) -> set[tuple[int | None, str, str]]:
    """(occurrence, ``followup:N`` stage, person) of every follow-up message that went or is waiting to go."""
    import json

    found: set[tuple[int | None, str, str]] = set()
    for occ_id, stage, key in await reader.rows(PERSONAL_FOLLOWUPS.format(occurrences=occurrences.sql),
                                                occurrences.params):
        found.add((occ_id, stage, key.rsplit("/", 1)[-1].partition("#")[0]))
    for occ_id, stage, mentions in await reader.rows(GROUP_FOLLOWUPS.format(occurrences=occurrences.sql),
                                                     occurrences.params):
        listed = json.loads(mentions) if isinstance(mentions, str | bytes) else mentions
        people = {m.get("person_id") for m in listed or [] if isinstance(m, dict)}
        found.update((occ_id, stage, p) for p in people if p)
    return found


async def count(reader: Reader, occurrences: Occurrences) -> int:
    """How many occurrences ``occurrences`` selects."""
    [(n,)] = await reader.rows(COUNT.format(occurrences=occurrences.sql), occurrences.params)
    return int(n)


class Settled(NamedTuple):
    """One settled stage (``due_stage``), as ``bot.scheduling.stagelines`` words it."""

    reminder_id: str
    stage: str
    fire_at: datetime
    status: str
    last_error: str | None
    grace_seconds: int | None
    lateness_seconds: float | None
    fired_by: str | None = None  # a skipped stage's: who fired its occurrence ahead (``remindbot fire``), if recorded
    fired_at: datetime | None = None  # when its occurrence's day message went out (a skipped one's: ahead)


async def settled(reader: Reader, statuses: Sequence[str], start: datetime, end: datetime | None = None, *,
                  reminders: Sequence[str] = (), limit: int = 200) -> list[Settled]:
    """Stages with these outcomes whose time fell in [start, end) (no ``end``: since ``start``), newest
    first (:data:`SETTLED`); a skipped stage with who fired its occurrence ahead (a database not yet
    migrated to 0009 has no one to name)."""
    params: dict[str, Any] = {"statuses": list(statuses), "start": start, "limit": limit}
    if end is not None:
        params["end"] = end
    if reminders:
        params["reminders"] = list(reminders)
    named = "skipped" in statuses and await _has_fired_by(reader)
    sql = SETTLED.format(end=" AND d.fire_at < :end" if end is not None else "",
                         reminders=" AND d.reminder_id IN (:reminders)" if reminders else "",
                         fired_by="o.fired_by" if named else "NULL")
    return [Settled(rid, stage, moment(at), status, error, grace, late, by, moment(fired))  # type: ignore[arg-type]
            for rid, stage, at, status, error, grace, late, by, fired in await reader.rows(sql, params)]


def at_head(path: Path) -> bool:
    """Whether the SQLite file ``path`` exists and has the newest schema (``storage.revisions``): then it
    can be read as is; otherwise the migrating way opens it (and creates or upgrades it)."""
    import sqlite3

    from storage.revisions import cheap_head

    newest = cheap_head()
    if newest is None or not path.is_file():
        return False
    try:
        connection = _read_only(path)
        try:
            found = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return [r[0] for r in found] == [newest]


# ---------------------------------------------------------------- boards (bot.confirming.board, remindbot status)

# A board's rows: who owes (in the board's order: the unit's place in the admins' order, then as fired;
# rows fired before migration 0008 have no place: unit id, then as fired), and the confirmations given.
BOARD_EXPECTATIONS = """
SELECT occurrence_id, person_id, person_name, unit_id, unit_name, excused_at, excused_by, excuse_reason, unit_order
FROM expectation WHERE occurrence_id IN (:occurrences) ORDER BY unit_order, unit_id, id"""
BOARD_CONFIRMATIONS = """
SELECT occurrence_id, person_id, confirmed_at, via, note, recorded_by
FROM confirmation WHERE occurrence_id IN (:occurrences)"""

# Occurrences with people owing a confirmation, as ``remindbot status`` chooses them.
_OCCURRENCE = ("SELECT id, reminder_id, due_at, title, deadline_at, dry_run, fired_at, fired_by FROM occurrence o"
               " WHERE EXISTS (SELECT 1 FROM expectation e WHERE e.occurrence_id = o.id)")
LATEST_OCCURRENCE = f"{_OCCURRENCE} AND reminder_id = :reminder AND dry_run = :dry_run ORDER BY due_at DESC LIMIT 1"
OCCURRENCES_DUE = (f"{_OCCURRENCE} AND due_at >= :start AND due_at < :end{{reminder}}"
                   " ORDER BY dry_run, due_at, reminder_id")
OCCURRENCES_AT = f"{_OCCURRENCE} AND reminder_id = :reminder AND due_at = :due ORDER BY dry_run"


class OccurrenceRow(NamedTuple):
    """The fields of an occurrence a board and ``status`` show (``storage.models.Occurrence``'s names)."""

    id: int
    reminder_id: str
    due_at: datetime
    title: str
    deadline_at: datetime | None
    dry_run: bool
    fired_at: datetime | None = None  # when its day message went out (before ``due_at``: fired ahead)
    fired_by: str | None = None  # who fired it by hand (``remindbot fire``), when recorded (since 0009)


def _occurrences(rows: list[tuple[Any, ...]]) -> list[OccurrenceRow]:
    return [OccurrenceRow(i, rid, moment(due), title, moment(deadline), bool(dry), moment(fired), by)  # type: ignore[arg-type]
            for i, rid, due, title, deadline, dry, fired, by in rows]


async def board_rows(reader: Reader, occurrence_ids: Sequence[int]) -> tuple[list[tuple[Any, ...]],
                                                                              list[tuple[Any, ...]]]:
    """The expectations (:data:`BOARD_EXPECTATIONS`) and confirmations of these occurrences, as read."""
    params = {"occurrences": list(occurrence_ids)}
    return await reader.rows(BOARD_EXPECTATIONS, params), await reader.rows(BOARD_CONFIRMATIONS, params)


async def latest_occurrence(reader: Reader, reminder_id: str, dry_run: bool) -> OccurrenceRow | None:
    """The reminder's latest real occurrence (or rehearsal) with people owing, if any."""
    found = _occurrences(await reader.rows(LATEST_OCCURRENCE, {"reminder": reminder_id, "dry_run": dry_run}))
    return found[0] if found else None


async def occurrences_due(reader: Reader, start: datetime, end: datetime,
                          reminder_id: str | None = None) -> list[OccurrenceRow]:
    """Occurrences with people owing due in [start, end): real ones first, then by due time and reminder."""
    params: dict[str, Any] = {"start": start, "end": end}
    if reminder_id is not None:
        params["reminder"] = reminder_id
    sql = OCCURRENCES_DUE.format(reminder=" AND reminder_id = :reminder" if reminder_id is not None else "")
    return _occurrences(await reader.rows(sql, params))


async def occurrences_at(reader: Reader, reminder_id: str, due: datetime) -> list[OccurrenceRow]:
    """The reminder's occurrences with people owing due at ``due``: the real one first."""
    return _occurrences(await reader.rows(OCCURRENCES_AT, {"reminder": reminder_id, "due": due}))
