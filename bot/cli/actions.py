"""excuse, resend, admin hash-password: the admin actions of the web area, on the command line.

``--by`` names an admin: one of the admin area's (``REMINDBOT_ADMINS`` or
``REMINDBOT_ADMIN_USER``, by name; the audit row carries the name, as from the web) or a
person of the schedules with role ``admin`` (by id or name; the audit row carries the id).
Refusals are the same Chinese sentences as the web's.
"""

from __future__ import annotations

import sys

import click

from bot.admins import MIN_PASSWORD, hash_password
from bot.cli.confirmations import BY_HELP, CliError, _admin_named, expected_person, run
from bot.cli.values import MESSAGE_NUMBER, RECORD_NUMBER
from bot.confirming import actions
from bot.confirming.actions import EXCUSE_KINDS, ActionRefused
from bot.runtime import Runtime
from bot.sentences import sentence


async def _excuse(runtime: Runtime, occurrence_id: int, who: str, admin_id: str, kind: str | None,
                  reason: str | None) -> str:
    if reason is None:
        raise CliError("请用 --reason 写明原因，例如 --reason “赴省委党校学习”"
                       "（或 --reason “出差：赴省委党校学习”，类别写在开头）")
    admin = _admin_named(runtime, admin_id)
    _, exp = await expected_person(runtime, occurrence_id, who)
    try:
        done = await actions.excuse(runtime, occurrence_id, exp.person_id, admin=admin.record, kind=kind,
                                    reason=reason, now=runtime.clock())
    except ActionRefused as exc:
        raise CliError(str(exc)) from None
    return sentence(f"{done.text}。登记人 {admin.name}，原因：{done.row.reason}")


@click.command()
@click.argument("occurrence_id", type=RECORD_NUMBER, metavar="记录号")
@click.argument("person", metavar="人员")
@click.option("--by", "admin_id", required=True, help=BY_HELP)
@click.option("--kind", default=None, help=f"类别：{'、'.join(EXCUSE_KINDS)}（不写时从原因开头读，如 “出差：…”）")
@click.option("--reason", default=None, help="必填：原因，例如 “赴省委党校学习”（或 “出差：赴省委党校学习”）")
def excuse(occurrence_id: int, person: str, admin_id: str, kind: str | None, reason: str | None) -> None:
    """登记某人本次请假（出差、因公外出等）：不再催办、不再告知领导，统计中单列，不算逾期。"""
    click.echo(run(lambda runtime: _excuse(runtime, occurrence_id, person, admin_id, kind, reason)))


async def _resend(runtime: Runtime, outbox_id: int, admin_id: str, reason: str | None) -> str:
    admin = _admin_named(runtime, admin_id)
    try:
        done = await actions.resend(runtime, outbox_id, admin=admin.record, reason=reason, now=runtime.clock(),
                                    command=True)
    except ActionRefused as exc:
        raise CliError(str(exc)) from None
    channel = runtime.channel(done.row.channel_id or "")
    if channel is not None and channel.dry_run:  # no webhook here: the text says who may send it
        return f"{done.text}（登记人 {admin.name}）。"
    return f"{done.text}。正在运行的服务会尽快发送（登记人 {admin.name}）。"


@click.command()
@click.argument("outbox_id", type=MESSAGE_NUMBER, metavar="消息编号")
@click.option("--by", "admin_id", required=True, help=BY_HELP)
@click.option("--reason", default=None, help="原因，例如 “已更换 webhook”")
def resend(outbox_id: int, admin_id: str, reason: str | None) -> None:
    """把一条发送失败的消息重新排队（修正频道配置之后）。"""
    click.echo(run(lambda runtime: _resend(runtime, outbox_id, admin_id, reason)))


@click.group()
def admin() -> None:
    """管理后台的管理员账号。"""


@admin.command(name="hash-password")
@click.option("--name", default=None, help="管理员名字：给出时输出 “名字:哈希”，可直接放入 REMINDBOT_ADMINS")
@click.option("--password", default=None, help="不写时提示输入两次（不回显）；也可从标准输入读入")
def hash_password_command(name: str | None, password: str | None) -> None:
    """生成管理员密码的 argon2 哈希，用于 REMINDBOT_ADMINS（服务只保存哈希，不保存明文）。"""
    stdin = sys.stdin  # CliRunner swaps it too
    if password is None and not stdin.isatty():
        # Piped in: getpass would warn in English that it cannot hide the echo; there is none to hide.
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("标准输入中没有读到密码（应为一行密码）")
    elif password is None:  # the length is checked before asking again, not after both prompts
        password = click.prompt("密码", hide_input=True)
        if len(password) < MIN_PASSWORD:
            raise click.ClickException(f"密码至少需要 {MIN_PASSWORD} 个字符（现在 {len(password)} 个）")
        if click.prompt("再输入一次", hide_input=True) != password:
            raise click.ClickException("两次输入的密码不一致，请重新运行")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}:{hashed}" if name else hashed)


__all__ = ["admin", "excuse", "resend"]
