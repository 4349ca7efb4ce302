"""confirm, link, leader-link: recording a confirmation for someone, links (status and report: status.py, report.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar
from zoneinfo import ZoneInfo

import click
from sqlmodel import select

from bot.cli.people import NoSuchPerson, person_named
from bot.cli.report import _report, missed_text, report  # noqa: F401  (re-exported)
from bot.cli.runner import CliError, open_runtime, run
from bot.cli.status import PeopleNames, fire_outcomes_text, local_text, status  # noqa: F401  (re-exported)
from bot.cli.values import RECORD_NUMBER
from bot.config.models import DEFAULT_TZ
from bot.confirming.confirmations import VIA_LABELS
from bot.runtime import Runtime
from bot.settings import Settings
from storage.models import Confirmation, Expectation, Occurrence

ZONE = ZoneInfo(DEFAULT_TZ)
T = TypeVar("T")


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
    await runtime.ensure_database()  # only now: a name that is wrong is said first, whatever the database
    base, note = await links_base(runtime)
    url = leader_url(runtime, person.id, base=base)
    return _with_note(f"{person.name} 的领导页面（分管 {len(units)} 个单位，只读，无需登录）：\n{url}\n"
                      f"有效期 {runtime.settings.view_ttl_days} 天；请只交给本人，不要发到群里。", note)


@click.command(name="leader-link")
@click.argument("person", metavar="人员")
def leader_link(person: str) -> None:
    """打印某位分管领导的个人页面链接（只读：分管单位的完成情况、逾期名单、近期趋势；人员写标识或姓名）。"""
    click.echo(run(lambda runtime: _leader_link(runtime, person), database=False))


__all__ = ["confirm", "leader_link", "link", "open_runtime", "report", "status"]
