"""validate, upcoming, schema."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from zoneinfo import ZoneInfo

import click

from bot.cli.values import DAY
from bot.config.issues import SOURCE_SUFFIXES, ConfigError, ConfigIssue, bounded
from bot.config.models import DEFAULT_TZ, Reminder, ScheduleFile, Schedules
from bot.config.snapshot import (
    Refused,
    check_for,
    checked_text,
    fallback_note,
    last_good_checked_at,
    last_good_for,
    load_for,
    load_or_last_good,
)
from bot.links import base_url_warning
from bot.reporting.textable import table
from bot.scheduling.datewords import ahead_line, date_text, weekday_text, when_text
from bot.scheduling.timing import Due, due_times, fires
from bot.scheduling.workdays import WorkCalendar
from bot.settings import ROOT, Settings

if TYPE_CHECKING:
    from storage.reads import FiredAhead

SCHEMA_PATH = ROOT / "schedules" / "remindbot.schema.json"
ZONE = ZoneInfo(DEFAULT_TZ)


def settings() -> Settings:
    return Settings()


def load_or_exit(s: Settings) -> Schedules:
    """The schedules, or their errors printed and exit 1 (commands that send: never from old schedules)."""
    try:
        return load_for(s)
    except ConfigError as exc:
        refuse(s, exc.issues)


def start_or_exit(s: Settings) -> tuple[Schedules, list[ConfigIssue], Refused | None]:
    """``serve``'s schedules and their warnings; with errors, the last good ones (and the refusal: the
    service shows it as a refused reload); with none to fall back on, the errors printed and exit 1."""
    schedules, issues = check_for(s)
    if schedules is not None:
        return schedules, [i for i in issues if i.warning], None
    errors = [i for i in issues if not i.warning]
    last = last_good_for(s)
    if last is None:
        refuse(s, errors)
    return last.schedules, last.warnings, Refused(errors, last)


def load_or_last_good_or_exit(s: Settings) -> Schedules:
    """The schedules; with errors, the last good ones (said on stderr first), else as :func:`load_or_exit`."""
    try:
        schedules, refused = load_or_last_good(s)
    except ConfigError as exc:
        refuse(s, exc.issues)
    if refused is not None:
        say_last_good(refused)
    return schedules


def say_last_good(refused: Refused) -> None:
    """On stderr: the errors' count, where to see them, and which schedules the command runs on."""
    click.echo(fallback_note(refused), err=True)


def refuse(s: Settings, errors: list[ConfigIssue]) -> NoReturn:
    """The schedules' errors on stderr, with paths as ``validate`` prints them, then exit 1."""
    from bot.config.yamlsource import shown_issue  # PyYAML: only to show a broken file's lines

    shown, more = bounded(errors)
    for issue in shown:
        click.echo(str(shown_issue(issue, s.schedules_dir, absolute=s.schedules_dir_absolute)), err=True)
    if more:
        click.echo(more, err=True)
    click.echo(f"日程配置有 {len(errors)} 处错误，请修改后再试。", err=True)
    if (checked := last_good_checked_at(s)) is not None:
        click.echo(f"正在运行的服务继续使用上一次有效的配置（{checked_text(checked)} 检查通过）；"
                   "本命令不按旧配置执行。", err=True)
    sys.exit(1)


def coverage_warnings(calendar: WorkCalendar, start: datetime, end: datetime) -> list[str]:
    """At most one line, naming every provisional year: printed once per command, not per year or date."""
    years = calendar.uncovered_years(start.date(), end.date())
    return [f"警告：{calendar.coverage_note(*years)}"] if years else []


def folder_to_check(path: Path, schedules_dir: Path) -> Path:
    """The folder ``validate`` checks for ``path``: a schedule file is read with the other files of its
    folder (the service reads them together; its channels, people and units may be defined in those),
    so alone it shows false unknown references. A file under the configured schedules folder means that
    folder; another file, its own folder when that holds other schedule files. The file alone when it
    is the whole of the schedules (REMINDBOT_SCHEDULES_DIR may name one file) or its folder's only one."""
    if not path.is_file() or path.suffix.lower() not in SOURCE_SUFFIXES:
        return path
    full, configured = path.resolve(), schedules_dir.resolve()
    if full == configured:
        return path
    if configured.is_dir() and full.is_relative_to(configured):
        return schedules_dir
    # Its folder's own files decide (not its subfolders': a file in a home folder must not walk it).
    others = [f for f in path.parent.iterdir() if f.suffix.lower() in SOURCE_SUFFIXES and f.is_file()
              and f.resolve() != full and not f.name.startswith(("~$", ".~"))]
    return path.parent if others else path


