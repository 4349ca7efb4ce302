"""An occurrence's board: who owes a confirmation, who gave it (when, how, note), who is late.

Without SQLAlchemy: ``remindbot status`` on a SQLite file builds boards from ``storage.reads``' texts
through ``sqlite3``; the pages (``bot.confirming.confirmations.boards_for``) through ``text()``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from storage import reads

VIA_LABELS: dict[str, str] = {
    "link": "链接",
    "chat": "群内回复",
    "card": "卡片按钮",
    "admin": "管理员代录",
}

# C0/C1 controls but tab and newline, and the bidi embeddings/overrides/isolates: a NUL cut the note
# short in storage, ESC (terminal colours) and RLO (text shown reversed) reached board.csv and the
# admin's terminal. Dropped, the rest of the text kept.
_UNSAFE_IN_NOTE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def shown_note(note: str | None) -> str | None:
    """A stored note as every page, table and export shows it: cleaned like :func:`clean_note`
    (a note stored before that cleaning existed may hold escapes or direction overrides), never
    refused for its length. Nearly every note is printable and passes as it is."""
    if not note or note.isprintable():
        return note
    return _UNSAFE_IN_NOTE.sub("", note.replace("\r\n", "\n").replace("\r", "\n")).strip() or None


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(slots=True)  # not frozen: a province's board builds 20,000 of them per page view
class BoardRow:
    """One expected person's line on the board. Times are aware UTC. (``board_row`` builds most of
    them positionally: keep the fields' order.)"""

    person_id: str
    name: str
    unit_id: str | None
    unit_name: str | None
    confirmed_at: datetime | None
    via: str | None
    note: str | None
    recorded_by: str | None
    overdue_since: datetime | None  # the deadline, when it passed without a confirmation (nor excusal)
    late: bool = False  # confirmed, but after the deadline
    excused_at: datetime | None = None  # an admin excused them (请假、出差…): owes nothing, never late
    excused_by: str | None = None
    excuse_reason: str | None = None
    unit_order: int | None = None  # the unit's place in the admins' order (None: fired before it was kept)

    @property
    def excused(self) -> bool:
        """Excused and not confirmed (a confirmation that came anyway counts as one)."""
        return self.excused_at is not None and self.confirmed_at is None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None

    @property
    def via_label(self) -> str:
        return VIA_LABELS.get(self.via or "", self.via or "")


@dataclass(frozen=True)
class Board:
    occurrence: Any  # storage.models.Occurrence, or storage.reads.OccurrenceRow: the same fields
    rows: list[BoardRow] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return len(self.rows)

    @property
    def confirmed(self) -> int:
        return sum(1 for r in self.rows if r.confirmed)

    @property
    def overdue(self) -> list[BoardRow]:
        return [r for r in self.rows if r.overdue_since is not None]

    @property
    def excused(self) -> list[BoardRow]:
        return [r for r in self.rows if r.excused]


def board_row(exp: Any, conf: Any, deadline: datetime | None, now: datetime) -> BoardRow:
    """One line from an expectation and its confirmation (ORM objects or Core rows with those columns)."""
    if conf is None:
        return owing_row(exp.person_id, exp.person_name, exp.unit_id, exp.unit_name, exp.excused_at, exp.excused_by,
                         exp.excuse_reason, deadline, now, exp.unit_order)
    excused_at = _aware(exp.excused_at)
    confirmed_at = _aware(conf.confirmed_at)
    return BoardRow(
        person_id=exp.person_id,
        name=exp.person_name,
        unit_id=exp.unit_id,
        unit_name=exp.unit_name,
        confirmed_at=confirmed_at,
        via=conf.via,
        note=shown_note(conf.note),
        recorded_by=conf.recorded_by,
        overdue_since=None,
        late=bool(confirmed_at and deadline and confirmed_at > deadline),
        excused_at=excused_at,
        excused_by=exp.excused_by,
        excuse_reason=exp.excuse_reason,
        unit_order=exp.unit_order,
    )


def owing_row(person_id: str, name: str, unit_id: str | None, unit_name: str | None, excused_at: datetime | None,
              excused_by: str | None, excuse_reason: str | None, deadline: datetime | None, now: datetime,
              unit_order: int | None = None) -> BoardRow:
    """The line of someone who has not confirmed (most lines of a large board): built positionally."""
    if excused_at is not None and excused_at.tzinfo is None:
        excused_at = excused_at.replace(tzinfo=UTC)
    overdue = excused_at is None and deadline is not None and now >= deadline
    return BoardRow(person_id, name, unit_id, unit_name, None, None, None, None, deadline if overdue else None, False,
                    excused_at, excused_by, excuse_reason, unit_order)


class _Confirmation(NamedTuple):
    occurrence_id: int
    person_id: str
    confirmed_at: datetime | None
    via: str | None
    note: str | None
    recorded_by: str | None


class _Expectation(NamedTuple):
    occurrence_id: int
    person_id: str
    person_name: str
    unit_id: str | None
    unit_name: str | None
    excused_at: datetime | None
    excused_by: str | None
    excuse_reason: str | None
    unit_order: int | None


async def boards_of(reader: reads.Reader, occurrences: Sequence[Any], now: datetime) -> list[Board]:
    """The boards of these occurrences (in this order), their rows read in two queries."""
    if not occurrences:
        return []
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    ids = [o.id for o in occurrences]
    exps, confs = await reads.board_rows(reader, ids)
    moment = reads.moment
    by_key = {(c[0], c[1]): _Confirmation(c[0], c[1], moment(c[2]), *c[3:]) for c in confs}
    owed: dict[int, list[Any]] = {}
    for e in exps:
        owed.setdefault(e[0], []).append(e)  # occurrence_id
    result: list[Board] = []
    for occ in occurrences:
        deadline = _aware(occ.deadline_at)
        rows = []
        for e in owed.get(occ.id or 0, []):
            # Unpacked: a row's fields by name cost a lookup each, 20,000 times over.
            occurrence_id, person_id, name, unit_id, unit_name, excused_at, excused_by, reason, order = e
            if excused_at is not None:
                excused_at = moment(excused_at)  # SQLite's text, PostgreSQL's datetime
            conf = by_key.get((occurrence_id, person_id))
            if conf is None:
                rows.append(owing_row(person_id, name, unit_id, unit_name, excused_at, excused_by, reason, deadline,
                                      now, order))
            else:
                exp = _Expectation(occurrence_id, person_id, name, unit_id, unit_name, excused_at, excused_by, reason,
                                   order)
                rows.append(board_row(exp, conf, deadline, now))
        result.append(Board(occurrence=occ, rows=rows))
    return result
