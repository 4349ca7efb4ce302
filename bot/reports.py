"""Per-unit figures over a period: who confirmed on time, late, not at all, and how often nudged.

Units are ranked by on-time rate (highest first), then by fewest missing, so a lagging unit sees
the gap ("使工作滞后单位看到差距"). A person counts for the unit recorded when the occurrence
fired (the ``Expectation`` snapshot), so moving someone later does not rewrite past figures.

Someone an admin excused (请假、出差…, ``bot.actions.excuse``) and who did not confirm anyway is
counted in ``excused`` only: not expected, not missing, never late.

``missing`` counts expectations without a confirmation when the figures are taken, whether or
not their deadline has passed (``pending`` says how many of them still have time); ``nudges``
(催办次数) counts the follow-up rounds that reached the person (see :func:`nudge_counts`).

Every figure, for a period (``remindbot report``, report reminders, ``/admin/units``) or for one
occurrence's board, is counted by :func:`tally`, so the numbers and their words agree everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.models import DEFAULT_TZ, Person, Reminder, ReportSpec, Schedules
from bot.confirmations import Board
from bot.confirmations import to_db_time as db_time
from bot.csvfile import csv_text
from bot.runtime import Runtime
from bot.textable import table
from storage.models import Confirmation, Expectation, Nudge, Occurrence, Outbox

DEFAULT_ZONE = ZoneInfo(DEFAULT_TZ)
NO_UNIT = "未分配单位"
QUARTER_ZH = ("一", "二", "三", "四")
FORMATS = ("table", "csv", "markdown")
MIN_YEAR, MAX_YEAR = 1970, 2999  # a period outside these years is a typo, not a report
COUNTS = ("expected", "on_time", "late", "missing", "nudges", "pending", "excused")
HEADERS = ("排名", "单位", "应确认", "按时确认", "逾期确认", "未确认", "其中未到截止", "催办次数", "按时完成率",
           "请假等免于确认")
# Briefs to leaders about a monthly reminder cover the month before; any other, the quarter before.
MONTHLY_PERIODS = ("weekly", "monthly", "cron")


@dataclass(frozen=True)
class UnitRow:
    unit_id: str | None
    unit: str
    expected: int = 0
    on_time: int = 0
    late: int = 0
    missing: int = 0
    nudges: int = 0
    pending: int = 0  # of ``missing``: deadline not passed yet (or none), so not overdue
    excused: int = 0  # excused by an admin (请假、出差…) and not confirmed: apart from ``expected``

    @property
    def due(self) -> int:
        """Confirmations whose deadline has passed or that came in: what the rate is judged on."""
        return self.expected - self.pending

    @property
    def rate(self) -> float:
        """On-time confirmations over those already due (0.0 when none is due yet).

        A confirmation whose deadline is still ahead does not count against the unit.
        """
        return self.on_time / self.due if self.due else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The row as the templates' ``figures.rows`` items."""
        return asdict(self) | {"rate": self.rate}


class Period(NamedTuple):
    start: datetime  # aware, local midnight; included
    end: datetime  # excluded
    label: str  # Chinese, e.g. "2026年11月"


def spec_of(period: Period) -> str:
    """The period as ``--period`` writes it: ``2026-11`` (a month), ``2026-Q4`` (a quarter), ``2026`` (a year)."""
    start, end = period.start.date(), period.end.date()
    months = (end.year - start.year) * 12 + end.month - start.month
    if months == 1:
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}" if months == 3 else str(start.year)


def shifted_spec(spec: str, steps: int) -> str:
    """The ``spec`` of the period of the same kind ``steps`` later (negative: earlier)."""
    if "-Q" in spec:
        index = int(spec[:4]) * 4 + int(spec[-1]) - 1 + steps
        return f"{index // 4}-Q{index % 4 + 1}"
    if "-" in spec:
        index = int(spec[:4]) * 12 + int(spec[5:7]) - 1 + steps
        return f"{index // 12}-{index % 12 + 1:02d}"
    return str(int(spec) + steps)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# ---------------------------------------------------------------- periods


def _month(year: int, month: int) -> tuple[date, date]:
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return date(year, month, 1), nxt


