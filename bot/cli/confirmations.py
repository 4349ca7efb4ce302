"""status, confirm, report: who has confirmed, recording a confirmation for someone, figures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import click
from sqlalchemy import exists
from sqlmodel import col, select

from bot.compose import when_text
from bot.config.models import DEFAULT_TZ, Person
from bot.config.yamlsource import ConfigError
from bot.confirmations import VIA_LABELS, Board, BoardRow, ConfirmationError, boards_for, record_confirmation
from bot.reports import FORMATS, format_rows, percent, period_bounds, totals, unit_figures
from bot.runtime import Runtime
from bot.settings import Settings
from bot.textable import table
from storage.models import Expectation, Occurrence

ZONE = ZoneInfo(DEFAULT_TZ)
T = TypeVar("T")


class CliError(Exception):
    """A problem the admin must fix; the message is Chinese and is printed as is."""


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The service's runtime (schedules, calendar, renderer, database) for one command."""
    from bot.service import open_runtime as service_runtime

    try:
        async with service_runtime(settings) as runtime:
            yield runtime
    except ConfigError as exc:
        lines = [str(issue) for issue in exc.issues]
        raise CliError("\n".join([*lines, f"日程配置有 {len(lines)} 处错误，请修改后再试。"])) from None


def run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the runtime, do the work, print a CliError and exit 1."""

    async def main() -> T:
        async with open_runtime(Settings()) as runtime:
            return await work(runtime)

    try:
        return asyncio.run(main())
    except CliError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None


def local_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(ZONE):%Y-%m-%d %H:%M}"


# ---------------------------------------------------------------- status


async def latest_occurrences(runtime: Runtime, reminder_id: str | None) -> list[Occurrence]:
    """The latest occurrence with people owing a confirmation, of one reminder or of each."""
    s = runtime.schedules
    if reminder_id is None:
        ids = [r.id for r in s.reminders.values() if r.confirm is not None]
    else:
        ids = [reminder_id]
    has_people = exists().where(Expectation.occurrence_id == Occurrence.id)
    found: list[Occurrence] = []
    async with runtime.db.session() as session:
        for rid in ids:
            stmt = (select(Occurrence).where(Occurrence.reminder_id == rid, has_people)
                    .order_by(col(Occurrence.due_at).desc()).limit(1))
            occ = (await session.exec(stmt)).first()
            if occ is not None:
                found.append(occ)
    if reminder_id is not None and not found:
        if reminder_id not in s.reminders:
            raise CliError(f"没有标识为 “{reminder_id}” 的提醒。可用的有：{'、'.join(s.reminders)}")
        raise CliError(f"“{s.reminders[reminder_id].title}”还没有需要确认的提醒记录。")
    return found


def row_state(row: BoardRow) -> str:
    if row.confirmed:
        return "逾期确认" if row.late else "已确认"
    return "逾期未确认" if row.overdue_since is not None else "未确认"


def via_text(row: BoardRow, names: Mapping[str, str]) -> str:
    if not row.confirmed:
        return ""
    if row.recorded_by:
        return f"{row.via_label}（{names.get(row.recorded_by, row.recorded_by)}）"
    return row.via_label


def board_text(b: Board, now: datetime, names: Mapping[str, str]) -> str:
    occ = b.occurrence
    head = [f"【{occ.title}】（{occ.reminder_id}，记录号 {occ.id}）",
            f"提醒时间：{when_text(occ.due_at.replace(tzinfo=UTC), ZONE)}"]
    if occ.deadline_at is not None:
        deadline = occ.deadline_at.replace(tzinfo=UTC)
        head[-1] += f"　确认截止：{when_text(deadline, ZONE)}{'（已过）' if deadline <= now else ''}"
    overdue = len(b.overdue)
    head.append(f"已确认 {b.confirmed}/{b.expected} 人" + (f"，逾期未确认 {overdue} 人" if overdue else ""))
    rows = [[row_state(r), r.name, r.unit_name or "", local_text(r.confirmed_at), via_text(r, names), r.note or ""]
            for r in sorted(b.rows, key=lambda r: (r.confirmed, r.unit_id or "", r.person_id))]
    return "\n".join(head) + "\n\n" + table(["状态", "姓名", "单位", "确认时间", "方式", "备注"], rows)


class RecordNumber(click.ParamType):
    """A record number as `remindbot status` prints it, with a Chinese error otherwise."""

    name = "记录号"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return int(str(value))
        except ValueError:
            self.fail(f"“{value}”不是记录号：记录号是数字，可用 remindbot status 查看", param, ctx)


@click.command()
@click.argument("reminder_id", required=False, metavar="[提醒标识]")
def status(reminder_id: str | None) -> None:
    """查看最近一次提醒的确认情况：谁已确认（时间、方式、备注），谁未确认，谁已逾期。"""

    async def work(runtime: Runtime) -> str:
        now = runtime.clock()
        occs = await latest_occurrences(runtime, reminder_id)
        if not occs:
            return "还没有需要确认的提醒记录。"
        boards = await boards_for(runtime.db, [o.id for o in occs if o.id is not None], now)
        names = {p.id: p.name for p in runtime.schedules.people.values()}
        return "\n\n".join(board_text(b, now, names) for b in boards)

    click.echo(run(work))


# ---------------------------------------------------------------- confirm


async def _admin_confirm(runtime: Runtime, occurrence_id: int, who: str, admin_id: str,
                         note: str | None) -> str:
    s = runtime.schedules
    admin = _admin_named(s.people, admin_id)
    async with runtime.db.session() as session:
        occ = await session.get(Occurrence, occurrence_id)
        if occ is None:
            raise CliError(f"找不到记录号为 {occurrence_id} 的提醒记录（记录号见 remindbot status）")
        exps = (await session.exec(select(Expectation).where(Expectation.occurrence_id == occurrence_id))).all()
    match = [e for e in exps if e.person_id == who] or [e for e in exps if e.person_name == who]
    if len(match) != 1:
        name = s.people[who].name if who in s.people else who
        if len(match) > 1:
            raise CliError(f"确认名单中有多人名为 “{who}”，请改用人员标识")
        if who not in s.people and not any(p.name == who for p in s.people.values()):
            raise CliError(f"找不到人员 “{who}”：请写日程配置中的人员标识或姓名")
        raise CliError(f"{name} 不在 “{occ.title}”（记录号 {occurrence_id}）的确认名单中，无需确认")
    exp = match[0]
    try:
        created, conf = await record_confirmation(runtime.db, occurrence_id, exp.person_id, via="admin",
                                                  note=note, recorded_by=admin.id, now=runtime.clock())
    except ConfirmationError as exc:
        raise CliError(str(exc)) from None
    if not created:
        how = VIA_LABELS.get(conf.via, conf.via)
        return f"{exp.person_name} 已于 {local_text(conf.confirmed_at)} 通过{how}确认过，本次未重复记录。"
    return (f"已代录：{exp.person_name} 已完成 “{occ.title}”（记录号 {occurrence_id}），"
            f"登记时间 {local_text(conf.confirmed_at)}，代录人 {admin.name}。")


def _admin_named(people: Mapping[str, Person], who: str) -> Person:
    """The admin given to --by, by person id or, as the person argument allows, by name."""
    admin = people.get(who)
    if admin is None:
        named = [p for p in people.values() if p.name == who]
        if len(named) > 1:
            raise CliError(f"有多人名为 “{who}”，--by 请改用人员标识（{'、'.join(p.id for p in named)}）")
        admin = named[0] if named else None
    if admin is None or "admin" not in admin.roles:
        raise CliError(f"“{who}” 不是管理员：--by 须写日程配置中角色为 admin 的人员标识或姓名")
    return admin


@click.command()
@click.argument("occurrence_id", type=RecordNumber(), metavar="记录号")
@click.argument("person", metavar="人员")
@click.option("--by", "admin_id", required=True, help="代录的管理员（人员标识或姓名，角色须为 admin）")
@click.option("--note", default=None, help="备注，例如 “电话确认，参会 23 人”")
def confirm(occurrence_id: int, person: str, admin_id: str, note: str | None) -> None:
    """代为登记确认：某人通过电话等其他方式告知已完成时，由管理员记录（标明代录人）。"""
    click.echo(run(lambda runtime: _admin_confirm(runtime, occurrence_id, person, admin_id, note)))


# ---------------------------------------------------------------- report


async def _report(runtime: Runtime, period_spec: str, fmt: str, reminders: tuple[str, ...],
                  units: tuple[str, ...], by_parent: bool) -> tuple[str, str]:
    s = runtime.schedules
    unknown = [r for r in reminders if r not in s.reminders] + [u for u in units if u not in s.units]
    if unknown:
        raise CliError(f"未知的提醒或单位标识：{'、'.join(unknown)}")
    try:
        period = period_bounds(period_spec, runtime.clock(), ZONE)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    rows = await unit_figures(runtime, period.start, period.end, reminder_ids=reminders or None,
                              unit_ids=units or None, by_parent=by_parent)
    title = f"党建工作确认情况统计（{period.label}）"
    if fmt == "csv":
        return format_rows(rows, "csv"), title
    if not rows:
        return f"{title}\n\n本期没有需要确认的事项。", title
    total = totals(rows)
    waiting = f"（其中 {total.pending} 项未到截止，不计入完成率）" if total.pending else ""
    footer = (f"合计：应确认 {total.expected} 项{waiting}，按时 {total.on_time} 项（{percent(total)}），"
              f"逾期确认 {total.late} 项，未确认 {total.missing} 项，催办 {total.nudges} 次。"
              "按按时完成率排名。")
    return f"{format_rows(rows, fmt, title=title)}\n\n{footer}", title


@click.command()
@click.option("--period", "period_spec", default="previous_month", show_default=True,
              help="统计周期：2026-11（月）、2026-Q4（季度）、2026（年），或 previous_month、current_month、"
                   "previous_quarter、current_quarter、previous_year")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="输出格式：table（对齐的表格）、csv、markdown")
@click.option("--reminder", "reminders", multiple=True, help="只统计某个提醒（可多次使用）")
@click.option("--unit", "units", multiple=True, help="只统计某个单位及其下级（可多次使用）")
@click.option("--by-parent", is_flag=True, help="把支部合并到所属单位统计")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="写入文件而不是输出到屏幕")
def report(period_spec: str, fmt: str, reminders: tuple[str, ...], units: tuple[str, ...], by_parent: bool,
           output: Path | None) -> None:
    """按单位统计确认情况（应确认、按时、逾期、未确认、催办次数），按按时完成率排名。"""
    text, _ = run(lambda runtime: _report(runtime, period_spec, fmt, reminders, units, by_parent))
    if output is None:
        click.echo(text.rstrip("\n"))
        return
    # Excel opens a CSV as UTF-8 only with a byte-order mark.
    output.write_text(text, encoding="utf-8-sig" if fmt == "csv" else "utf-8")
    click.echo(f"已写入 {output}")


__all__ = ["confirm", "open_runtime", "report", "status"]
