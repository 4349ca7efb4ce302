"""Recording confirmations, and the board of who has confirmed an occurrence.

One function records a confirmation whatever brought it (a personal link, a chat reply, a card
button, an admin taking someone's word on the phone), so the rules live in one place: only a
person expected to confirm can, and confirming twice is harmless (the first one stands).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.confirming.board import (  # noqa: F401  (re-exported: pages and commands import them here)
    _UNSAFE_IN_NOTE,
    VIA_LABELS,
    Board,
    BoardRow,
    board_row,
    boards_of,
    owing_row,
    shown_note,
)
from storage import reads
from storage.db import Database
from storage.models import Confirmation, Expectation, Occurrence

if TYPE_CHECKING:
    import sqlite3

Via = Literal["link", "chat", "card", "admin"]
NOTE_MAX = 200  # characters; enough for "参加人数 23，缺席 2 人（出差）" and the like


class ConfirmationError(Exception):
    """A confirmation that cannot be recorded. The message is Chinese, for the person."""


class NotExpectedError(ConfirmationError):
    """The person owes no confirmation for this occurrence."""


class RehearsalError(ConfirmationError):
    """The occurrence is a dry run's: nobody owes it, so nothing can be confirmed."""

    def __init__(self) -> None:
        super().__init__("这是演练记录（未真正发送），不能登记确认")


def _column_is_aware() -> bool:
    return bool(getattr(Confirmation.__table__.c.confirmed_at.type, "timezone", False))  # type: ignore[attr-defined]


