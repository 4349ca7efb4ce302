"""A yes/no option's default reads in Chinese in ``--help`` (click writes ``notices`` or ``True``)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from bot.cli import main, zh


def test_upcoming_help_says_the_notices_default_in_chinese() -> None:
    shown = CliRunner().invoke(main, ["upcoming", "--help"])
    assert shown.exit_code == 0, shown.output
    [line] = [x for x in shown.output.splitlines() if "--notices / --no-notices" in x]
    assert line.endswith("是否列出提前通知  [默认：是]"), line


def test_every_flag_pair_and_lone_flag_says_yes_or_no_and_other_defaults_stay() -> None:
    zh.install()

    @click.command()
    @click.option("--wide/--narrow", default=False, show_default=True, help="宽表")
    @click.option("--quiet", is_flag=True, default=True, show_default=True, help="安静")
    @click.option("--days", default=30, show_default=True, help="天数")
    def probe(wide: bool, quiet: bool, days: int) -> None:
        """A command only for its help."""

    zh.chinese_command(probe)
    out = CliRunner().invoke(probe, ["--help"]).output
    assert "宽表  [默认：否]" in out and "安静  [默认：是]" in out and "天数  [默认：30]" in out, out
    assert "narrow]" not in out and "True" not in out, out
