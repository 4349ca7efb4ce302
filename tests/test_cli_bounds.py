"""Out-of-range command-line values and bad environment values end in Chinese refusals, not tracebacks.

Found by a new-user trial: a record number too large for the id columns, a ``--date`` in year 9999 or 1,
``PORT=abc`` or ``REMINDBOT_LOG_FORMAT=xml`` each ended in an English traceback (``OverflowError``,
pydantic's ``ValidationError``); ``REMINDBOT_LINK_TTL_DAYS=-5`` printed links "valid for -5 days".
Commands run through the ``remindbot`` group (click's CliRunner) on a real SQLite file with records in it,
and as a process of their own where the process's exit matters (``serve``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from test_cli_confirmations import Cli, cli  # noqa: F401  (the fixture)

from bot.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOO_LARGE = "99999999999999999999"  # past 2**63: SQLite's driver raised OverflowError


def run(cli: Cli, *args: str, **env: str) -> Result:  # noqa: F811
    """``remindbot <args>`` with the fixture's environment plus ``env``; a traceback fails the test."""
    return Cli({**cli.env, **env}, cli.study, cli.check, cli.study_due, cli.tmp).run(main, *args)


@pytest.mark.parametrize("args", [
    ["confirm", TOO_LARGE, "liu", "--by", "chen"],
    ["link", TOO_LARGE, "liu"],
    ["excuse", TOO_LARGE, "liu", "--by", "chen", "--reason", "出差：学习"],
    ["confirm", "0", "liu", "--by", "chen"],
])
def test_a_record_number_out_of_range_is_refused_in_chinese_naming_the_range(cli: Cli, args: list[str]) -> None:  # noqa: F811
    result = run(cli, *args)
    assert result.exit_code == 2, result.output
    assert (f"错误：“记录号” 的值无效：“{args[1]}” 超出范围：记录号是 1–2147483647 之间的整数，"
            "可用 remindbot status 查看。") in result.output
    assert "Traceback" not in result.output


def test_a_message_number_out_of_range_is_refused_like_a_record_number(cli: Cli) -> None:  # noqa: F811
    result = run(cli, "resend", TOO_LARGE, "--by", "chen")
    assert result.exit_code == 2, result.output
    assert (f"“消息编号” 的值无效：“{TOO_LARGE}” 超出范围：消息编号是 1–2147483647 之间的整数，"
            "见管理后台“消息投递”页。") in result.output
    words = run(cli, "confirm", "abc", "liu", "--by", "chen")
    assert words.exit_code == 2
    assert "“abc”不是记录号：记录号是 1–2147483647 之间的整数，可用 remindbot status 查看。" in words.output
    fine = run(cli, "confirm", str(cli.study), "liu", "--by", "chen")  # the bound lets a real one through
    assert fine.exit_code == 0 and "已代录：刘洋" in fine.output


@pytest.mark.parametrize("args", [
    ["preview", "study", "--date", "9999-12-31"],
    ["fire", "study", "--date", "9999-12-31", "--dry-run"],
    ["fire", "study", "--date", "0001-01-01", "--dry-run"],
    ["status", "--date", "9999-12-31"],
    ["status", "--date", "0001-01-01"],
    ["upcoming", "--from", "9999-12-31"],
])
def test_a_day_outside_the_report_s_years_is_refused_naming_the_option(cli: Cli, args: list[str]) -> None:  # noqa: F811
    result = run(cli, *args)
    option, day = args[-2:] if args[-1] != "--dry-run" else args[-3:-1]
    assert result.exit_code == 2, result.output
    assert f"错误：“{option}” 的值无效：日期 “{day}” 的年份应在 1970–2999 之间。" in result.output


def test_the_years_are_report_s_from_their_first_day_to_their_last(cli: Cli) -> None:  # noqa: F811
    assert "统计周期 “3000-01” 的年份应在 1970–2999 之间" in run(cli, "report", "--period", "3000-01").output
    for past in ("3000-01-01", "1969-12-31"):
        refused = run(cli, "upcoming", "--from", past)
        assert refused.exit_code == 2 and f"日期 “{past}” 的年份应在 1970–2999 之间。" in refused.output
    last = run(cli, "upcoming", "--from", "2999-12-31", "--days", "3")
    assert last.exit_code == 0, last.output
    assert "错误" not in last.output and "3000年1月" in last.output
    assert run(cli, "status", "--date", "1970-01-01").exit_code == 0


