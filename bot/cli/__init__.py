"""The ``remindbot`` command. Output meant for admins is in Chinese."""

from __future__ import annotations

import click

from bot.cli import zh
from bot.cli.confirmations import confirm, link, report, status
from bot.cli.delivery import fire_command, preview, send_test
from bot.cli.schedule import schema, serve, upcoming, validate

zh.install()  # before the group below is built: its --version help is translated when made


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remindbot")
def main() -> None:
    """remindbot：党建工作定期提醒机器人。"""


for command in (validate, upcoming, serve, schema, preview, fire_command, send_test, status, confirm, link, report):
    main.add_command(command)
zh.chinese_metavars(main)