def to_db_time(moment: datetime) -> datetime:
    """A UTC time as the tables take it: aware when the columns keep time zones, else naive.

    The storage contract is UTC; whether the DateTime columns are zone-aware depends on the
    SQLModel version (newer ones refuse naive values), so follow the column type.
    """
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc if _column_is_aware() else utc.replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def clean_note(note: str | None) -> str | None:
    """Strip a note and drop its unsafe characters (:data:`_UNSAFE_IN_NOTE`; a lone CR is a line
    break); empty means none. Raises :class:`ConfirmationError` when it is too long. Every way a
    confirmation is recorded (link page, chat reply, 代为登记) passes its note through here."""
    if note is None:
        return None
    note = _UNSAFE_IN_NOTE.sub("", note.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(note) > NOTE_MAX:
        raise ConfirmationError(f"备注最多 {NOTE_MAX} 个字，现在有 {len(note)} 个字")
    return note or None


async def record_confirmation(
    db: Database,
    occurrence_id: int,
    person_id: str,
    *,
    via: Via,
    note: str | None = None,
    recorded_by: str | None = None,
    now: datetime,
    checked: bool = False,
) -> tuple[bool, Confirmation]:
    """Record that ``person_id`` confirmed ``occurrence_id``; return ``(created, confirmation)``.

    A dry run's occurrence raises :class:`RehearsalError`, however the confirmation came.

    A second confirmation returns the first one unchanged with ``created=False``; two racing
    requests both end there, because the unique constraint lets only one insert succeed.
    ``checked`` says the caller has just seen the expectation and no confirmation, so the
    insert goes straight in (the unique constraint still settles a race).
    """
    if via not in VIA_LABELS:
        raise ValueError(f"unknown confirmation channel {via!r}")
    if via == "admin" and not recorded_by:
        raise ConfirmationError("管理员代录时需要写明代录人")
    note = clean_note(note)
    async with db.session() as session:
        occurrence = await session.get(Occurrence, occurrence_id)
        if occurrence is not None and occurrence.dry_run:  # whatever the caller checked
            raise RehearsalError()
        if not checked:
            await _check_expected(session, occurrence_id, person_id)
            existing = await find_in(session, occurrence_id, person_id)
            if existing is not None:
                return False, existing
        row = Confirmation(
            occurrence_id=occurrence_id,
            person_id=person_id,
            confirmed_at=to_db_time(now),
            via=via,
            note=note,
            recorded_by=recorded_by,
        )
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            # Another request confirmed between our read and our insert: the first one stands.
            await session.rollback()
            winner = await find_in(session, occurrence_id, person_id)
            if winner is None:  # the conflict was something else; let it surface
                raise
            return False, winner
        from bot.metrics import CONFIRMATIONS  # not at import: `status` and `report` count nothing

        CONFIRMATIONS.labels(via).inc()
        return True, row  # expire_on_commit is off: the row keeps its values and id


# ---------------------------------------------------------------- the confirm page's hot path

OCC = Occurrence.__table__  # type: ignore[attr-defined]
EXP = Expectation.__table__  # type: ignore[attr-defined]
CONF = Confirmation.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ConfirmationView:
    """What a page shows of a confirmation (times as stored: UTC)."""

    confirmed_at: datetime
    via: str
    note: str | None
    recorded_by: str | None


@dataclass(frozen=True, slots=True)
class LinkView:
    """Everything a personal link's page needs, read in one statement (plain values, no ORM objects)."""

    id: int
    reminder_id: str
    title: str
    due_at: datetime
    original_date: Any
    provisional: bool
    deadline_at: datetime | None
    dry_run: bool
    expected: bool  # the person owes a confirmation for this occurrence
    person_name: str
    unit_name: str | None
    confirmation: ConfirmationView | None
    excuse_reason: str | None = None  # set when an admin excused the person (请假、出差…: "出差：赴省里开会")


_LINK_QUERY_COLUMNS = (OCC.c.id, OCC.c.reminder_id, OCC.c.title, OCC.c.due_at, OCC.c.original_date, OCC.c.provisional,
                       OCC.c.deadline_at, OCC.c.dry_run, EXP.c.id.label("expectation_id"), EXP.c.person_name,
                       EXP.c.unit_name, EXP.c.excused_at, EXP.c.excuse_reason,
                       CONF.c.confirmed_at, CONF.c.via, CONF.c.note, CONF.c.recorded_by)


_OCC_ID, _PERSON_ID = bindparam("occurrence_id"), bindparam("person_id")
# Built once: each request only binds its two values (no statement construction on the hot path).
_LINK_QUERY = (
    select(*_LINK_QUERY_COLUMNS)
    .select_from(OCC.outerjoin(EXP, and_(EXP.c.occurrence_id == OCC.c.id, EXP.c.person_id == _PERSON_ID))
                 .outerjoin(CONF, and_(CONF.c.occurrence_id == OCC.c.id, CONF.c.person_id == _PERSON_ID)))
    .where(OCC.c.id == _OCC_ID)
)
_INSERT_VALUES = {name: bindparam(name) for name in ("occurrence_id", "person_id", "confirmed_at", "via", "note")}


@cache
def _insert(dialect: str) -> Any:
    """The dialect's ``INSERT … ON CONFLICT DO NOTHING RETURNING id``, built once; on first use, so
    importing this module (every command that reads a board) does not import both dialects."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return (insert(CONF).values(**_INSERT_VALUES)
            .on_conflict_do_nothing(index_elements=["occurrence_id", "person_id"]).returning(CONF.c.id))


async def link_view(conn: AsyncConnection, occurrence_id: int, person_id: str) -> LinkView | None:
    """The occurrence, the person's expectation and confirmation, in one Core query; None: no occurrence."""
    row = (await conn.execute(_LINK_QUERY, {"occurrence_id": occurrence_id, "person_id": person_id})).first()
    return None if row is None else _link_view_of(row)


def _link_view_of(row: Any) -> LinkView:
    """A :class:`LinkView` from a row with :data:`_LINK_QUERY_COLUMNS`."""
    conf = (ConfirmationView(row.confirmed_at, row.via, shown_note(row.note), row.recorded_by)
            if row.confirmed_at is not None else None)
    return LinkView(row.id, row.reminder_id, row.title, row.due_at, row.original_date, bool(row.provisional),
                    row.deadline_at, bool(row.dry_run), row.expectation_id is not None, row.person_name or "",
                    row.unit_name, conf,
                    (row.excuse_reason or "已登记") if row.excused_at is not None else None)


@cache
def _confirm_once() -> Any:
    """PostgreSQL: :data:`_LINK_QUERY` and the ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` in one
    statement, the insert made only when the view read by the same statement allows it::

        WITH link_view AS (<the link query>),
             made AS (INSERT INTO confirmation (…) SELECT id, :person_id, … FROM link_view
                      WHERE expectation_id IS NOT NULL AND dry_run IS false AND confirmed_at IS NULL
                      ON CONFLICT (occurrence_id, person_id) DO NOTHING RETURNING id)
        SELECT link_view.*, (SELECT id FROM made) AS made_id FROM link_view

    Built once, on first use (SQLite has no INSERT in a WITH: it keeps the two statements)."""
    from sqlalchemy import false
    from sqlalchemy import select as core_select
    from sqlalchemy.dialects.postgresql import insert

    view = _LINK_QUERY.cte("link_view")
    chosen = core_select(view.c.id, bindparam("person_id", type_=CONF.c.person_id.type),
                         bindparam("confirmed_at", type_=CONF.c.confirmed_at.type),
                         bindparam("via", type_=CONF.c.via.type), bindparam("note", type_=CONF.c.note.type)
                         ).where(view.c.expectation_id.is_not(None), view.c.dry_run.is_(false()),
                                 view.c.confirmed_at.is_(None))
    made = (insert(CONF).from_select(["occurrence_id", "person_id", "confirmed_at", "via", "note"], chosen)
            .on_conflict_do_nothing(index_elements=["occurrence_id", "person_id"]).returning(CONF.c.id).cte("made"))
    return core_select(*view.c, core_select(made.c.id).scalar_subquery().label("made_id"))


async def confirm_once(conn: AsyncConnection, occurrence_id: int, person_id: str, *, via: Via,
                       note: str | None, now: datetime) -> tuple[LinkView | None, ConfirmationView | None]:
    """PostgreSQL only: :func:`link_view` and :func:`insert_confirmation` in one statement (one round
    trip; on an autocommit connection no BEGIN or COMMIT either). Returns the view as it was before
    the statement (None: no occurrence) and the new confirmation, made only when the person is
    expected, the occurrence is no rehearsal and the view shows no confirmation; None otherwise,
    also when another request confirmed in between (the unique constraint settles it: read again).
    Counts ``CONFIRMATIONS``. The caller has checked the note (:func:`clean_note`)."""
    at = to_db_time(now)
    values = {"occurrence_id": occurrence_id, "person_id": person_id, "confirmed_at": at, "via": via, "note": note}
    row = (await conn.execute(_confirm_once(), values)).first()
    if row is None:
        return None, None
    if row.made_id is None:
        return _link_view_of(row), None
    from bot.metrics import CONFIRMATIONS

    CONFIRMATIONS.labels(via).inc()
    return _link_view_of(row), ConfirmationView(at, via, note, None)


@dataclass(frozen=True, slots=True)
class _Plain:
    """A statement compiled once for SQLite, to run on the driver's own ``sqlite3`` connection: its
    SQL, its parameters' names in order with their bind processors, and its columns' result
    processors (SQLAlchemy's own, so values go in and come out as through the engine)."""

    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    results: tuple[Callable[[Any], Any] | None, ...]

    def args(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] if bind is None else bind(values[name]) for name, bind in self.binds)

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(value if result is None or value is None else result(value)
                     for result, value in zip(self.results, raw, strict=True))


