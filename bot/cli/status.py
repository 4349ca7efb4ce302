"""status: who has confirmed the latest (or a day's) occurrence, who owes, who is late.

On a SQLite file at the newest schema the boards are read through ``sqlite3`` with the texts the pages
run through SQLAlchemy (``storage.reads``, ``bot.confirming.board``), as ``report`` does
(:func:`bot.cli.runner.reading`): neither SQLAlchemy, SQLModel nor the table models are imported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import click

from bot.cli.runner import CliError, reading, run
from bot.cli.values import DAY
from bot.config.models import DEFAULT_TZ, Schedules
from bot.confirming.board import Board, BoardRow, boards_of
from bot.reporting.textable import one_line, table
from bot.reporting.unitmatch import UnitMatch, match_note, resolve
from bot.runtime import Runtime
from bot.scheduling.datewords import date_text, unsent_text, when_text
from bot.scheduling.stagelines import SETTLED_LABELS, lines_for, sent_ahead
from storage import reads

ZONE = ZoneInfo(DEFAULT_TZ)


class PeopleNames(Mapping[str, str]):
    """Person id -> name, read from the schedules only when a row names someone (who recorded a
    confirmation or an excusal): a board of 20,000 rows usually needs none of 100,000 people."""

    def __init__(self, schedules: Schedules) -> None:
        self.schedules = schedules

    def __getitem__(self, person_id: str) -> str:
        return self.schedules.people[person_id].name

    def __iter__(self) -> Iterator[str]:
        return iter(self.schedules.people)

    def __len__(self) -> int:
        return len(self.schedules.people)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(ZONE):%Y-%m-%d %H:%M}"


# ---------------------------------------------------------------- status


async def occurrences_on(runtime: Runtime, reader: reads.Reader, reminder_id: str | None,
                         on: date) -> tuple[list[reads.OccurrenceRow], list[str]]:
    """The occurrences with people owing a confirmation due on the local day ``on`` (the service's
    zone), of one reminder or of each: real ones first, then rehearsals, by due time; with those the
    holiday rule moved off ``on`` (``status --date 2026-12-20`` for the 12-18 it became), each said
    in a note (a Chinese line, also for one skipped)."""
    s = runtime.schedules
    if reminder_id is not None and reminder_id not in s.reminders:
        from bot.cli.unknown import unknown_reminder  # difflib: only when an id is unknown

        raise CliError(unknown_reminder(s.reminders, reminder_id))
    start = datetime.combine(on, datetime.min.time(), tzinfo=ZONE)
    found = await reads.occurrences_due(reader, start, start + timedelta(days=1), reminder_id)
    moved, notes = await moved_occurrences(runtime, reader, reminder_id, on, {o.reminder_id for o in found})
    found += moved
    if reminder_id is not None and not found:
        none = f"“{s.reminders[reminder_id].title}”在 {date_text(on)} 没有需要确认的提醒记录。"
        raise CliError("\n".join([*notes, none]) if notes else none)
    return found, notes


async def moved_occurrences(runtime: Runtime, reader: reads.Reader, reminder_id: str | None, on: date,
                            seen: set[str]) -> tuple[list[reads.OccurrenceRow], list[str]]:
    """The occurrences (with people owing) the holiday rule moved off the local day ``on``, of one
    reminder or of each asking for confirmation (but those in ``seen``, found on the day itself), and
    a note for each move: ``“主题党日”2026年12月20日是星期日，已调整到 2026年12月18日（星期五）09:00（记录号 6）。``"""
    from bot.cli.schedule import moved_from, moved_text

    s = runtime.schedules
    reminders = ([s.reminders[reminder_id]] if reminder_id is not None
                 else [r for r in s.reminders.values() if r.confirm is not None])
    found: list[reads.OccurrenceRow] = []
    notes: list[str] = []
    for reminder in reminders:
        due = None if reminder.id in seen else moved_from(reminder, runtime.calendar, on)
        if due is None:
            continue
        said = f"“{reminder.title}”{moved_text(due, on, reminder.zone)}"
        if due.skipped:
            notes.append(f"{said}。")
            continue
        occs = await reads.occurrences_at(reader, reminder.id, due.due_at)
        numbers = "、".join(str(o.id) for o in occs)
        notes.append(f"{said}（记录号 {numbers}）。" if occs else f"{said}，还没有需要确认的提醒记录。")
        found += occs
    return found, notes


async def latest_occurrences(runtime: Runtime, reader: reads.Reader,
                             reminder_id: str | None) -> list[reads.OccurrenceRow]:
    """The latest occurrence with people owing a confirmation, of one reminder or of each.

    A rehearsal never hides the real board: each reminder's latest real occurrence comes first,
    then its latest dry run when that is due later (shown marked 演练, without figures).
    """
    s = runtime.schedules
    if reminder_id is None:
        ids = [r.id for r in s.reminders.values() if r.confirm is not None]
    else:
        ids = [reminder_id]
    found: list[reads.OccurrenceRow] = []
    for rid in ids:
        latest: reads.OccurrenceRow | None = None
        for dry_run in (False, True):
            occ = await reads.latest_occurrence(reader, rid, dry_run)
            if occ is not None and (latest is None or _utc(occ.due_at) > _utc(latest.due_at)):
                found.append(occ)
                latest = latest or occ
    if reminder_id is not None and not found:
        if reminder_id not in s.reminders:
            from bot.cli.unknown import unknown_reminder  # difflib: only when an id is unknown

            raise CliError(unknown_reminder(s.reminders, reminder_id))
        raise CliError(f"“{s.reminders[reminder_id].title}”还没有需要确认的提醒记录。")
    return found


def row_state(row: BoardRow) -> str:
    if row.excused:
        return "免于确认"
    if row.confirmed:
        return "逾期确认" if row.late else "已确认"
    return "逾期未确认" if row.overdue_since is not None else "未确认"


def via_text(row: BoardRow, names: Mapping[str, str]) -> str:
    if not row.confirmed:
        return ""
    if row.recorded_by:
        return f"{row.via_label}（{names.get(row.recorded_by, row.recorded_by)}）"
    return row.via_label


def excused_text(row: BoardRow, names: Mapping[str, str]) -> str:
    """``出差：…（陈静 登记）`` for someone excused, else empty."""
    if not row.excused:
        return ""
    return f"{row.excuse_reason}（{names.get(row.excused_by or '', row.excused_by)} 登记）"


REHEARSAL_NOTE = "演练记录：未真正发送，不催办、不告知领导、不计入统计，其确认链接不能登记确认。"


STATUS_ROWS = 50  # rows of a board `status` prints without --all (a province's board has 20,000)
STATUS_CHOICES = ("未确认", "逾期未确认", "已确认", "逾期确认", "免于确认")


def row_kept(row: BoardRow, wanted: str | None) -> bool:
    """Whether ``--status wanted`` keeps the row: 未确认 is everyone who still owes (逾期 included)."""
    if wanted is None:
        return True
    if wanted == "未确认":
        return not row.confirmed and not row.excused
    return row_state(row) == wanted


def board_text(b: Board, now: datetime, names: Mapping[str, str], *, match: UnitMatch | None = None,
               wanted: str | None = None, limit: int | None = STATUS_ROWS) -> str:
    """The board as ``status`` prints it: its figures, then its rows (who owes first), filtered by
    unit (with sub-units) and status, at most ``limit`` of them (None: all), the rest counted."""
    occ = b.occurrence
    mark = "【演练】" if occ.dry_run else ""
    head = [f"{mark}【{occ.title}】（{occ.reminder_id}，记录号 {occ.id}）",
            f"提醒时间：{when_text(occ.due_at.replace(tzinfo=UTC), ZONE)}"]
    if occ.deadline_at is not None:
        deadline = occ.deadline_at.replace(tzinfo=UTC)
        head[-1] += f"　确认截止：{when_text(deadline, ZONE)}{'（已过）' if deadline <= now else ''}"
    ahead = sent_ahead(occ, ZONE)
    if ahead:  # from the moment of ``fire --date``, not only once a skipped stage's time has passed
        head.append(f"这次提醒{ahead}，{unsent_text()}。")
    if occ.dry_run:
        head.append(f"{REHEARSAL_NOTE}正式发送时应确认 {b.expected} 人。")
    else:
        overdue = len(b.overdue)
        excused = len(b.excused)
        head.append(f"已确认 {b.confirmed}/{b.expected - excused} 人"
                    + (f"，逾期未确认 {overdue} 人" if overdue else "")
                    + (f"，请假等免于确认 {excused} 人" if excused else ""))
    kept = [r for r in b.rows if (match is None or match.keeps(r.unit_id, r.unit_name)) and row_kept(r, wanted)]
    filters = "、".join(filter(None, [f"单位“{match.query}”（含下级单位）" if match and match.query else "",
                                     f"状态“{wanted}”" if wanted else ""]))
    if filters:
        head.append(f"筛选：{filters}，共 {len(kept)} 人")
    if not kept:
        return "\n".join([*head, "", "没有符合筛选条件的人员。"])
    # who owes first; each part in the board's order (units in the admins' order, then as fired): a stable sort
    kept.sort(key=lambda r: r.confirmed_at is not None)
    shown = kept if limit is None else kept[:limit]
    rows = [board_cells(r, occ.dry_run, names) for r in shown]
    text = "\n".join(head) + "\n\n" + table(["状态", "姓名", "单位", "确认时间", "方式", "备注"], rows)
    if len(shown) < len(kept):
        states = Counter("演练" if occ.dry_run else row_state(r) for r in kept)
        summary = "，".join(f"{label} {n} 人" for label, n in states.most_common())
        text += (f"\n\n只列出前 {len(shown)} 人，另有 {len(kept) - len(shown)} 人未列出"
                 f"（共 {len(kept)} 人：{summary}）。加 --all 列出全部，或用 --unit 单位、--status 状态筛选。")
    return text


def board_cells(r: BoardRow, dry_run: bool, names: Mapping[str, str]) -> list[str]:
    """One line of the board's table."""
    if r.confirmed_at is None and r.excused_at is None:  # who still owes: most of a large board
        state = "演练" if dry_run else "逾期未确认" if r.overdue_since is not None else "未确认"
        return [state, r.name, r.unit_name or "", "", "", one_line(r.note or "")]
    return ["演练" if dry_run else row_state(r), r.name, r.unit_name or "", local_text(r.confirmed_at),
            via_text(r, names), one_line(r.note or excused_text(r, names))]



