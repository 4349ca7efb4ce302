"""status, confirm, report: who has confirmed, recording a confirmation for someone, figures."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import click
from sqlalchemy import exists
from sqlmodel import col, select

from bot.cli.output import write_output
from bot.cli.people import NoSuchPerson, person_named
from bot.config import gcpause
from bot.config.models import DEFAULT_TZ, Schedules
from bot.confirming.confirmations import VIA_LABELS, Board, BoardRow, boards_for
from bot.reporting.csvfile import excel_bytes
from bot.reporting.reports import FORMATS, format_rows, percent, period_bounds, rehearsals, totals, unit_figures
from bot.reporting.textable import one_line, table
from bot.reporting.unitmatch import UnitMatch, match_note, resolve
from bot.runtime import Runtime
from bot.scheduling.datewords import date_text, when_text
from bot.scheduling.firelog import SETTLED_LABELS, lines_for, settled
from bot.settings import Settings
from storage.models import Confirmation, Expectation, Occurrence

ZONE = ZoneInfo(DEFAULT_TZ)
T = TypeVar("T")


class CliError(Exception):
    """A problem the admin must fix; the message is Chinese and is printed as is."""


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The service's runtime (schedules, calendar, renderer, database) for one command; when the
    schedules have errors, the last good ones, said first on stderr (an admin records a confirmation
    given by phone while a broken edit waits to be fixed)."""
    from bot.runtime import open_runtime as service_runtime

    try:
        async with service_runtime(settings, last_good=True) as runtime:
            if runtime.refused is not None:
                from bot.cli.schedule import say_last_good

                say_last_good(runtime.refused)
            yield runtime
    except Exception as exc:
        from bot.config.issues import ConfigError, bounded

        if not isinstance(exc, ConfigError):
            raise
        shown, more = bounded(exc.issues)
        lines = [str(issue) for issue in shown] + ([more] if more else [])
        raise CliError("\n".join([*lines, f"日程配置有 {len(exc.issues)} 处错误，请修改后再试。"])) from None


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