def _plain(statement: Any, dialect: Any, columns: Iterable[Any]) -> _Plain:
    compiled = statement.compile(dialect=dialect)
    names = compiled.positiontup or ()
    binds = tuple((name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names)
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return _Plain(compiled.string, binds, results)


@dataclass(frozen=True, slots=True)
class _SqlitePlan:
    view: _Plain
    insert: _Plain
    row: Any  # a named tuple of :data:`_LINK_QUERY_COLUMNS`' names, for :func:`_link_view_of`
    expected: int  # positions in the view's row of what decides whether to insert
    dry_run: int
    confirmed_at: int


@cache
def _sqlite_plan(dialect: Any) -> _SqlitePlan:
    """The link query and the insert compiled for this SQLite dialect, once."""
    from collections import namedtuple

    names = list(_LINK_QUERY.selected_columns.keys())
    return _SqlitePlan(_plain(_LINK_QUERY, dialect, _LINK_QUERY.selected_columns),
                       _plain(_insert("sqlite"), dialect, [CONF.c.id]), namedtuple("LinkRow", names),
                       names.index("expectation_id"), names.index("dry_run"), names.index("confirmed_at"))


def _sqlite_confirm(conn: sqlite3.Connection, plan: _SqlitePlan, view_args: tuple[Any, ...],
                    insert_args: tuple[Any, ...] | None) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """Run on aiosqlite's thread: the link query, then (``insert_args`` given, the person expected, the
    occurrence no rehearsal, no confirmation yet) the ``INSERT … ON CONFLICT DO NOTHING RETURNING id``
    and the commit (so the connection must hold no transaction of its caller's: one checked out
    for this alone). Returns the view's row as read before the insert (read again when the insert
    found a confirmation made in between: the first one stands) and the insert's row (None: none
    made). Raw values: the caller applies the result processors."""
    row = conn.execute(plan.view.sql, view_args).fetchone()  # a read alone opens no transaction
    if (insert_args is None or row is None or row[plan.expected] is None or row[plan.dry_run]
            or row[plan.confirmed_at] is not None):
        return row, None
    try:
        made = conn.execute(plan.insert.sql, insert_args).fetchone()
        if made is None:
            row = conn.execute(plan.view.sql, view_args).fetchone()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return row, made


async def confirm_on_sqlite(conn: AsyncConnection, occurrence_id: int, person_id: str, *, via: Via,
                            note: str | None, now: datetime, record: bool = True,
                            ) -> tuple[LinkView | None, ConfirmationView | None] | None:
    """SQLite: :func:`link_view` and (``record``) :func:`insert_confirmation` as :func:`confirm_once`
    does them on PostgreSQL, in one hand-over to aiosqlite's thread instead of one per cursor step
    (nine for the query, the insert and the commit through the engine). The same statements and
    values, compiled by SQLAlchemy once. Returns the view (None: no occurrence) and the confirmation
    made (only for an expected person, no rehearsal and no earlier confirmation); None when the
    driver has no thread to hand work to (then use the engine). ``record=False`` reads the view
    alone (the page a GET shows). Counts ``CONFIRMATIONS``. The caller has checked the note
    (:func:`clean_note`) and holds ``conn`` for this alone (its own checkout, no transaction)."""
    driver = (await conn.get_raw_connection()).driver_connection
    run = getattr(driver, "_execute", None)  # aiosqlite: a function on its thread (as the outbox does)
    if run is None or not hasattr(type(driver), "_conn"):  # another driver, or aiosqlite's inside changed
        return None
    plan = _sqlite_plan(conn.dialect)
    at = to_db_time(now)
    values = {"occurrence_id": occurrence_id, "person_id": person_id, "confirmed_at": at, "via": via, "note": note}
    raw, made = await run(_sqlite_confirm, driver._conn, plan, plan.view.args(values),
                          plan.insert.args(values) if record else None)
    view = None if raw is None else _link_view_of(plan.row._make(plan.view.row(raw)))
    if made is None:
        return view, None
    from bot.metrics import CONFIRMATIONS

    CONFIRMATIONS.labels(via).inc()
    return view, ConfirmationView(at, via, note, None)


async def insert_confirmation(conn: AsyncConnection, occurrence_id: int, person_id: str, *, via: Via,
                              note: str | None, now: datetime) -> ConfirmationView | None:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING``: the new confirmation, or None when one was there.

    The caller has checked (in the same transaction) that the person is expected and the
    occurrence is real; the unique constraint settles a race. Counts ``CONFIRMATIONS``.
    """
    at = to_db_time(now)
    values = {"occurrence_id": occurrence_id, "person_id": person_id, "confirmed_at": at, "via": via, "note": note}
    if (await conn.execute(_insert(conn.dialect.name), values)).first() is None:
        return None
    from bot.metrics import CONFIRMATIONS

    CONFIRMATIONS.labels(via).inc()
    return ConfirmationView(at, via, note, None)


async def _check_expected(session: AsyncSession, occurrence_id: int, person_id: str) -> None:
    expected = await session.exec(
            select(Expectation.id).where(
                Expectation.occurrence_id == occurrence_id, Expectation.person_id == person_id
            )
        )
    if expected.first() is None:
        raise NotExpectedError("此人不在本次提醒的确认名单中，无法记录确认")


async def find_in(session: AsyncSession, occurrence_id: int, person_id: str) -> Confirmation | None:
    result = await session.exec(
        select(Confirmation).where(
            Confirmation.occurrence_id == occurrence_id, Confirmation.person_id == person_id
        )
    )
    return result.first()


async def find_confirmation(db: Database, occurrence_id: int, person_id: str) -> Confirmation | None:
    async with db.session() as session:
        return await find_in(session, occurrence_id, person_id)


# ---------------------------------------------------------------- the board


async def board(db: Database, occurrence_id: int, now: datetime) -> Board:
    """Who owes a confirmation for the occurrence, who gave it (when, how, note), who is late."""
    boards = await boards_for(db, [occurrence_id], now)
    if not boards:
        raise LookupError(f"occurrence {occurrence_id} does not exist")
    return boards[0]


async def boards_for(db: Database, occurrence_ids: Iterable[int], now: datetime) -> list[Board]:
    """Boards of several occurrences (the admin list and reports need many): the occurrences, then
    their rows in two queries (``storage.reads.BOARD_ROWS``, the text ``remindbot status`` reads)."""
    ids = list(occurrence_ids)
    if not ids:
        return []
    async with db.session() as session:
        occs = (await session.exec(select(Occurrence).where(col(Occurrence.id).in_(ids)))).all()
    order = {oid: i for i, oid in enumerate(ids)}
    async with reads.engine_reader(db.engine) as reader:
        return await boards_of(reader, sorted(occs, key=lambda o: order[o.id or 0]), now)