OUTCOME_DAYS = 30  # `status` lists stages missed or sent late this many days back


async def fire_outcomes_text(runtime: Runtime, now: datetime, reminder_id: str | None,
                             reader: reads.Reader | None = None) -> str:
    """Stages missed (错过) or sent late (补发) in the last days, newest first, then those not sent because
    their occurrence went out ahead (``remindbot fire``), naming who fired it; empty when none."""
    async with nullcontext(reader) if reader is not None else reading(runtime) as r:
        rows = await reads.settled(r, ("missed", "late", "skipped"), now - timedelta(days=OUTCOME_DAYS),
                                   now + timedelta(seconds=1), reminders=(reminder_id,) if reminder_id else ())
    lines = lines_for(runtime, rows)
    failed = [line for line in lines if line.row.status != "skipped"]
    ahead = [line for line in lines if line.row.status == "skipped"]
    parts = []
    if failed:
        missed = sum(1 for line in failed if line.row.status == "missed")
        head = f"未能按时发出的提醒（最近 {OUTCOME_DAYS} 天）：错过 {missed} 项，补发 {len(failed) - missed} 项"
        parts.append("\n".join([head,
                                *(f"  【{SETTLED_LABELS[line.row.status]}】{line.text}" for line in failed)]))
    if ahead:
        parts.append("\n".join([f"已提前发出、届时未再发送的提醒（最近 {OUTCOME_DAYS} 天）：{len(ahead)} 项",
                                *(f"  {line.text}" for line in ahead)]))
    return "\n\n".join(parts)