def run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the runtime, do the work, print a CliError and exit 1."""

    async def main() -> T:
        async with open_runtime(Settings()) as runtime:
            return await work(runtime)

    try:
        # A command that runs once and exits (gcpause.FREEZE) keeps the collector paused for its
        # work, as while its schedules load: a province's report or board is 20,000 rows of tuples,
        # lists and strings and no cycles worth a pass (its passes cost ``report`` ~0.1 s of ~1.2 s).
        with gcpause.no_gc() if gcpause.FREEZE else nullcontext():
            return asyncio.run(main())
    except CliError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(ZONE):%Y-%m-%d %H:%M}"


# ---------------------------------------------------------------- status


async def occurrences_on(runtime: Runtime, reminder_id: str | None, on: date) -> tuple[list[Occurrence], list[str]]:
    """The occurrences with people owing a confirmation due on the local day ``on`` (the service's
    zone), of one reminder or of each: real ones first, then rehearsals, by due time; with those the
    holiday rule moved off ``on`` (``status --date 2026-12-20`` for the 12-18 it became), each said
    in a note (a Chinese line, also for one skipped)."""
    s = runtime.schedules
    if reminder_id is not None and reminder_id not in s.reminders:
        from bot.cli.unknown import unknown_reminder  # difflib: only when an id is unknown

        raise CliError(unknown_reminder(s.reminders, reminder_id))
    start = datetime.combine(on, datetime.min.time(), tzinfo=ZONE)
    has_people = exists().where(Expectation.occurrence_id == Occurrence.id)
    stmt = select(Occurrence).where(has_people, col(Occurrence.due_at) >= start.astimezone(UTC),
                                    col(Occurrence.due_at) < (start + timedelta(days=1)).astimezone(UTC))
    if reminder_id is not None:
        stmt = stmt.where(Occurrence.reminder_id == reminder_id)
    async with runtime.db.session() as session:
        found = list((await session.exec(stmt.order_by(col(Occurrence.dry_run), col(Occurrence.due_at),
                                                        col(Occurrence.reminder_id)))).all())
    moved, notes = await moved_occurrences(runtime, reminder_id, on, {o.reminder_id for o in found})
    found += moved
    if reminder_id is not None and not found:
        none = f"“{s.reminders[reminder_id].title}”在 {date_text(on)} 没有需要确认的提醒记录。"
        raise CliError("\n".join([*notes, none]) if notes else none)
    return found, notes


async def moved_occurrences(runtime: Runtime, reminder_id: str | None, on: date,
                            seen: set[str]) -> tuple[list[Occurrence], list[str]]:
    """The occurrences (with people owing) the holiday rule moved off the local day ``on``, of one
    reminder or of each asking for confirmation (but those in ``seen``, found on the day itself), and
    a note for each move: ``“主题党日”2026年12月20日是星期日，已调整到 2026年12月18日（星期五）09:00（记录号 6）。``"""
    from bot.cli.schedule import moved_from, moved_text

    s = runtime.schedules
    reminders = ([s.reminders[reminder_id]] if reminder_id is not None
                 else [r for r in s.reminders.values() if r.confirm is not None])
    has_people = exists().where(Expectation.occurrence_id == Occurrence.id)
    found: list[Occurrence] = []
    notes: list[str] = []
    for reminder in reminders:
        due = None if reminder.id in seen else moved_from(reminder, runtime.calendar, on)
        if due is None:
            continue
        said = f"“{reminder.title}”{moved_text(due, on, reminder.zone)}"
        if due.skipped:
            notes.append(f"{said}。")
            continue
        stmt = select(Occurrence).where(has_people, Occurrence.reminder_id == reminder.id,
                                        Occurrence.due_at == due.due_at.astimezone(UTC))
        async with runtime.db.session() as session:
            occs = list((await session.exec(stmt.order_by(col(Occurrence.dry_run)))).all())
        numbers = "、".join(str(o.id) for o in occs)
        notes.append(f"{said}（记录号 {numbers}）。" if occs else f"{said}，还没有需要确认的提醒记录。")
        found += occs
    return found, notes


async def latest_occurrences(runtime: Runtime, reminder_id: str | None) -> list[Occurrence]:
    """The latest occurrence with people owing a confirmation, of one reminder or of each.

    A rehearsal never hides the real board: each reminder's latest real occurrence comes first,
    then its latest dry run when that is due later (shown marked 演练, without figures).
    """
    s = runtime.schedules
    if reminder_id is None:
        ids = [r.id for r in s.reminders.values() if r.confirm is not None]
    else:
        ids = [reminder_id]
    has_people = exists().where(Expectation.occurrence_id == Occurrence.id)
    found: list[Occurrence] = []
    async with runtime.db.session() as session:
        for rid in ids:
            latest: Occurrence | None = None
            for dry_run in (False, True):
                stmt = (select(Occurrence).where(Occurrence.reminder_id == rid, has_people,
                                                 Occurrence.dry_run == dry_run)
                        .order_by(col(Occurrence.due_at).desc()).limit(1))
                occ = (await session.exec(stmt)).first()
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
    kept.sort(key=lambda r: (r.confirmed_at is not None, r.unit_id or "", r.person_id))
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


class Number(click.ParamType):
    """A number the admin reads somewhere (``where``), with a Chinese error naming it otherwise."""

    def __init__(self, name: str, where: str) -> None:
        self.name, self.where = name, where

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return int(str(value))
        except ValueError:
            self.fail(f"“{value}”不是{self.name}：{self.name}是数字，{self.where}", param, ctx)


RECORD_NUMBER = Number("记录号", "可用 remindbot status 查看")  # as `remindbot status` prints it


OUTCOME_DAYS = 30  # `status` lists stages missed or sent late this many days back


async def fire_outcomes_text(runtime: Runtime, now: datetime, reminder_id: str | None) -> str:
    """Stages missed (错过) or sent late (补发) in the last days, newest first; empty when none."""
    rows = await settled(runtime.db, now - timedelta(days=OUTCOME_DAYS), now + timedelta(seconds=1),
                         reminder_ids=(reminder_id,) if reminder_id else ())
    if not rows:
        return ""
    lines = [f"  【{SETTLED_LABELS[line.row.status]}】{line.text}" for line in lines_for(runtime, rows)]
    missed = sum(1 for r in rows if r.status == "missed")
    head = f"未能按时发出的提醒（最近 {OUTCOME_DAYS} 天）：错过 {missed} 项，补发 {len(rows) - missed} 项"
    return "\n".join([head, *lines])


@click.command()
@click.argument("reminder_id", required=False, metavar="[提醒标识]")
@click.option("--unit", "unit", default="", metavar="单位",
              help="只看这个单位及其下级单位（单位标识或名称；名称不完整时按包含它的单位）。")
@click.option("--status", "wanted", type=click.Choice(STATUS_CHOICES), default=None, metavar="状态",
              help=f"只看这种状态的人：{'、'.join(STATUS_CHOICES)}（未确认含逾期未确认）。")
@click.option("--date", "on", type=click.DateTime(["%Y-%m-%d"]), default=None, metavar="YYYY-MM-DD",
              help="看这一天（北京时间）的那次提醒（默认最近一次）。")
@click.option("--all", "everyone", is_flag=True,
              help=f"列出全部人员（默认每次提醒最多列出 {STATUS_ROWS} 人，其余只计数）。")
def status(reminder_id: str | None, unit: str, wanted: str | None, on: datetime | None, everyone: bool) -> None:
    """查看最近一次（或 --date 那天的）提醒的确认情况：谁已确认（时间、方式、备注），谁未确认，谁已逾期。"""

    async def work(runtime: Runtime) -> str:
        now = runtime.clock()
        outcomes = await fire_outcomes_text(runtime, now, reminder_id)
        try:
            occs, moves = (await latest_occurrences(runtime, reminder_id), []) if on is None \
                else await occurrences_on(runtime, reminder_id, on.date())
        except CliError as exc:
            if not outcomes:
                raise
            return f"{outcomes}\n\n{exc}"
        outcomes = "\n\n".join(filter(None, [outcomes, *moves]))
        if not occs:
            none = "还没有需要确认的提醒记录。" if on is None else f"{date_text(on.date())}没有需要确认的提醒记录。"
            return "\n\n".join(filter(None, [outcomes, none]))
        boards = await boards_for(runtime.db, [o.id for o in occs if o.id is not None], now)
        names = PeopleNames(runtime.schedules)
        match = resolve(runtime.schedules, unit)
        outcomes = "\n\n".join(filter(None, [outcomes, match_note(match)]))
        texts = (board_text(b, now, names, match=match, wanted=wanted, limit=None if everyone else STATUS_ROWS)
                 for b in boards)
        return "\n\n".join(filter(None, [outcomes, *texts]))

    click.echo(run(work))


# ---------------------------------------------------------------- confirm


async def expected_person(runtime: Runtime, occurrence_id: int, who: str) -> tuple[Occurrence, Expectation]:
    """The occurrence and the expectation of ``who`` (a person id, or a name) on it; CliError otherwise."""
    s = runtime.schedules
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
            from bot.cli.unknown import unknown_person  # difflib: only when an id is unknown

            raise CliError(unknown_person(s.people, who))
        raise CliError(f"{name} 不在 “{occ.title}”（记录号 {occurrence_id}）的确认名单中，无需确认")
    return occ, match[0]


async def _admin_confirm(runtime: Runtime, occurrence_id: int, who: str, admin_id: str,
                         note: str | None) -> str:
    admin = _admin_named(runtime, admin_id)
    occ, exp = await expected_person(runtime, occurrence_id, who)
    if occ.dry_run:
        raise CliError(f"记录号 {occurrence_id} 是演练记录（未真正发送），不能登记确认")
    async with runtime.db.session() as session:
        conf = (await session.exec(select(Confirmation).where(
            Confirmation.occurrence_id == occurrence_id, Confirmation.person_id == exp.person_id))).first()
    if conf is not None:
        how = VIA_LABELS.get(conf.via, conf.via)
        return f"{exp.person_name} 已于 {local_text(conf.confirmed_at)} 通过{how}确认过，本次未重复记录。"
    from bot.confirming.actions import ActionRefused, confirm_for

    try:  # the web's 代为登记: the confirmation and its audit row (操作记录 on the board)
        done = await confirm_for(runtime, occurrence_id, exp.person_id, admin=admin.record, note=note,
                                 now=runtime.clock())
    except ActionRefused as exc:
        raise CliError(str(exc)) from None
    return (f"已代录：{exp.person_name} 已完成 “{occ.title}”（记录号 {occurrence_id}），"
            f"登记时间 {local_text(done.row.at)}，代录人 {admin.name}。")


BY_HELP = ("管理员：管理后台的管理员名字（REMINDBOT_ADMINS 或 REMINDBOT_ADMIN_USER，须在本命令的环境中设置），"
           "或日程配置中角色为 admin 的人员标识或姓名")


@dataclass(frozen=True)
class Acting:
    """The admin given to ``--by``: what the audit row carries (``record``) and the name shown."""

    record: str
    name: str


def web_admin_names(settings: Settings) -> list[str]:
    """The admin area's admins (REMINDBOT_ADMINS, REMINDBOT_ADMIN_USER); empty when unreadable."""
    from bot.admins import AdminConfigError, parse_admins

    try:
        names = list(parse_admins(settings.admins.get_secret_value()))
    except AdminConfigError:
        names = []
    return [*names, *([settings.admin_user] if settings.admin_user and settings.admin_user not in names else [])]