def _quarter(year: int, q: int) -> tuple[date, date]:
    start, _ = _month(year, 3 * q - 2)
    _, end = _month(year, 3 * q)
    return start, end


def period_bounds(spec: str, now: datetime, zone: ZoneInfo = DEFAULT_ZONE) -> Period:
    """``"2026-11"``, ``"2026-Q4"``, ``"2026"`` or a ``ReportSpec.period`` name, relative to ``now``."""
    today = now.astimezone(zone).date() if now.tzinfo else now.date()
    y, m = today.year, today.month
    q = (m - 1) // 3 + 1
    named: dict[str, tuple[int, str, int]] = {
        "current_month": (y, "m", m),
        "previous_month": (y - 1, "m", 12) if m == 1 else (y, "m", m - 1),
        "current_quarter": (y, "q", q),
        "previous_quarter": (y - 1, "q", 4) if q == 1 else (y, "q", q - 1),
        "current_year": (y, "y", 0),
        "previous_year": (y - 1, "y", 0),
    }
    text = spec.strip()
    if text in named:
        year, kind, n = named[text]
    elif mm := re.fullmatch(r"(\d{4})-(\d{1,2})", text):
        year, kind, n = int(mm[1]), "m", int(mm[2])
    elif mq := re.fullmatch(r"(\d{4})-?[Qq]([1-4])", text):
        year, kind, n = int(mq[1]), "q", int(mq[2])
    elif re.fullmatch(r"\d{4}", text):
        year, kind, n = int(text), "y", 0
    else:
        raise ValueError(f"无法识别统计周期 “{spec}”：应写成 2026-11（月）、2026-Q4（季度）、2026（年）"
                         "或 previous_month、current_month、previous_quarter、current_quarter、previous_year")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"统计周期 “{spec}” 的年份应在 {MIN_YEAR}–{MAX_YEAR} 之间")
    if kind == "m" and not 1 <= n <= 12:
        raise ValueError(f"统计周期 “{spec}” 的月份应在 1–12 之间")
    if kind == "m":
        (first, after), label = _month(year, n), f"{year}年{n}月"
    elif kind == "q":
        (first, after), label = _quarter(year, n), f"{year}年第{QUARTER_ZH[n - 1]}季度"
    else:
        (first, after), label = (date(year, 1, 1), date(year + 1, 1, 1)), f"{year}年"
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    return Period(start, datetime.combine(after, datetime.min.time(), tzinfo=zone), label)


# ---------------------------------------------------------------- figures


def _top_unit(s: Schedules, unit_id: str | None) -> str | None:
    """The unit's highest ancestor below the root: a branch rolls up to its organ."""
    chain = s.unit_chain(unit_id)
    return chain[-2].id if len(chain) >= 2 else unit_id


class Owed(NamedTuple):
    """One confirmation a person owes, as :func:`tally` counts it."""

    unit_id: str | None
    unit: str
    confirmed_at: datetime | None  # UTC; naive means UTC
    deadline: datetime | None  # UTC; naive means UTC
    nudges: int = 0
    excused: bool = False  # excused by an admin; a confirmation that came anyway still counts


def tally(owed: Iterable[Owed], now: datetime) -> list[UnitRow]:
    """Add owed confirmations up per unit, ranked: the one definition of every unit figure.

    On time means confirmed at or before the deadline, or with no deadline at all. ``now`` only
    splits ``missing`` into overdue and ``pending``.
    """
    now = utc(now)
    sums: dict[str | None, dict[str, int]] = {}
    names: dict[str | None, str] = {}
    for item in owed:
        names[item.unit_id] = item.unit
        t = sums.setdefault(item.unit_id, dict.fromkeys(COUNTS, 0))
        t["nudges"] += item.nudges
        if item.excused and item.confirmed_at is None:  # owes nothing: neither expected nor late
            t["excused"] += 1
            continue
        t["expected"] += 1
        deadline = utc(item.deadline) if item.deadline is not None else None
        if item.confirmed_at is None:
            t["missing"] += 1
            t["pending"] += deadline is None or now < deadline
        elif deadline is None or utc(item.confirmed_at) <= deadline:
            t["on_time"] += 1
        else:
            t["late"] += 1
    return rank(UnitRow(unit_id=k, unit=names[k], **t) for k, t in sums.items())