@click.command()
@click.argument("reminder_id", required=False, metavar="[提醒标识]")
@click.option("--unit", "unit", default="", metavar="单位",
              help="只看这个单位及其下级单位（单位标识或名称；名称不完整时按包含它的单位）。")
@click.option("--status", "wanted", type=click.Choice(STATUS_CHOICES), default=None, metavar="状态",
              help=f"只看这种状态的人：{'、'.join(STATUS_CHOICES)}（未确认含逾期未确认）。")
@click.option("--date", "on", type=DAY, default=None, metavar="YYYY-MM-DD",
              help="看这一天（北京时间）的那次提醒（默认最近一次）。")
@click.option("--all", "everyone", is_flag=True,
              help=f"列出全部人员（默认每次提醒最多列出 {STATUS_ROWS} 人，其余只计数）。")
def status(reminder_id: str | None, unit: str, wanted: str | None, on: datetime | None, everyone: bool) -> None:
    """查看最近一次（或 --date 那天的）提醒的确认情况：谁已确认（时间、方式、备注），谁未确认，谁已逾期。"""

    async def work(runtime: Runtime) -> str:
        async with reading(runtime) as reader:
            return await _status(runtime, reader, reminder_id, unit, wanted, on, everyone)

    click.echo(run(work, database=False))


async def _status(runtime: Runtime, reader: reads.Reader, reminder_id: str | None, unit: str, wanted: str | None,
                  on: datetime | None, everyone: bool) -> str:
    now = runtime.clock()
    outcomes = await fire_outcomes_text(runtime, now, reminder_id, reader)
    try:
        occs, moves = (await latest_occurrences(runtime, reader, reminder_id), []) if on is None \
            else await occurrences_on(runtime, reader, reminder_id, on.date())
    except CliError as exc:
        if not outcomes:
            raise
        return f"{outcomes}\n\n{exc}"
    outcomes = "\n\n".join(filter(None, [outcomes, *moves]))
    if not occs:
        none = "还没有需要确认的提醒记录。" if on is None else f"{date_text(on.date())}没有需要确认的提醒记录。"
        return "\n\n".join(filter(None, [outcomes, none]))
    boards = await boards_of(reader, occs, now)
    names = PeopleNames(runtime.schedules)
    match = resolve(runtime.schedules, unit)
    outcomes = "\n\n".join(filter(None, [outcomes, match_note(match)]))
    texts = (board_text(b, now, names, match=match, wanted=wanted, limit=None if everyone else STATUS_ROWS)
             for b in boards)
    return "\n\n".join(filter(None, [outcomes, *texts]))