def _admin_named(runtime: Runtime, who: str) -> Acting:
    """The admin given to --by: a web admin by name (recorded by name, as the web does), or a
    schedules person with role admin by id or name (recorded by id). CliError lists who may act."""
    web_admins = web_admin_names(runtime.settings)
    if who in web_admins:
        return Acting(who, who)
    people = runtime.schedules.people
    admin = people.get(who)
    if admin is None:
        named = [p for p in people.values() if p.name == who]
        if len(named) > 1:
            raise CliError(f"有多人名为 “{who}”，--by 请改用人员标识（{'、'.join(p.id for p in named)}）")
        admin = named[0] if named else None
    if admin is None or "admin" not in admin.roles:
        yaml_admins = [f"{p.name}（{p.id}）" for p in people.values() if "admin" in p.roles]
        allowed = [*(f"{n}（管理后台）" for n in web_admins), *yaml_admins]
        listed = ("、".join(allowed) if allowed
                  else "（没有：请设置 REMINDBOT_ADMINS，或在日程配置中给人员加上 admin 角色）")
        raise CliError(f"“{who}” 不是管理员：--by 须写管理后台的管理员名字（REMINDBOT_ADMINS、REMINDBOT_ADMIN_USER）"
                       f"或日程配置中角色为 admin 的人员标识或姓名。可以操作的有：{listed}")
    return Acting(admin.id, admin.name)


