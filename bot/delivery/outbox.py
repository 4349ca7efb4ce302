"""The outbox: messages written before they are sent, leased to one sender, marked once.

Same code on SQLite and PostgreSQL. Firing twice sends once: every row has a unique dedupe key
and is inserted with ``ON CONFLICT DO NOTHING``. The dispatcher takes rows robot by robot through
lanes (:mod:`bot.delivery.lanes`), which set ``lease_owner``; :func:`claim` leases single rows (``UPDATE …
WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) AND lease is free RETURNING``). Only the lease
owner can mark a row, so a sender whose lane was taken over cannot overwrite the new owner's result.

Writes are batched (:func:`record`, :class:`ResultWriter`): in-flight marks (``sending_since``),
results with their :class:`DeliveryAttempt` rows, robots' send times and lanes let go, in one
transaction; one statement per kind for the common cases. The dispatcher's common batch (marks, plain
successes and the lanes they leave empty) is one statement on PostgreSQL (data-modifying CTEs) and one hand-over to
aiosqlite's thread on SQLite, on a connection the writer keeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import String, and_, bindparam, event, func, insert, literal, or_, select, text, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.rows import (  # noqa: F401  (their home before bot.delivery.rows; imported from here)
    ANY_PENDING,
    RECORDED_ONLY,
    Columns,
    RecordedOnly,
    count_recorded,
    outbox_rows,
    robot_key,
    take_uncounted,
)
from bot.delivery.rows import insert_rows as _insert_rows
from bot.platforms.base import ChannelBase
from storage.db import Database, dialect_insert
from storage.models import DeliveryAttempt, Outbox, RobotLane
from storage.reads import bound
from storage.writes import INSERT_BATCH, insert_batches

log = logging.getLogger(__name__)

PENDING, SENT, DEAD, DRY_RUN = "pending", "sent", "dead", "dry_run"
T = Outbox.__table__  # type: ignore[attr-defined]
LANE = RobotLane.__table__  # type: ignore[attr-defined]
A = DeliveryAttempt.__table__  # type: ignore[attr-defined]


async def enqueue(
    session: AsyncSession,
    *,
    dedupe_key: str,
    channel: ChannelBase,
    platform: str,
    bodies: list[dict[str, Any]],
    occurrence_id: int | None = None,
    stage: str,
    summary: str,
    now: datetime | None = None,
    dry_run: bool = False,
) -> int:
    """Write one row per body (key ``<dedupe_key>#<part>``); rows already there are skipped.

    Returns how many rows were created. Does not commit: the caller's transaction decides, so
    an occurrence and its messages are written together. A dry run is recorded as such at once
    (the dispatcher never sends it) under its own keys, so it never blocks the real message.
    """
    rows = outbox_rows(dedupe_key=dedupe_key, channel=channel, platform=platform, bodies=bodies,
                       occurrence_id=occurrence_id, stage=stage, summary=summary, now=now, dry_run=dry_run)
    return len(await insert_rows(session, rows))


_RECORDED_KEY = "remindbot.recorded_only"  # a session's record-only counts, until its commit


async def insert_rows(session: AsyncSession, rows: Sequence[dict[str, Any]], *,
                      rehearsal: bool = False) -> set[str]:
    """:func:`bot.delivery.rows.insert_rows` in a session's transaction."""
    return await _insert_rows(SessionWriter(session), rows, rehearsal=rehearsal)


@event.listens_for(Session, "after_commit")
def _count_recorded(session: Session) -> None:
    counts: Counter[tuple[str, str]] | None = session.info.pop(_RECORDED_KEY, None)
    if counts:
        count_recorded(counts)


@event.listens_for(Session, "after_rollback")
def _forget_recorded(session: Session) -> None:
    session.info.pop(_RECORDED_KEY, None)


Rows = Sequence[dict[str, Any]] | Columns


def _names(rows: Rows) -> list[str]:
    return rows.names() if isinstance(rows, Columns) else list(rows[0])


async def insert_ignoring(session: AsyncSession, table: Any, rows: Rows,
                          conflict: list[str], returning: Any) -> set[Any]:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING RETURNING returning`` in batches; the values returned.

    One multi-row statement per :data:`INSERT_BATCH` rows, the same on SQLite and PostgreSQL
    (their dialects' ``insert``). ``rows``: dicts with the same keys, or :class:`Columns`. ``returning``
    None: no ``RETURNING`` (nothing to read back), and the empty set. Does not commit.
    """
    if not rows:
        return set()
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and _unnest_fits(table, _names(rows)):
        return await _insert_unnest(connection, table, rows, conflict, returning)
    if connection.dialect.name == "sqlite" and _unnest_fits(table, _names(rows)):
        return await _insert_values(connection, table, rows, conflict, returning)
    if isinstance(rows, Columns):
        rows = rows.rows()
    stmt = dialect_insert(connection.dialect.name)(table).on_conflict_do_nothing(index_elements=conflict)
    if returning is not None:
        stmt = stmt.returning(returning)
    created: set[Any] = set()
    for start in range(0, len(rows), INSERT_BATCH):
        # executemany with RETURNING: SQLAlchemy's "insertmanyvalues" sends one multi-row statement
        result = await connection.execute(stmt, list(rows[start:start + INSERT_BATCH]))
        if returning is not None:
            created.update(result.scalars().all())
    return created


async def insert_all(session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` every row (all with the same keys) in the caller's transaction; no conflict expected.

    On PostgreSQL one ``unnest`` statement (as :func:`insert_ignoring`), else an executemany. Does not commit.
    """
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and _unnest_fits(table, list(rows[0])):
        await _insert_unnest(connection, table, rows, None, None)
        return
    await connection.execute(insert(table), list(rows))


def _unnest_fits(table: Any, names: list[str]) -> bool:
    """Whether :func:`_insert_unnest` can write rows with these columns: every column with a
    Python-side default is given (the driver-level statement does not apply SQLAlchemy defaults)."""
    return all(c.name in names for c in table.c if c.default is not None) and all(k in table.c for k in names)


async def _insert_unnest(connection: AsyncConnection, table: Any, rows: Rows,
                         conflict: list[str] | None, returning: Any) -> set[Any]:
    """PostgreSQL: every row in one statement, one round trip, whatever their number::

        INSERT INTO t (a, b, …) SELECT * FROM unnest($1::a_type[], $2::b_type[], …)
        [ON CONFLICT (…) DO NOTHING] [RETURNING …]

    Each column travels as one array parameter (asyncpg encodes it), so there is no per-row SQL
    text or parameter bookkeeping. Values go through the columns' own bind processing (JSON
    serialised, times checked aware) as SQLAlchemy would, on the session's connection and
    transaction (the same ``search_path``).
    """
    dialect = connection.dialect
    names, arrays = _processed_columns(dialect, table, rows)
    columns = [table.c[name] for name in names]
    casts = ", ".join(f"${i}::{column.type.compile(dialect=dialect)}[]" for i, column in enumerate(columns, start=1))
    quote = dialect.identifier_preparer.quote
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) SELECT * FROM unnest({casts})"
    if conflict is not None:
        sql += f" ON CONFLICT ({', '.join(quote(n) for n in conflict)}) DO NOTHING"
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection  # asyncpg's
    assert driver is not None
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement: make it, so these rows
        # are written in the caller's transaction (committed or rolled back with the rest).
        await connection.execute(select(literal(1)))
    if returning is None:
        await driver.execute(sql, *arrays)
        return set()
    records = await driver.fetch(f"{sql} RETURNING {quote(returning.name)}", *arrays)
    process_result = returning.type.result_processor(dialect, None)
    return {process_result(r[0]) if process_result else r[0] for r in records}


def _processed_columns(dialect: Any, table: Any, rows: Rows, *,
                       dialect_types: bool = False) -> tuple[list[str], list[list[Any]]]:
    """The rows' column names and, per column, its values through the column's own bind processing
    (JSON serialised, times checked aware), as SQLAlchemy would process each parameter; one value
    object shared by rows (a batch's times, the same list of leaders, a :class:`Columns`' ``same``)
    is processed once.
    ``dialect_types``: through the dialect's own implementation of each type, as a statement executed
    by SQLAlchemy is (SQLite writes times as text in its own format: the generic type has no processor
    for them)."""
    if isinstance(rows, Columns):
        each, same = rows.each, rows.same
    else:
        each, same = {name: [row[name] for row in rows] for name in rows[0]}, {}
    count = len(rows)
    names = [*each, *same]
    arrays: list[list[Any]] = []
    for name in names:
        kind = table.c[name].type
        process = (kind.dialect_impl(dialect) if dialect_types else kind).bind_processor(dialect)
        if name in same:
            value = same[name]
            arrays.append([process(value) if process is not None else value] * count)
            continue
        values = each[name]
        if process is None:
            arrays.append(values)
        elif all(v is values[0] for v in values):
            arrays.append([process(values[0])] * len(values))
        else:  # one value object shared by many rows (the leaders of a unit) is processed once
            done: dict[int, Any] = {}
            arrays.append([done[key] if (key := id(v)) in done else done.setdefault(key, process(v))
                           for v in values])
    return names, arrays


async def _insert_values(connection: AsyncConnection, table: Any, rows: Rows,
                         conflict: list[str], returning: Any) -> set[Any]:
    """SQLite: what SQLAlchemy's "insertmanyvalues" sends (one ``INSERT … VALUES (…), (…) … ON CONFLICT
    (…) DO NOTHING RETURNING …`` per batch), with the values processed a column at a time
    (:func:`_processed_columns`) instead of parameter by parameter: a province's 20,000 expectations
    spent more in that bookkeeping than in SQLite. Runs on the caller's connection and transaction
    (``exec_driver_sql``)."""
    dialect = connection.dialect
    names, arrays = _processed_columns(dialect, table, rows, dialect_types=True)
    quote = dialect.identifier_preparer.quote
    process_result = None
    if returning is not None:
        process_result = returning.type.dialect_impl(dialect).result_processor(dialect, None)
    created: set[Any] = set()
    for sql, params in insert_batches(quote(table.name), [quote(n) for n in names], arrays,
                                      [quote(n) for n in conflict],
                                      quote(returning.name) if returning is not None else None):
        result = await connection.exec_driver_sql(sql, params)
        if returning is not None:
            created.update(process_result(r[0]) if process_result else r[0] for r in result.fetchall())
    return created


def _due(now: datetime) -> Any:
    """Pending, due, lease free, and no earlier message of the same robot is waiting to retry.

    The last condition keeps a robot's messages in order across restarts: while its first
    message waits for a retry, the ones after it wait too.
    """
    waiting = select(T.c.robot).where(T.c.status == PENDING, T.c.next_attempt_at > now)
    return and_(
        Outbox.status == PENDING,
        Outbox.next_attempt_at <= now,
        _lease_free(now),
        Outbox.robot.not_in(waiting.scalar_subquery()),  # type: ignore[attr-defined]
    )


def _lease_free(now: datetime) -> Any:
    return or_(Outbox.lease_until.is_(None), Outbox.lease_until < now)  # type: ignore[union-attr]


# Rows picked by id that must still be pending: the status is checked as an expression (``status || ''``),
# not as a column, so the database finds the rows by their primary key. A plain ``status = 'pending'``
# next to ``id IN (…)`` made SQLite read the rows through ix_outbox_due instead, every pending row
# of the table for each in-flight mark (about 10x the cost of the mark itself in bench/dispatch.py).
_PENDING_BY_ID = f"status || '' = '{PENDING}'"


def _still_pending() -> Any:
    """:data:`_PENDING_BY_ID` as a SQLAlchemy condition."""
    return T.c.status.concat("") == PENDING


@dataclass(slots=True)
class Claimed:
    """A leased outbox row as the dispatcher needs it (plain data: no ORM state to carry)."""

    id: int
    dedupe_key: str
    occurrence_id: int | None
    stage: str
    channel_id: str
    platform: str
    robot: str
    body: dict[str, Any]
    summary: str
    attempts: int
    lease_owner: str | None
    maybe_sent: object = None  # truthy: it was in flight when its last sender died: a re-send may repeat it


_CLAIMED = [
    *(T.c[name] for name in Claimed.__slots__ if name != "maybe_sent"),  # type: ignore[attr-defined]
    # The raw value, read as truthy: SQLite's UPDATE … RETURNING answers 1 for ``x IS NOT NULL`` on
    # this table whatever x holds (3.40), and parsing it as a datetime would cost every claim.
    type_coerce(T.c.sending_since, String).label("maybe_sent"),
]


async def claim(
    db: Database, owner: str, limit: int, now: datetime, lease_seconds: float = 60.0
) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``owner`` until ``now + lease_seconds``, oldest first."""
    candidates = (
        select(T.c.id)
        .where(_due(now))
        .order_by(T.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # rendered on PostgreSQL only
    )
    stmt = (
        update(T)
        .where(T.c.id.in_(candidates), _lease_free(now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
        # Only what sending needs: parsing costs time (a datetime column alone doubles it).
        .returning(*_CLAIMED)
    )
    async with db.engine.begin() as conn:
        rows = [Claimed(*row) for row in await conn.execute(stmt)]
    return sorted(rows, key=lambda row: row.id)


async def renew(db: Database, owner: str, now: datetime, lease_seconds: float = 60.0) -> int:
    """Extend every lease the owner holds on pending rows (a heartbeat while they wait)."""
    stmt = (
        update(Outbox)
        .where(Outbox.lease_owner == owner, Outbox.status == PENDING)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    async with db.session() as session:
        result = await session.exec(stmt)
        await session.commit()
    return result.rowcount or 0


async def release(db: Database, owner: str, ids: Sequence[int] | None = None) -> int:
    """Give back leases on pending rows (all of the owner's, or only ``ids``) for others."""
    conditions = [Outbox.lease_owner == owner, Outbox.status == PENDING]
    if ids is not None:
        if not ids:
            return 0
        conditions.append(Outbox.id.in_(list(ids)))  # type: ignore[union-attr]
    stmt = update(Outbox).where(*conditions).values(lease_owner=None, lease_until=None)
    async with db.session() as session:
        result = await session.exec(stmt)
        await session.commit()
    return result.rowcount or 0


# The robot lanes' part of storing results: in the writer's transaction, so a lane's send times and
# its release are committed with the results they follow (bot.delivery.lanes holds the rest of the lanes).


async def let_go_lanes(conn: AsyncConnection, owner: str, robots: Iterable[str]) -> None:
    """Give up lanes (in the caller's transaction, after their last results)."""
    names = list(robots)
    if names:
        await conn.execute(
            update(LANE).where(LANE.c.robot.in_(names), LANE.c.owner == owner).values(owner=None, lease_until=None)
        )


async def save_windows(conn: AsyncConnection, owner: str, windows: dict[str, list[float]]) -> None:
    """Store robots' recent send times (in the caller's transaction); only on lanes still held."""
    if windows:
        await conn.execute(_SAVE_WINDOW, [{"r": robot, "o": owner, "times": times} for robot, times in windows.items()])


_SAVE_WINDOW = (
    update(LANE).where(LANE.c.robot == bindparam("r"), LANE.c.owner == bindparam("o"))
    .values(recent=bindparam("times", type_=LANE.c.recent.type))
)


async def unmark(db: Database, owner: str, ids: Sequence[int]) -> int:
    """Clear the in-flight marks of pending rows never sent (marked ahead of a pause, then stopped)."""
    stmt = (update(T).where(T.c.id.in_(list(ids)), T.c.lease_owner == owner, _still_pending())
            .values(sending_since=None))
    async with db.engine.begin() as conn:
        result = await conn.execute(stmt)
    return result.rowcount or 0


class WindowSource(Protocol):
    """A robot's rate limiter as the writer reads it (:class:`bot.delivery.ratelimit.RobotLimiter`)."""

    def recent(self) -> list[float]: ...

    def recent_json(self) -> str: ...


@dataclass(slots=True)
class Result:
    """What happened to one claimed row: status sent, pending (a retry), dead or dry_run."""

    outbox_id: int
    status: str
    at: datetime
    error: str | None = None
    error_kind: str | None = None
    http_status: int | None = None
    next_attempt_at: datetime | None = None  # for a retry
    possible_duplicate: bool = False  # a re-send of a message in flight at a crash
    robot: str | None = None  # with ``window`` or ``window_from``: the robot's recent send times to store
    window: list[float] | None = None
    window_json: str | None = None  # ``window`` as JSON text when the sender has it (RobotLimiter.recent_json)
    # The robot's limiter, read when the batch is written: once per robot and batch, not at every send.
    window_from: WindowSource | None = None
    sent: bool = False  # the platform was called for it (the dispatcher's budget of unrecorded sends)
    platform: str = ""  # for the metrics counted once it is stored


async def record(
    db: Database,
    owner: str,
    results: Sequence[Result],
    *,
    sending: Sequence[int] = (),
    releasing: Sequence[str] = (),
    now: datetime | None = None,
) -> set[int]:
    """Write a batch in one transaction: results with their DeliveryAttempt rows, in-flight marks
    (``sending``: rows about to be sent, stamped ``sending_since`` = ``now``), robots' send times
    and lanes let go (``releasing``, after their last results).

    Returns the ids actually marked (results and in-flight marks): a row whose lease this owner no
    longer holds is left alone. Core statements on a plain connection: the dispatcher's hot path.
    """
    if not results and not sending and not releasing:
        return set()
    async with db.engine.begin() as conn:
        return await record_on(conn, owner, results, sending=sending, releasing=releasing, now=now)


# Statements of the hot path, built once (SQLAlchemy memoises their cache keys on the object).
_MARK_SENDING = (
    update(T)
    .where(T.c.id.in_(bindparam("ids", expanding=True)), T.c.lease_owner == bindparam("owner"),
           _still_pending())
    .values(sending_since=bindparam("now", type_=T.c.sending_since.type))
    .returning(T.c.id)
)


def _mark_many_stmt(sent: bool) -> Any:
    return (
        update(T)
        .where(T.c.id.in_(bindparam("ids", expanding=True)), T.c.lease_owner == bindparam("owner"))
        .values(
            status=bindparam("status", type_=T.c.status.type),
            attempts=T.c.attempts + 1,
            sent_at=bindparam("at", type_=T.c.sent_at.type) if sent else None,
            lease_until=None,
            sending_since=None,
            last_error=None,
            error_kind=None,
        )
        .returning(T.c.id, T.c.attempts)
    )


_MARK_MANY = {True: _mark_many_stmt(True), False: _mark_many_stmt(False)}
_ATTEMPTS_FROM_OUTBOX = insert(A).from_select(
    ["outbox_id", "attempt", "at", "ok", "http_status", "possible_duplicate"],
    select(
        T.c.id,
        T.c.attempts,
        bindparam("at", type_=A.c.at.type),
        bindparam("ok", type_=A.c.ok.type),
        bindparam("http_status", type_=A.c.http_status.type),
        literal(False, A.c.possible_duplicate.type),
    ).where(T.c.id.in_(bindparam("ids", expanding=True))),
)


async def record_on(
    conn: AsyncConnection,
    owner: str,
    results: Sequence[Result],
    *,
    sending: Sequence[int] = (),
    releasing: Sequence[str] = (),
    now: datetime | None = None,
) -> set[int]:
    """:func:`record` in the caller's transaction (the writer keeps one connection for its batches)."""
    marked: dict[int, int] = {}  # outbox id -> attempt number
    at = results[0].at if results else now  # one time for a batch of plain successes
    if sending:
        rows = await conn.execute(_MARK_SENDING, {"ids": list(sending), "owner": owner, "now": now})
        marked.update({row.id: 0 for row in rows})
    windows = {r.robot: r.window if r.window is not None else r.window_from.recent()  # type: ignore[union-attr]
               for r in results if r.robot and (r.window is not None or r.window_from is not None)}
    await save_windows(conn, owner, windows)  # type: ignore[arg-type]
    simple: dict[tuple[str, int | None], list[int]] = {}
    for r in results:
        if r.status in (SENT, DRY_RUN) and not r.error and not r.possible_duplicate:
            simple.setdefault((r.status, r.http_status), []).append(r.outbox_id)
    for (status, http_status), ids in simple.items():
        params = {"ids": ids, "owner": owner, "status": status, "at": at}
        done = {row.id: row.attempts for row in await conn.execute(_MARK_MANY[status == SENT], params)}
        marked.update(done)
        if done:  # their attempt rows, computed in the database: no per-row parameters
            await conn.execute(_ATTEMPTS_FROM_OUTBOX, {"ids": list(done), "at": at, "ok": status == SENT,
                                                      "http_status": http_status})
    if len(simple) == 1 and len(next(iter(simple.values()))) == len(results):
        others: list[Result] = []
    else:
        plain = {i for ids in simple.values() for i in ids}
        others = [r for r in results if r.outbox_id not in plain]
    for r in others:
        marked.update(await _mark_one(conn, owner, r))
    attempts = [
        {
            "outbox_id": r.outbox_id,
            "attempt": marked[r.outbox_id],
            "at": r.at,
            "ok": r.status == SENT,
            "error_kind": r.error_kind,
            "detail": r.error,
            "http_status": r.http_status,
            "possible_duplicate": r.possible_duplicate,
        }
        for r in others
        if r.outbox_id in marked
    ]
    if attempts:
        await conn.execute(insert(A), attempts)
    await let_go_lanes(conn, owner, releasing)
    return set(marked)


async def _mark_one(conn: AsyncConnection, owner: str, r: Result) -> dict[int, int]:
    values: dict[str, Any] = {
        "status": r.status,
        "attempts": T.c.attempts + 1,
        "last_error": r.error,
        "error_kind": r.error_kind,
        "sending_since": None,
    }
    if r.status == PENDING:
        # A retry keeps its lease: this worker retries it itself, in order.
        values["next_attempt_at"] = r.next_attempt_at or r.at
    else:
        values["lease_until"] = None
        if r.status == SENT:
            values["sent_at"] = r.at
    stmt = (
        update(T)
        .where(T.c.id == r.outbox_id, T.c.lease_owner == owner)
        .values(**values)
        .returning(T.c.id, T.c.attempts)
    )
    return {row.id: row.attempts for row in await conn.execute(stmt)}


async def mark_sent(
    db: Database, owner: str, outbox_id: int, at: datetime, http_status: int | None = None
) -> bool:
    result = Result(outbox_id, SENT, at, http_status=http_status)
    return outbox_id in await record(db, owner, [result])


async def mark_dry_run(db: Database, owner: str, outbox_id: int, at: datetime) -> bool:
    return outbox_id in await record(db, owner, [Result(outbox_id, DRY_RUN, at)])


async def mark_retry(
    db: Database,
    owner: str,
    outbox_id: int,
    at: datetime,
    next_attempt_at: datetime,
    error: str,
    error_kind: str = "retry",
    http_status: int | None = None,
) -> bool:
    result = Result(outbox_id, PENDING, at, error, error_kind, http_status, next_attempt_at)
    return outbox_id in await record(db, owner, [result])


async def mark_dead(
    db: Database,
    owner: str,
    outbox_id: int,
    at: datetime,
    error: str,
    error_kind: str = "rejected",
    http_status: int | None = None,
) -> bool:
    result = Result(outbox_id, DEAD, at, error, error_kind, http_status)
    return outbox_id in await record(db, owner, [result])


async def any_pending(db: Database) -> bool:
    """Whether any row waits to be sent (due now or after a retry): without one, a dispatcher's burst
    would claim nothing, send nothing and tell nothing. Read-only, one indexed lookup."""
    async with db.engine.connect() as conn:
        return (await conn.execute(text(ANY_PENDING))).first() is not None


async def counts(db: Database) -> dict[str, int]:
    """Rows per status, for health pages and the CLI."""
    stmt = select(Outbox.status, func.count()).group_by(Outbox.status)
    async with db.session() as session:
        return {status: n for status, n in (await session.exec(stmt)).all()}


_Plain = tuple[list[int], str, datetime | None, int | None]


def _plain_batch(results: Sequence[Result]) -> _Plain | None:
    """(ids, status, at, http status) when every result is a plain success of one kind (the common
    batch, with any lanes let go), else None."""
    if not results:
        return [], SENT, None, None
    first = results[0]
    for r in results:
        if (r.status != first.status or r.status not in (SENT, DRY_RUN) or r.error or r.possible_duplicate
                or r.http_status != first.http_status):
            return None
    return [r.outbox_id for r in results], first.status, first.at, first.http_status


def _sqlite_time(at: datetime | None) -> str | None:
    """An aware datetime as SQLModel's UTCDateTime stores it in SQLite: UTC, no offset.

    Raises ValueError for a naive one, as that column type does."""
    if at is None:
        return None
    if at.utcoffset() is None:
        raise ValueError("Datetime values must have timezone information.")
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_mark(count: int) -> str:
    """The in-flight marks of ``count`` rows (parameters: the time, the ids, the owner)."""
    holes = ",".join("?" * count)
    return (f"UPDATE {T.name} SET sending_since = ? WHERE id IN ({holes}) AND lease_owner = ? "
            f"AND {_PENDING_BY_ID} RETURNING id")


def _window_texts(results: Sequence[Result]) -> dict[str, str | None]:
    """Each robot's window as the JSON text to store: its limiter's, read once per robot (the
    latest, which holds every send of the batch), else the last one given with a result."""
    texts: dict[str, str | None] = {}
    limiters: dict[str, WindowSource] = {}
    for r in results:
        if r.robot:
            if r.window_from is not None:
                limiters[r.robot] = r.window_from
            elif r.window is not None:
                texts[r.robot] = r.window_json if r.window_json is not None else json.dumps(r.window)
    for robot, limiter in limiters.items():
        texts[robot] = limiter.recent_json()
    return texts


def _sqlite_batch(conn: sqlite3.Connection, owner: str, sending: Sequence[int], now: datetime | None,
                  windows: dict[str, str | None], releasing: Sequence[str], ids: list[int], status: str,
                  at: datetime | None, http_status: int | None) -> set[int]:
    """:func:`record_on` for a plain batch, run on aiosqlite's thread in one go: the same statements
    (in-flight marks, robots' windows, the successes and their attempt rows, then the lanes let go)
    and one commit, with one hand-over between threads instead of several per statement. Returns
    the ids marked."""
    marked: set[int] = set()
    try:
        if sending:
            rows = conn.execute(_sqlite_mark(len(sending)), [_sqlite_time(now), *sending, owner]).fetchall()
            marked.update(row[0] for row in rows)
        if windows:
            conn.executemany(f"UPDATE {LANE.name} SET recent = ? WHERE robot = ? AND owner = ?",
                             [(times, robot, owner) for robot, times in windows.items()])
        if ids:
            holes = ",".join("?" * len(ids))
            sent_at = _sqlite_time(at) if status == SENT else None
            rows = conn.execute(
                f"UPDATE {T.name} SET status = ?, attempts = attempts + 1, sent_at = ?, lease_until = NULL, "
                f"sending_since = NULL, last_error = NULL, error_kind = NULL "
                f"WHERE id IN ({holes}) AND lease_owner = ? RETURNING id", [status, sent_at, *ids, owner]).fetchall()
            done = [row[0] for row in rows]
            if done:
                holes = ",".join("?" * len(done))
                conn.execute(
                    f"INSERT INTO {A.name} (outbox_id, attempt, at, ok, http_status, possible_duplicate) "
                    f"SELECT id, attempts, ?, ?, ?, 0 FROM {T.name} WHERE id IN ({holes})",
                    [_sqlite_time(at), int(status == SENT), http_status, *done])
            marked.update(done)
        if releasing:  # after their last results, as let_go_lanes
            holes = ",".join("?" * len(releasing))
            conn.execute(f"UPDATE {LANE.name} SET owner = NULL, lease_until = NULL "
                         f"WHERE robot IN ({holes}) AND owner = ?", [*releasing, owner])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return marked


# PostgreSQL: a plain batch as one statement (data-modifying CTEs), so one round trip and its own
# transaction. The same writes as record_on: marks, robots' windows, successes and their attempt rows,
# and the lanes let go (``gone``: in the windows' UPDATE, as one statement cannot update a row twice;
# a lane let go without a window of its own keeps its stored one).
_PG_BATCH = text(f"""
WITH marks AS (
    UPDATE {T.name} SET sending_since = :now
    WHERE id = ANY(CAST(:sending AS BIGINT[])) AND lease_owner = :owner AND {_PENDING_BY_ID}
    RETURNING id),
windows AS (
    UPDATE {LANE.name} AS lane SET recent = COALESCE(CAST(w.recent AS JSON), lane.recent),
        owner = CASE WHEN w.gone THEN NULL ELSE lane.owner END,
        lease_until = CASE WHEN w.gone THEN NULL ELSE lane.lease_until END
    FROM unnest(CAST(:robots AS TEXT[]), CAST(:windows AS TEXT[]), CAST(:gone AS BOOLEAN[])) AS w(robot, recent, gone)
    WHERE lane.robot = w.robot AND lane.owner = :owner
    RETURNING 1),
done AS (
    UPDATE {T.name} SET status = :status, attempts = attempts + 1, sent_at = :sent_at, lease_until = NULL,
        sending_since = NULL, last_error = NULL, error_kind = NULL
    WHERE id = ANY(CAST(:ids AS BIGINT[])) AND lease_owner = :owner
    RETURNING id, attempts),
audit AS (
    INSERT INTO {A.name} (outbox_id, attempt, at, ok, http_status, possible_duplicate)
    SELECT id, attempts, :at, :ok, :http_status, false FROM done
    RETURNING 1)
SELECT id FROM marks UNION ALL SELECT id FROM done
""").bindparams(
    bindparam("now", type_=T.c.sending_since.type), bindparam("sent_at", type_=T.c.sent_at.type),
    bindparam("at", type_=A.c.at.type), bindparam("ok", type_=A.c.ok.type),
    bindparam("http_status", type_=A.c.http_status.type),
)


_PG_NAMES = ["now", "sending", "owner", "robots", "windows", "gone", "status", "sent_at", "ids", "at", "ok",
             "http_status"]
# The same statement for asyncpg itself ($n parameters, typed by the server): sent alone, outside a
# transaction block it is its own transaction, so a batch is one round trip (prepared once).
_PG_RAW = str(_PG_BATCH)
for _n, _name in enumerate(_PG_NAMES, start=1):
    _PG_RAW = _PG_RAW.replace(f":{_name}", f"${_n}")


async def _pg_batch(conn: AsyncConnection, driver: Any, owner: str, results: Sequence[Result],
                    sending: Sequence[int], now: datetime | None, releasing: Sequence[str], ids: list[int],
                    status: str, at: datetime | None, http_status: int | None) -> set[int]:
    windows: dict[str, str | None] = _window_texts(results)
    gone = set(releasing)
    windows.update((robot, None) for robot in releasing if robot not in windows)
    params = {
        "now": now, "sending": list(sending), "owner": owner,
        "robots": list(windows), "windows": list(windows.values()), "gone": [r in gone for r in windows],
        "status": status, "sent_at": at if status == SENT else None, "ids": ids,
        "at": at, "ok": status == SENT, "http_status": http_status,
    }
    if not conn.in_transaction() and hasattr(driver, "fetch"):  # asyncpg
        for name in ("now", "sent_at", "at"):
            if params[name] is not None and params[name].utcoffset() is None:
                raise ValueError("Datetime values must have timezone information.")
        rows = await driver.fetch(_PG_RAW, *(params[name] for name in _PG_NAMES))
        return {row[0] for row in rows}
    async with conn.begin():
        return {row[0] for row in await conn.execute(_PG_BATCH, params)}


class ResultWriter:
    """Writes batches (group commit): what piles up during one write goes in the next.

    ``begin`` (an in-flight mark, awaited before the platform is called) and ``submit`` (a
    result) return futures that say, once committed, whether the lease was still ours; the
    dispatcher awaits a mark before its send but not a plain success, so its next send does not
    wait for that commit (its budget of unrecorded sends bounds what a crash can repeat).
    ``on_stored(results, marked)`` is called once a batch is committed, with its results and the ids
    whose lease was still ours (the rest were not written).
    One connection is kept for the batches (no pool checkout, ping or reset per batch); it is
    dropped and taken anew after an error. ``lock`` lets claims and result batches take turns
    (SQLite has one writer at a time).
    """

    def __init__(self, db: Database, owner: str, lock: asyncio.Lock,
                 on_stored: Callable[[list[Result], set[int]], None] | None = None) -> None:
        self._db, self._owner, self._lock, self._on_stored = db, owner, lock, on_stored
        self._results: list[tuple[Result, asyncio.Future[bool] | None]] = []
        self._begins: list[tuple[int, datetime, asyncio.Future[bool]]] = []
        self._releases: list[tuple[str, asyncio.Future[bool]]] = []
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the driver's own connection under ``_conn`` (aiosqlite's, asyncpg's)
        self.task: asyncio.Task[None] | None = None
        self.batches = 0  # transactions written (for the benchmark)

    def submit(self, result: Result) -> asyncio.Future[bool]:
        """Queue one result; the future says (once stored) whether the lease was still ours."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._results.append((result, future))
        self._kick()
        return future

    def queue(self, result: Result) -> None:
        """Queue one result nobody waits for (a plain success): :meth:`submit` without a future;
        ``on_stored`` still tells whether it was ours."""
        self._results.append((result, None))
        self._kick()

    def begin(self, outbox_id: int, at: datetime) -> asyncio.Future[bool]:
        """Mark a row in flight (UTC ``at``); the future says (once stored) whether it is still ours."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._begins.append((outbox_id, at, future))
        self._kick()
        return future

    def let_go(self, robot: str) -> asyncio.Future[bool]:
        """Give up a robot's lane in the next batch (after the results queued before it)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._releases.append((robot, future))
        self._kick()
        return future

    def _kick(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        while self.task is not None and not self.task.done():
            await self.task

    async def close(self) -> None:
        """Write what is queued, then give back the connection."""
        await self.flush()
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with suppress(Exception):
                await conn.close()

    async def _write(self, results: list[Result], sending: list[int], releasing: list[str],
                     now: datetime | None) -> set[int]:
        if self._conn is None:
            self._conn = await self._db.engine.connect()
            self._driver = None
        try:
            driver = self._driver
            if driver is None:  # asked once per connection kept, not per batch
                driver = self._driver = (await self._conn.get_raw_connection()).driver_connection
            plain = _plain_batch(results)
            if plain is not None and self._db.is_sqlite:
                run = getattr(driver, "_execute", None)  # aiosqlite: a function on its thread
                if run is not None:
                    windows = _window_texts(results)
                    return await run(_sqlite_batch, driver._conn, self._owner, sending, now,  # type: ignore[no-any-return]
                                     windows, releasing, *plain)
            if plain is not None and self._conn.dialect.name == "postgresql":
                return await _pg_batch(self._conn, driver, self._owner, results, sending, now, releasing, *plain)
            async with self._conn.begin():
                return await record_on(self._conn, self._owner, results, sending=sending,
                                       releasing=releasing, now=now)
        except BaseException:
            conn, self._conn, self._driver = self._conn, None, None
            with suppress(Exception):
                await conn.invalidate()
            with suppress(Exception):
                await conn.close()
            raise

    async def _drain(self) -> None:
        while self._results or self._begins or self._releases:
            results, self._results = self._results, []
            begins, self._begins = self._begins, []
            releases, self._releases = self._releases, []
            at = max((b[1] for b in begins), default=None)
            try:
                async with self._lock:
                    marked = await self._write([r for r, _ in results], [b[0] for b in begins],
                                               [r for r, _ in releases], at)
                self.batches += 1
            except Exception as exc:
                # A send that happened must still be recorded: keep the batch and try again.
                log.warning("写入发送结果失败，1 秒后重试：%s", type(exc).__name__)
                self._results = results + self._results
                self._begins = begins + self._begins
                self._releases = releases + self._releases
                await asyncio.sleep(1.0)
                continue
            if self._on_stored is not None and results:
                self._on_stored([result for result, _ in results], marked)
            for result, future in results:
                if future is not None and not future.done():
                    future.set_result(result.outbox_id in marked)
            for outbox_id, _, future in begins:
                if not future.done():
                    future.set_result(outbox_id in marked)
            for _, future in releases:
                if not future.done():
                    future.set_result(True)


class SessionWriter:
    """:class:`Writer` on a SQLAlchemy ``AsyncSession`` (its connection and transaction; ``text()``)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.dialect = session.bind.dialect.name

    async def _connection(self) -> Any:
        return await self.session.connection()

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        query, values = bound(sql, params or {}, self.dialect)
        await (await self._connection()).execute(text(query), values)

    async def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        query, values = bound(sql, params or {}, self.dialect)
        return [tuple(r) for r in (await (await self._connection()).execute(text(query), values)).all()]

    async def insert_ignoring(self, table: str, each: Mapping[str, list[Any]], same: Mapping[str, Any],
                              conflict: Sequence[str], returning: str | None) -> set[Any]:
        """bot.delivery.outbox's set-based insert (PostgreSQL: one ``unnest`` statement; values through
        the columns' own SQLAlchemy processing)."""
        from sqlmodel import SQLModel

        core = SQLModel.metadata.tables[table]
        rows = Columns(each=dict(each), same=dict(same))
        return await insert_ignoring(self.session, core, rows, list(conflict),
                                     core.c[returning] if returning else None)

    def after_commit(self, counts: Counter[tuple[str, str]], apply: Callable[[Counter[tuple[str, str]]], None]
                     ) -> None:
        """Counted by bot.delivery.outbox's listener on the session's commit (forgotten on rollback)."""
        self.session.info.setdefault(_RECORDED_KEY, Counter()).update(counts)

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()
