"""report: figures per unit over a period, ranked.

On a SQLite file at the newest schema the figures are read through ``sqlite3`` (read-only, the file
never written), with the same SQL texts the pages run through SQLAlchemy (``storage.reads``,
:func:`bot.cli.runner.reading`): neither SQLAlchemy, SQLModel nor the table models are imported,
about half of a province's report.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from bot.cli.output import write_output
from bot.cli.runner import CliError, reading, run
from bot.config.models import DEFAULT_TZ
from bot.reporting.csvfile import excel_bytes
from bot.reporting.figures import (
    FORMATS,
    PERIOD_CHARS,
    Period,
    format_rows,
    percent,
    period_bounds,
    totals,
    unit_figures,
)
from bot.runtime import Runtime
from bot.scheduling.stagelines import lines_for
from storage import reads

ZONE = ZoneInfo(DEFAULT_TZ)


def _period_words(message: str) -> str:
    """The period's error as a sentence with an example (``…的月份应在 1–12 之间`` shows none)."""
    message = message.rstrip("。")
    if "应写成" not in message:
        message += "，应写成如 2026-11（月）、2026-Q4（季度）或 2026（年）"
    return message + "。"


async def _report(runtime: Runtime, period_spec: str, fmt: str, reminders: tuple[str, ...],
                  units: tuple[str, ...], by_parent: bool) -> tuple[str, str]:
    s = runtime.schedules
    unknown = [r for r in reminders if r not in s.reminders]
    strange = [u for u in units if u not in s.units]
    if unknown or strange:
        from bot.cli.unknown import unknown_reminder, unknown_unit  # difflib: only when an id is unknown

        raise CliError("；".join([unknown_reminder(s.reminders, r) for r in unknown]
                                + [unknown_unit(s.units, u) for u in strange]))
    if len(period_spec) > PERIOD_CHARS:  # not quoted back whole (as the admin pages' ?period=)
        raise CliError(_period_words(f"错误：--period 过长：{len(period_spec):,} 个字符"))
    try:
        period = period_bounds(period_spec, runtime.clock(), ZONE)
    except ValueError as exc:
        raise CliError(_period_words(f"错误：--period：{exc}")) from None
    async with reading(runtime) as reader:
        return await _figures_text(runtime, reader, period_spec, period, fmt, reminders, units, by_parent)


async def _figures_text(runtime: Runtime, reader: reads.Reader, period_spec: str, period: Period, fmt: str,
                        reminders: tuple[str, ...], units: tuple[str, ...], by_parent: bool) -> tuple[str, str]:
    rows = await unit_figures(reader, runtime.schedules, period.start, period.end, now=runtime.clock(),
                              reminder_ids=reminders or None, unit_ids=units or None, by_parent=by_parent)
    title = f"党建工作确认情况统计（{period.label}）"
    if fmt == "csv":
        return format_rows(rows, "csv"), title
    dry = await reads.count(reader, reads.rehearsals(period.start, period.end, list(reminders) or None))
    aside = f"\n另有 {dry} 次演练记录（演练未真正发送），不计入统计。" if dry else ""
    # Stages not sent as planned (missed, or gone out ahead): lines after the figures.
    missed = (await missed_text(runtime, reader, period.start, period.end, reminders)
              + await ahead_text(runtime, reader, period.start, period.end, reminders))
    if not rows:
        other = "\n（默认统计上月；统计本月请加 --period current_month）" if period_spec == "previous_month" else ""
        return f"{title}\n\n本期没有需要确认的事项。{other}{aside}{missed}", title
    total = totals(rows)
    waiting = f"（其中 {total.pending} 项未到截止，不计入完成率）" if total.pending else ""
    footer = (f"合计：应确认 {total.expected} 项{waiting}，按时 {total.on_time} 项（{percent(total)}），"
              f"逾期确认 {total.late} 项，未确认 {total.missing} 项，催办 {total.nudges} 次"
              + (f"，请假等免于确认 {total.excused} 项（不计入应确认）。" if total.excused else "。")
              + "按按时完成率排名。")
    return f"{format_rows(rows, fmt, title=title)}\n\n{footer}{aside}{missed}", title


async def missed_text(runtime: Runtime, reader: reads.Reader, start: datetime, end: datetime,
                      reminders: tuple[str, ...]) -> str:
    """The period's missed stages (never sent: downtime past the grace), as lines after the figures."""
    rows = await reads.settled(reader, ("missed",), start, end, reminders=reminders)
    if not rows:
        return ""
    lines = "\n".join(f"- {line.text}" for line in lines_for(runtime, rows))
    return f"\n\n本期有 {len(rows)} 项提醒因服务中断超过补发时限而未发出（错过）：\n{lines}"


async def ahead_text(runtime: Runtime, reader: reads.Reader, start: datetime, end: datetime,
                     reminders: tuple[str, ...]) -> str:
    """The period's stages not sent because their occurrence went out ahead (``remindbot fire``), naming
    who fired it when recorded, as lines after the figures (and the missed ones)."""
    rows = await reads.settled(reader, ("skipped",), start, end, reminders=reminders)
    if not rows:
        return ""
    lines = "\n".join(f"- {line.text}" for line in lines_for(runtime, rows))
    return f"\n\n本期有 {len(rows)} 项提醒因已提前发出而届时未再发送：\n{lines}"


@click.command()
@click.option("--period", "period_spec", default="previous_month", show_default=True,
              help="统计周期：2026-11（月）、2026-Q4（季度）、2026（年），或 previous_month、 current_month、 "
                   "previous_quarter、 current_quarter、 previous_year")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="输出格式：table（对齐的表格）、csv、markdown")
@click.option("--reminder", "reminders", multiple=True, help="只统计某个提醒（可多次使用）")
@click.option("--unit", "units", multiple=True, help="只统计某个单位及其下级（可多次使用）")
@click.option("--by-parent", is_flag=True, help="把支部合并到所属单位统计")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="写入文件而不是输出到屏幕")
def report(period_spec: str, fmt: str, reminders: tuple[str, ...], units: tuple[str, ...], by_parent: bool,
           output: Path | None) -> None:
    """按单位统计确认情况（应确认、按时、逾期、未确认、催办次数），按按时完成率排名。"""
    text, _ = run(lambda runtime: _report(runtime, period_spec, fmt, reminders, units, by_parent), database=False)
    if fmt == "csv":  # the same bytes as the admin download: Excel needs the byte-order mark
        if output is None:
            click.echo(excel_bytes(text), nl=False)  # bytes go to the binary stream as they are
        else:
            write_output(output, excel_bytes(text))
    elif output is None:
        click.echo(text.rstrip("\n"))
        return
    else:
        write_output(output, text.encode("utf-8"))
    if output is not None:
        click.echo(f"已写入 {output}")