async def nudge_counts(session: AsyncSession, occurrence_ids: list[int]) -> dict[tuple[int, str], int]:
    """催办次数 per (occurrence, person): the follow-up rounds that reached the person.

    A round counts once per person however many messages or channels carried it (a group message
    and a personal-link message are one round), and only when a message of that round mentioning
    the person went, or is still waiting to go, to a real channel: a message only recorded (a
    channel without a webhook, a rehearsal) or one that failed for good reached nobody.
    Escalations (告知领导) are not 催办 and are not counted.
    """
    rounds = select(Nudge.occurrence_id, Nudge.person_id, Nudge.number).where(
        col(Nudge.occurrence_id).in_(occurrence_ids), Nudge.kind == "followup")
    messages = select(Outbox.occurrence_id, Outbox.stage, Outbox.body, Outbox.dedupe_key).where(
        col(Outbox.occurrence_id).in_(occurrence_ids), col(Outbox.stage).startswith("followup:"),
        col(Outbox.status).in_(("sent", "pending")))
    reached: set[tuple[int | None, str, str]] = set()
    for occ_id, stage, body, key in (await session.exec(messages)).all():
        people = {m.get("person_id") for m in (body or {}).get("mentions", []) if isinstance(m, dict)}
        people.add(key.rsplit("/", 1)[-1])  # a personal-link message names its person in its key
        reached.update((occ_id, stage, p) for p in people if p)
    counts: dict[tuple[int, str], int] = {}
    for occ_id, person_id, number in (await session.exec(rounds)).all():
        if (occ_id, f"followup:{number}", person_id) in reached:
            counts[(occ_id, person_id)] = counts.get((occ_id, person_id), 0) + 1
    return counts


async def unit_figures(runtime: Runtime, start: datetime, end: datetime, *,
                       reminder_ids: Iterable[str] | None = None, unit_ids: Iterable[str] | None = None,
                       by_parent: bool = False, now: datetime | None = None) -> list[UnitRow]:
    """Figures per unit for occurrences due in [start, end), best first.

    ``unit_ids`` keeps those units and their sub-units; ``by_parent`` adds branches up under
    the organ above them. ``now`` (default: the runtime's clock) only sets ``pending``.
    """
    s = runtime.schedules
    occ_q = _in_period(start, end, reminder_ids).where(col(Occurrence.dry_run).is_(False))  # rehearsals never count
    async with runtime.db.session() as session:
        occs = {o.id: o for o in (await session.exec(occ_q)).all()}
        ids = [i for i in occs if i is not None]
        # Core rows, only the columns counted: a province's period has 100,000 of them.
        et, ct = Expectation.__table__, Confirmation.__table__  # type: ignore[attr-defined]
        exps = (await session.exec(select(et.c.occurrence_id, et.c.person_id, et.c.unit_id, et.c.unit_name,
                                          et.c.excused_at)
                                   .where(et.c.occurrence_id.in_(ids)))).all()  # type: ignore[call-overload]
        confs = (await session.exec(select(ct.c.occurrence_id, ct.c.person_id, ct.c.confirmed_at)
                                    .where(ct.c.occurrence_id.in_(ids)))).all()  # type: ignore[call-overload]
        nudges = await nudge_counts(session, ids)
    confirmed = {(c.occurrence_id, c.person_id): c.confirmed_at for c in confs}
    wanted = set(unit_ids) if unit_ids is not None else None

    def owed(exp: Any) -> Owed:
        key = _top_unit(s, exp.unit_id) if by_parent else exp.unit_id
        unit = s.units.get(key or "")
        if by_parent and unit is not None:
            name = unit.name
        else:  # the name as it was when the occurrence fired
            name = exp.unit_name or (unit.name if unit else None) or key or NO_UNIT
        where = (exp.occurrence_id, exp.person_id)
        return Owed(key, name, confirmed.get(where), occs[exp.occurrence_id].deadline_at, nudges.get(where, 0),
                    exp.excused_at is not None)

    kept = (e for e in exps if wanted is None or e.unit_id in wanted
            or any(u.id in wanted for u in s.unit_chain(e.unit_id)))
    return tally((owed(e) for e in kept), now or runtime.clock())