@pytest.mark.parametrize(("env", "args", "line"), [
    ({"PORT": "abc"}, ["status"], "环境变量 PORT 的值 “abc” 不可用：应为 1–65535 之间的整数。"),
    ({"REMINDBOT_LINK_TTL_DAYS": "abc"}, ["link", "{study}", "liu"],
     "环境变量 REMINDBOT_LINK_TTL_DAYS 的值 “abc” 不可用：应为 1–3650 之间的整数（单位：天）。"),
    ({"REMINDBOT_LINK_TTL_DAYS": "-5"}, ["link", "{study}", "liu"],
     "环境变量 REMINDBOT_LINK_TTL_DAYS 的值 “-5” 不可用：应为 1–3650 之间的整数（单位：天）。"),
    ({"REMINDBOT_LINK_TTL_DAYS": "0"}, ["link", "{study}", "liu"],
     "环境变量 REMINDBOT_LINK_TTL_DAYS 的值 “0” 不可用：应为 1–3650 之间的整数（单位：天）。"),
    ({"REMINDBOT_LOG_FORMAT": "xml"}, ["status"],
     "环境变量 REMINDBOT_LOG_FORMAT 的值 “xml” 不可用：应为 “text” 或 “json”。"),
    ({"REMINDBOT_SEND_TIMEOUT_SECONDS": "nan"}, ["preview", "study"],
     "环境变量 REMINDBOT_SEND_TIMEOUT_SECONDS 的值 “nan” 不可用：应为大于 0、不超过 86400 的数字（单位：秒）。"),
    ({"REMINDBOT_SEND_CONCURRENCY": "0"}, ["report"],
     "环境变量 REMINDBOT_SEND_CONCURRENCY 的值 “0” 不可用：应为 1–10000 之间的整数。"),
    ({"remindbot_log_level": "loud"}, ["upcoming"],
     "环境变量 REMINDBOT_LOG_LEVEL 的值 “loud” 不可用：应为 “DEBUG”、“INFO”、“WARNING”、“ERROR” 或 “CRITICAL”。"),
    ({"REMINDBOT_WORK_HOURS": "9-18"}, ["confirm", "{study}", "liu", "--by", "chen"],
     "环境变量 REMINDBOT_WORK_HOURS 的值 “9-18” 不可用：无法识别工作时间 “9-18”：应写成 09:00-12:00,14:00-18:00。"),
], ids=["port", "link-ttl-word", "link-ttl-negative", "link-ttl-zero", "log-format", "timeout-nan", "concurrency",
        "log-level", "work-hours"])
def test_a_bad_environment_value_is_named_with_its_value_and_what_it_should_be(
        cli: Cli, env: dict[str, str], args: list[str], line: str) -> None:  # noqa: F811
    result = run(cli, *[a.format(study=cli.study) for a in args], **env)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [f"错误：{line}", "请改正或删除这些环境变量（删除时用默认值）后再运行。"]


def test_every_bad_variable_is_listed_and_no_secret_is_shown(cli: Cli) -> None:  # noqa: F811
    result = run(cli, "status", PORT="99999", REMINDBOT_DRY_RUN="maybe", REMINDBOT_HEARTBEAT_SECONDS="0",
                 REMINDBOT_ADMIN_PASSWORD="correct-horse-battery")
    assert result.exit_code == 1
    assert "correct-horse-battery" not in result.output and cli.env["REMINDBOT_SECRET_KEY"] not in result.output
    assert result.output.splitlines()[:3] == [
        "错误：环境变量 PORT 的值 “99999” 不可用：应为 1–65535 之间的整数。",
        "环境变量 REMINDBOT_DRY_RUN 的值 “maybe” 不可用：应为是或否：true 或 false（也可写 yes/no、1/0、on/off）。",
        "环境变量 REMINDBOT_HEARTBEAT_SECONDS 的值 “0” 不可用：应为大于 0、不超过 86400 的数字（单位：秒）。",
    ]