def checked_folder_line(path: Path, folder: Path) -> str:
    """The one line saying that the folder of ``path`` is checked, and why."""
    from bot.config.yamlsource import openable  # PyYAML: as for the issues shown after it

    shown = openable(folder)
    where = "所在的当前文件夹" if shown == "." else f"所在文件夹 {shown}{os.sep} "
    return (f"检查的是 {path.name} {where}中的全部日程文件"
            "（频道、人员等可以定义在其他文件中，服务也是整个文件夹一起读取）。")


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--templates", type=click.Path(path_type=Path), help="消息模板文件夹（默认 message_templates/）")
def validate(path: Path | None, templates: Path | None) -> None:
    """检查日程配置：YAML 文件和人员、单位表格（.csv、.xlsx），列出全部错误；无误时退出码为 0。

    PATH 是日程文件夹（默认 REMINDBOT_SCHEDULES_DIR，即 schedules/），也可以是其中的一个文件：
    服务把文件夹中的文件合在一起读取（频道、人员等可以定义在其他文件中），所以写一个文件时检查的是它所在的整个文件夹。

    同一错误出现在表格的多行时合并为一条（列出行号）；最多列出 200 条。"""
    s = settings()
    # Paths as serve shows them: absolute when the folder was given so (here or in REMINDBOT_SCHEDULES_DIR).
    absolute = path.is_absolute() if path is not None else s.schedules_dir_absolute
    path = path or s.schedules_dir
    folder = folder_to_check(path, s.schedules_dir)
    if folder != path:
        click.echo(checked_folder_line(path, folder))
        path = folder
    schedules, issues = check_for(s, path, templates)
    from bot.config.yamlsource import shown_issue

    # The errors are this command's report, so stdout (``remindbot validate | less`` shows them);
    # the exit code still says whether the check passed.
    shown, more = bounded(issues)
    for issue in shown:
        click.echo(str(shown_issue(issue, path, absolute=absolute)))
    if more:
        click.echo(more)
    if schedules is None:
        errors = sum(1 for i in issues if not i.warning)
        click.echo(f"\n共 {errors} 处错误，配置未通过检查。")
        # The service runs on the configured folder only: of a copy or another folder, nothing is said
        # (its last good entry, from an earlier validate, is no running service's).
        if path.resolve() == s.schedules_dir.resolve() and (checked := last_good_checked_at(s, path)) is not None:
            click.echo(f"正在运行的服务和查看、登记类命令（status、confirm、link、report 等）继续使用上一次有效的配置"
                       f"（{checked_text(checked)} 检查通过）；发送类命令（fire、send-test）在改正前不执行。")
        sys.exit(1)
    calendar = WorkCalendar(schedules.calendar)
    now = datetime.now(tz=ZONE)
    for line in coverage_warnings(calendar, now, now + timedelta(days=400)):
        click.echo(line)
    if warning := base_url_warning(s, schedules, here=True):
        click.echo(f"警告：{warning}")
    click.echo(
        f"配置无误：{len(schedules.reminders)} 个提醒，{schedules.size('people')} 人，"
        f"{schedules.size('units')} 个单位，{len(schedules.channels)} 个频道，{len(schedules.apps)} 个应用。"
    )


MOVE_REACH = timedelta(days=40)  # farthest a holiday rule moves an occurrence (the Spring Festival: about 10 days)


def moved_from(reminder: Reminder, calendar: WorkCalendar, day: date) -> Due | None:
    """The reminder's occurrence the holiday rule moved off the local date ``day`` (or skipped on
    it: ``Due.skipped``), None when none was due there."""
    start = datetime.combine(day, time.min, tzinfo=reminder.zone)
    dues = due_times(reminder, calendar, start - MOVE_REACH, start + MOVE_REACH, include_skipped=True)
    return next((d for d in dues if d.original_date == day
                 or (d.skipped and d.due_at.astimezone(reminder.zone).date() == day)), None)


def moved_text(due: Due, day: date, zone: ZoneInfo) -> str:
    """``2026年12月20日是星期日，已调整到 2026年12月18日（星期五）09:00`` (or 跳过), for a :func:`moved_from` answer."""
    why = due.holiday_name or weekday_text(day)
    if due.skipped:
        return f"{date_text(day)}是{why}，按节假日规则跳过，不提醒"
    return f"{date_text(day)}是{why}，已调整到 {when_text(due.due_at, zone)}"


def _note(due: Due) -> str:
    parts = []
    if due.skipped:
        parts.append(f"跳过（{date_text(due.due_at.date())}{'，' + due.holiday_name if due.holiday_name else ''}）")
    elif due.original_date is not None:
        reason = due.holiday_name or "非工作日"
        parts.append(f"原定 {date_text(due.original_date)}（{weekday_text(due.original_date)}，{reason}），已调整")
    if due.provisional:
        parts.append("临时")  # the one warning above the table says why
    return "；".join(parts)