@click.command()
@click.argument("occurrence_id", type=RECORD_NUMBER, metavar="记录号")
@click.argument("person", metavar="人员")
@click.option("--by", "admin_id", required=True, help=BY_HELP)
@click.option("--note", default=None, help="备注，例如 “电话确认，参会 23 人”")
def confirm(occurrence_id: int, person: str, admin_id: str, note: str | None) -> None:
    """代为登记确认：某人通过电话等其他方式告知已完成时，由管理员记录（标明代录人）。"""
    click.echo(run(lambda runtime: _admin_confirm(runtime, occurrence_id, person, admin_id, note)))


# ---------------------------------------------------------------- link


async def links_base(runtime: Runtime) -> tuple[str, str]:
    """The base URL for links this command prints, and a Chinese line on where it came from ("" when
    this command's environment sets it, or it is the running service's own).

    Without REMINDBOT_BASE_URL here, the running service's (kept with its heartbeat): a service
    started with another PORT in another terminal would otherwise get links to port 8080 (trial 12)."""
    from bot.delivery.lanes import service_base_url

    s = runtime.settings
    if not s.base_url_is_default:
        return s.base_url, ""
    found = await service_base_url(runtime.db, runtime.clock(), s.heartbeat_stale_seconds)
    if found == s.base_url:
        return found, ""
    if found:
        return found, f"（本命令的环境未设置 REMINDBOT_BASE_URL，链接地址 {found} 取自正在运行的服务）"
    # A service in --dry-run starts no dispatcher, so it leaves no heartbeat either: said so.
    return s.base_url, ("注意：没有找到正在运行的服务（以 --dry-run 启动的服务不记录地址），"
                        f"链接按默认地址 {s.base_url} 生成（未设置 REMINDBOT_BASE_URL 时"
                        "为 http://127.0.0.1:端口，端口取 PORT，默认 8080）。服务用了别的地址或端口时，请在运行本命令的"
                        "环境中设置与服务相同的 REMINDBOT_BASE_URL（大家能访问的公开地址）后重新运行。")