def _in_period(start: datetime, end: datetime, reminder_ids: Iterable[str] | None) -> Any:
    query = select(Occurrence).where(col(Occurrence.due_at) >= db_time(start), col(Occurrence.due_at) < db_time(end))
    if reminder_ids is not None:
        query = query.where(col(Occurrence.reminder_id).in_(list(reminder_ids)))
    return query


async def rehearsals(runtime: Runtime, start: datetime, end: datetime, *,
                     reminder_ids: Iterable[str] | None = None) -> int:
    """Dry-run occurrences due in [start, end): left out of every figure, but said so."""
    query = _in_period(start, end, reminder_ids).where(col(Occurrence.dry_run).is_(True))
    async with runtime.db.session() as session:
        return len((await session.exec(query)).all())


def board_figures(board: Board, nudges: Mapping[tuple[int, str], int], now: datetime) -> list[UnitRow]:
    """One occurrence's figures per unit, counted exactly like a period's (``nudges`` as loaded
    by :func:`nudge_counts`)."""
    occ = board.occurrence
    return tally((Owed(r.unit_id, r.unit_name or r.unit_id or NO_UNIT, r.confirmed_at, occ.deadline_at,
                       nudges.get((occ.id or 0, r.person_id), 0), r.excused_at is not None) for r in board.rows), now)


def rank(rows: Iterable[UnitRow]) -> list[UnitRow]:
    return sorted(rows, key=lambda r: (-r.rate, r.missing, r.unit))


def brief_period(reminder: Reminder) -> str:
    return "previous_month" if reminder.when.period in MONTHLY_PERIODS else "previous_quarter"


async def figures_for(runtime: Runtime, reminder: Reminder, person: Person | None,
                      now: datetime) -> dict[str, Any] | None:
    """The template's ``figures``: a report's period and scope, or a leader's units' status.

    ``kind: report`` reminders use their ``report`` spec (narrowed to the units a person
    oversees when sent per person); a per-person reminder to a leader ("one post, two duties")
    gets the units that leader oversees over the previous month or quarter. Otherwise none.
    """
    s = runtime.schedules
    overseen = {u.id for u in s.units_overseen_by(person.id)} if person is not None else set()
    if reminder.kind == "report":
        spec = reminder.report or ReportSpec()
        period = period_bounds(spec.period, now, reminder.zone)
        rows = await unit_figures(runtime, period.start, period.end, reminder_ids=spec.reminders or None,
                                  unit_ids=spec.units or None)
    elif overseen:
        period = period_bounds(brief_period(reminder), now, reminder.zone)
        rows = await unit_figures(runtime, period.start, period.end)
    else:
        return None
    if overseen:
        rows = [r for r in rows if r.unit_id in overseen]
    return {"period": period.label, "spec": spec_of(period), "rows": [r.as_dict() for r in rows]}


# ---------------------------------------------------------------- output


def percent(row: UnitRow) -> str:
    return f"{row.rate * 100:.1f}%" if row.due else "—"


def cells(rows: Iterable[UnitRow]) -> list[list[str]]:
    return [[str(i), r.unit, str(r.expected), str(r.on_time), str(r.late), str(r.missing), str(r.pending),
             str(r.nudges), percent(r), str(r.excused)] for i, r in enumerate(rows, start=1)]


def totals(rows: Iterable[UnitRow]) -> UnitRow:
    items = list(rows)
    return UnitRow(None, "合计", *(sum(getattr(r, f) for r in items) for f in COUNTS))


def format_rows(rows: list[UnitRow], fmt: str, *, title: str | None = None) -> str:
    """Render ranked rows as an aligned text table, CSV or a markdown table."""
    body = cells(rows)
    if fmt == "csv":  # the same writer as the admin CSV downloads: formulas defused
        return csv_text(HEADERS, body)
    if fmt == "markdown":
        lines = [f"### {title}", ""] if title else []
        lines += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    if fmt == "table":
        text = table(HEADERS, body)
        return f"{title}\n\n{text}" if title else text
    raise ValueError(f"未知的输出格式 {fmt!r}，可选：{'、'.join(FORMATS)}")
