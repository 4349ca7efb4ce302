"""The ``remindbot`` command. Output meant for admins is in Chinese."""

from __future__ import annotations

from typing import Any

import click

from bot.cli import zh
from bot.cli.actions import admin, excuse, resend
from bot.cli.apps import apps
from bot.cli.confirmations import confirm, leader_link, link, report, status
from bot.cli.database import db
from bot.cli.delivery import fire_command, preview, send_test
from bot.cli.schedule import schema, serve, upcoming, validate
from storage.db import DatabaseUnavailable

zh.install()  # before the group below is built: its --version help is translated when made


class _Main(click.Group):
    """Every command: a database that cannot be used ends in one Chinese line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabaseUnavailable as exc:
            click.echo(f"错误：{exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remindbot")
def main() -> None:
    """remindbot：党建工作定期提醒机器人。"""


for command in (validate, upcoming, serve, schema, preview, fire_command, send_test, status, confirm, link, report,
                leader_link, db, apps, excuse, resend, admin):
    main.add_command(command)
zh.chinese_metavars(main)
