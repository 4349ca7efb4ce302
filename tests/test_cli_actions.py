"""``remindbot excuse``, ``resend`` and ``admin hash-password`` through click's CliRunner on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from test_cli_confirmations import Cli, cli  # noqa: F401  (the fixture)

from bot.admins import Accounts, parse_admins
from bot.cli import main
from bot.cli.actions import admin, excuse, resend
from bot.cli.confirmations import status


def db_path(cli: Cli) -> Path:  # noqa: F811
    return Path(cli.env["REMINDBOT_DATABASE_URL"].split("///", 1)[1])


def audit(cli: Cli) -> list[tuple[str, str, str | None, str | None]]:  # noqa: F811
    with sqlite3.connect(db_path(cli)) as db:
        return db.execute("select admin, action, person_id, reason from admin_action order by id").fetchall()


def test_excuse_by_name_takes_the_person_out_and_status_shows_it(cli: Cli) -> None:  # noqa: F811
    result = cli.run(excuse, str(cli.study), "刘洋", "--by", "陈静", "--reason", "出差：赴省委党校学习")
    assert result.exit_code == 0, result.output
    assert "已登记：刘洋 免于确认" in result.output and "登记人 陈静" in result.output
    assert audit(cli) == [("chen", "excuse", "liu", "出差：赴省委党校学习")]
    shown = cli.run(status, "study").output
    line = next(line for line in shown.splitlines() if "刘洋" in line)
    assert "请假" in line and "出差：赴省委党校学习（陈静 登记）" in line
    assert "请假等免于确认 1 人" in shown

    again = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--reason", "出差")
    assert again.exit_code == 1 and "无需重复登记" in again.output
    assert len(audit(cli)) == 1


def test_excuse_is_refused_for_someone_confirmed_a_non_admin_and_a_missing_reason(cli: Cli) -> None:  # noqa: F811
    confirmed = cli.run(excuse, str(cli.study), "wang", "--by", "chen", "--reason", "出差")
    assert confirmed.exit_code == 1 and "已经确认，无需登记请假" in confirmed.output
    not_admin = cli.run(excuse, str(cli.study), "liu", "--by", "wang", "--reason", "出差")
    assert not_admin.exit_code == 1 and "不是管理员" in not_admin.output
    blank = cli.run(excuse, str(cli.study), "liu", "--by", "chen", "--reason", "  ")
    assert blank.exit_code == 1 and "请写明原因" in blank.output
    assert audit(cli) == []


def _dead(cli: Cli, channel: str) -> int:  # noqa: F811
    with sqlite3.connect(db_path(cli)) as db:
        [(outbox_id,)] = db.execute("select id from outbox where channel_id = ? limit 1", (channel,)).fetchall()
        db.execute("update outbox set status = 'dead', attempts = 8 where id = ?", (outbox_id,))
    return outbox_id


def test_resend_requeues_a_dead_message_once_its_channel_has_a_webhook(cli: Cli) -> None:  # noqa: F811
    outbox_id = _dead(cli, "group")
    refused = cli.run(resend, str(outbox_id), "--by", "chen")
    assert refused.exit_code == 1 and "没有配置 webhook，请先修正频道配置" in refused.output
    world = cli.tmp / "schedules" / "world.yaml"  # the admin fixes the channel
    world.write_text(world.read_text(encoding="utf-8").replace(
        "{id: group, name: 党务工作群, platform: generic}",
        '{id: group, name: 党务工作群, platform: generic, webhook: "https://hooks.example.gov.cn/party"}'),
        encoding="utf-8")
    done = cli.run(resend, str(outbox_id), "--by", "陈静", "--reason", "已补上 webhook")
    assert done.exit_code == 0, done.output
    assert "已重新排队" in done.output
    with sqlite3.connect(db_path(cli)) as db:
        assert db.execute("select status, attempts from outbox where id = ?", (outbox_id,)).fetchone() == ("pending", 0)
    assert audit(cli) == [("chen", "resend", None, "已补上 webhook")]
    twice = cli.run(resend, str(outbox_id), "--by", "chen")
    assert twice.exit_code == 1 and "只有发送失败的消息可以重新发送" in twice.output


def test_hash_password_gives_a_line_for_REMINDBOT_ADMINS_that_logs_in() -> None:
    result = CliRunner().invoke(admin, ["hash-password", "--name", "陈明"],
                                input="a-long-enough-password\na-long-enough-password\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert "a-long-enough-password" not in line
    accounts = Accounts(hashes=parse_admins(line))
    assert accounts.check("陈明", "a-long-enough-password") and accounts.check("陈明", "a-long-enough-password")
    assert not accounts.check("陈明", "wrong-password-here") and not accounts.check("李华", "a-long-enough-password")
    short = CliRunner().invoke(admin, ["hash-password"], input="short\nshort\n")
    assert short.exit_code != 0 and "至少需要 12 个字符" in short.output


def test_the_commands_are_part_of_remindbot() -> None:
    names = set(main.commands)
    assert {"excuse", "resend", "admin"} <= names