@click.command()
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3660), help="查看未来多少天")
@click.option("--reminder", "reminder_id", help="只看某个提醒（标识）")
@click.option("--notices/--no-notices", default=True, show_default=True, help="是否列出提前通知")
@click.option("--from", "start_day", type=DAY, help="从哪天开始（默认现在）")
def upcoming(days: int, reminder_id: str | None, notices: bool, start_day: datetime | None) -> None:
    """列出未来的提醒时间，标出因节假日调整的日期。"""
    s = settings()
    schedules = load_or_last_good_or_exit(s)
    calendar = WorkCalendar(schedules.calendar)
    reminders = list(schedules.reminders.values())
    if reminder_id:
        if reminder_id not in schedules.reminders:
            from bot.cli.unknown import unknown_reminder  # difflib: only when an id is unknown

            click.echo(unknown_reminder(schedules.reminders, reminder_id), err=True)
            sys.exit(1)
        reminders = [schedules.reminders[reminder_id]]
    rows: list[tuple[datetime, list[str]]] = []
    start = start_day.replace(tzinfo=ZONE) if start_day else datetime.now(tz=ZONE)
    end = start + timedelta(days=days)
    fired = fired_ahead(s, start, end)
    for r in reminders:
        if not r.enabled:
            continue
        for due in due_times(r, calendar, start, end, include_skipped=True):
            stage = "跳过" if due.skipped else "当天"
            ahead = fired.get((r.id, due.due_at.astimezone(UTC)))
            if ahead is not None:  # fired by hand before its day: the service sends it no more
                stage = "已提前发出"
            note = _note(due) if ahead is None else ahead_line(when_text(ahead.at, r.zone), ahead.by)
            rows.append((due.due_at, [when_text(due.due_at, r.zone), r.title, stage, note]))
        if notices:
            for f in fires(r, calendar, start, end):
                if f.stage != "due" and f.lead is not None and (r.id, f.due.due_at.astimezone(UTC)) not in fired:
                    rows.append((f.fire_at, [when_text(f.fire_at, r.zone), r.title,
                                             f"提前{f.lead.describe()}通知", _note(f.due)]))
    rows.sort(key=lambda item: item[0])
    for line in coverage_warnings(calendar, start, end):
        click.echo(line)
    if not rows:
        click.echo(f"未来 {days} 天没有提醒。")
        return
    click.echo(table(["时间", "提醒", "类型", "说明"], [r for _, r in rows]))
    moved = sum(1 for _, r in rows if r[3].startswith(("原定", "跳过")))
    click.echo(f"\n共 {len(rows)} 项，其中 {moved} 项因节假日调整或跳过。")


UNREAD_AHEAD = "未标出已提前发出的提醒"  # what ``upcoming`` lacks when the database cannot be read


def fired_ahead(s: Settings, start: datetime, end: datetime) -> dict[tuple[str, datetime], FiredAhead]:
    """:func:`read_fired_ahead` for a command without an event loop (``upcoming``)."""
    import asyncio

    return asyncio.run(read_fired_ahead(s, start, end))


async def read_fired_ahead(s: Settings, start: datetime, end: datetime,
                           unread: str = UNREAD_AHEAD) -> dict[tuple[str, datetime], FiredAhead]:
    """The real occurrences due in [start, end) whose day message already went out (``fire --date``
    ahead of the day): (reminder id, due time in UTC) -> when, and who fired it. Read only: a SQLite file that does not
    exist yet is not created; a database that cannot be read is said on stderr (with ``unread``: what the
    command leaves out then), and nothing is marked."""
    from storage import reads

    # A SQLite file is read without SQLAlchemy, whose import and the models' cost ~0.5 s of CPU (more
    # than the rest of ``upcoming`` on the shipped schedules).
    path = reads.sqlite_file(s.database_url)
    if reads.is_sqlite(s.database_url) and (path is None or not path.is_file()):
        return {}
    try:
        return await _read_fired_ahead(s, path, start, end)
    except Exception as exc:  # the command still shows the schedules; the admin is told what is missing
        from bot.platforms.markup import redact

        click.echo(f"注意：无法读取数据库（{redact(type(exc).__name__)}），{unread}。", err=True)
        return {}


async def _read_fired_ahead(s: Settings, path: Path | None, start: datetime,
                            end: datetime) -> dict[tuple[str, datetime], FiredAhead]:
    from storage import reads

    if path is not None:
        async with reads.sqlite_reader(path) as reader:
            return await reads.fired_ahead(reader, start, end, reads.FIRED_AHEAD_LIMIT)
    from storage.db import Database

    db = Database(s.database_url, schema=s.database_schema or None)
    try:
        async with reads.engine_reader(db.engine) as reader:
            return await reads.fired_ahead(reader, start, end, reads.FIRED_AHEAD_LIMIT)
    finally:
        await db.stop()


@click.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), default=SCHEMA_PATH, show_default=True,
              help="写到哪个文件；写 - 输出到屏幕")
def schema(output: Path) -> None:
    """生成日程 YAML 的 JSON Schema，供编辑器自动补全和检查。"""
    text = schema_text()
    if str(output) == "-":
        click.echo(text)
        return
    from bot.cli.output import write_output

    write_output(output, (text + "\n").encode("utf-8"))
    click.echo(f"已写入 {output}")


def schema_text() -> str:
    data = ScheduleFile.model_json_schema(by_alias=True, mode="validation")
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    data["title"] = "remindbot 日程配置"
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