def test_serve_with_a_bad_port_exits_at_once_with_the_chinese_line(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.lower().startswith("remindbot_") and k.lower() != "port"}
    done = subprocess.run([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, timeout=60, capture_output=True,
                          text=True, env=clean | {"PYTHONPATH": str(ROOT), "PORT": "abc",
                                                  "REMINDBOT_VAR_DIR": str(tmp_path / "var")})
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["错误：环境变量 PORT 的值 “abc” 不可用：应为 1–65535 之间的整数。",
                                        "请改正或删除这些环境变量（删除时用默认值）后再运行。"]
    assert not (tmp_path / "var" / "remindbot.db").exists()  # refused before anything was made


@pytest.mark.parametrize("args", [["preview", "study", "--date", "2999-12-30"],
                                  ["fire", "study", "--date", "2999-12-30", "--dry-run"]])
def test_a_day_without_a_reminder_offers_no_later_one_past_the_last_year(cli: Cli, args: list[str]) -> None:  # noqa: F811
    result = run(cli, *args)
    assert result.exit_code == 1, result.output
    assert "在 2999年12月30日 没有提醒" in result.output, result.output
    assert "3000年" not in result.output and "此后到 2999 年底（可查询的最后一年）没有提醒。" in result.output


def test_a_day_without_a_reminder_still_offers_the_next_one_within_the_years(cli: Cli) -> None:  # noqa: F811
    result = run(cli, "preview", "study", "--date", "2999-11-30")
    assert result.exit_code == 1, result.output
    assert "此后最近的一次是 2999年12月" in result.output, result.output


@pytest.mark.parametrize(("env", "lines"), [
    ({"REMINDBOT_ADMINS": "admin:shortpw"},
     ["错误：环境变量 REMINDBOT_ADMINS 的值（不显示：可能含密钥）不可用：admin 的密码不是 argon2 哈希："
      "请用 remindbot admin hash-password 生成，切勿填写明文密码。",
      "请改正或删除这些环境变量（删除时用默认值）后再运行。"]),
    ({"REMINDBOT_ADMIN_USER": "admin", "REMINDBOT_ADMIN_PASSWORD": "shortpw"},
     ["错误：REMINDBOT_ADMIN_PASSWORD 太短（7 个字符）：管理后台密码至少需要 12 个字符。"
      "请设置更长的密码，或清空它以关闭管理后台。"]),
], ids=["admins-plain-password", "admin-password-short"])
def test_serve_with_a_plain_admin_password_is_refused_like_other_variables(
        tmp_path: Path, env: dict[str, str], lines: list[str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.lower().startswith("remindbot_") and k.lower() != "port"}
    done = subprocess.run([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, timeout=60, capture_output=True,
                          text=True, env=clean | env | {"PYTHONPATH": str(ROOT),
                                                        "REMINDBOT_VAR_DIR": str(tmp_path / "var")})
    assert done.returncode == 1
    assert done.stderr.splitlines() == lines
    assert "shortpw" not in done.stderr + done.stdout  # the password, never


def test_a_number_option_s_help_and_refusal_say_its_range_in_chinese(cli: Cli) -> None:  # noqa: F811
    shown = run(cli, "upcoming", "--help")
    assert shown.exit_code == 0 and "查看未来多少天  [默认：30；1–3660]" in shown.output, shown.output
    assert "<=" not in shown.output and "; " not in shown.output
    refused = run(cli, "upcoming", "--days", "0")
    assert refused.exit_code == 2, refused.output
    assert "错误：“--days” 的值无效：0 不在范围 1–3660 之内。" in refused.output, refused.output


def test_a_report_period_is_refused_as_an_error_naming_the_option_and_a_long_one_is_not_echoed(
        cli: Cli) -> None:  # noqa: F811
    said = run(cli, "report", "--period", "9999-12").output
    assert said.startswith("错误：--period：统计周期 “9999-12” 的年份应在 1970–2999 之间"), said
    long = run(cli, "report", "--period", "x" * 7_000)
    assert long.exit_code == 1 and "--period 过长：7,000 个字符" in long.output and "x" * 30 not in long.output