def _with_note(text: str, note: str) -> str:
    return f"{text}\n{note}" if note else text


async def _link(runtime: Runtime, occurrence_id: int, who: str) -> str:
    from bot.confirming.tokens import confirm_url, make_token

    occ, exp = await expected_person(runtime, occurrence_id, who)
    token = make_token(runtime.link_key, occurrence_id, exp.person_id, now=runtime.clock())
    base, note = await links_base(runtime)
    url = confirm_url(base, token)
    head = f"{exp.person_name} 的个人确认链接（“{occ.title}”，记录号 {occurrence_id}）："
    days = runtime.settings.link_ttl_days
    if occ.dry_run:
        return _with_note(f"{head}\n{url}\n注意：这是演练记录的链接，打开后只能查看确认页面的样子，不能登记确认。"
                          f"有效期 {days} 天。", note)
    return _with_note(f"{head}\n{url}\n此链接可代表本人登记确认，有效期 {days} 天；"
                      "请只交给本人，不要发到群里或写进日志。", note)


@click.command()
@click.argument("occurrence_id", type=RECORD_NUMBER, metavar="记录号")
@click.argument("person", metavar="人员")
def link(occurrence_id: int, person: str) -> None:
    """打印某人某次提醒的个人确认链接（供管理员在终端查看或转交本人；人员写标识或姓名）。"""
    click.echo(run(lambda runtime: _link(runtime, occurrence_id, person)))


async def _leader_link(runtime: Runtime, who: str) -> str:
    from bot.scheduling.occurrences import leader_url

    s = runtime.schedules
    try:
        person = person_named(s, who)
    except NoSuchPerson as exc:
        raise CliError(str(exc)) from None
    units = s.units_overseen_by(person.id)
    if not units:
        leaders = [s.people[pid].name for pid in s.leader_ids()]  # the index: not people × units
        some = (f"。分管单位的领导有：{'、'.join(leaders)}" if leaders
                else "。日程配置中还没有单位写明分管领导（leaders）")
        raise CliError(f"{person.name} 没有分管的单位（日程配置中没有单位把此人列为 leaders），没有领导页面{some}")
    base, note = await links_base(runtime)
    url = leader_url(runtime, person.id, base=base)
    return _with_note(f"{person.name} 的领导页面（分管 {len(units)} 个单位，只读，无需登录）：\n{url}\n"
                      f"有效期 {runtime.settings.view_ttl_days} 天；请只交给本人，不要发到群里。", note)


@click.command(name="leader-link")
@click.argument("person", metavar="人员")
def leader_link(person: str) -> None:
    """打印某位分管领导的个人页面链接（只读：分管单位的完成情况、逾期名单、近期趋势；人员写标识或姓名）。"""
    click.echo(run(lambda runtime: _leader_link(runtime, person)))


# ---------------------------------------------------------------- report


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
    try:
        period = period_bounds(period_spec, runtime.clock(), ZONE)
    except ValueError as exc:
        raise CliError(_period_words(str(exc))) from None
    rows = await unit_figures(runtime, period.start, period.end, reminder_ids=reminders or None,
                              unit_ids=units or None, by_parent=by_parent)
    title = f"党建工作确认情况统计（{period.label}）"
    if fmt == "csv":
        return format_rows(rows, "csv"), title
    dry = await rehearsals(runtime, period.start, period.end, reminder_ids=reminders or None)
    aside = f"\n另有 {dry} 次演练记录（演练未真正发送），不计入统计。" if dry else ""
    missed = await missed_text(runtime, period.start, period.end, reminders)
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


async def missed_text(runtime: Runtime, start: datetime, end: datetime, reminders: tuple[str, ...]) -> str:
    """The period's missed stages (never sent: downtime past the grace), as lines after the figures."""
    rows = await settled(runtime.db, start, end, statuses=("missed",), reminder_ids=reminders)
    if not rows:
        return ""
    lines = "\n".join(f"- {line.text}" for line in lines_for(runtime, rows))
    return f"\n\n本期有 {len(rows)} 项提醒因服务中断超过补发时限而未发出（错过）：\n{lines}"


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
    text, _ = run(lambda runtime: _report(runtime, period_spec, fmt, reminders, units, by_parent))
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


__all__ = ["confirm", "leader_link", "link", "open_runtime", "report", "status"]
