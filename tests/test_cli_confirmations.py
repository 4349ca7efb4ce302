"""``remindbot status``, ``confirm`` and ``report`` through click's CliRunner on a real SQLite file.

The commands read the settings from the environment and use the system clock, so the data is
placed relative to now: a study day five days ago (deadline passed) and a check an hour ago
(deadline this evening).
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import select
from test_followup import BJ, Clock, fire_due, make_runtime, write_world

from bot.cli import main
from bot.cli.confirmations import confirm, report, status
from bot.cli.runner import sentence
from bot.confirming.confirmations import NOTE_MAX, record_confirmation
from storage.models import Confirmation


@dataclass
class Cli:
    env: dict[str, str]
    study: int  # occurrence ids
    check: int
    study_due: datetime
    tmp: Path

    def run(self, command, *args: str) -> Result:  # type: ignore[no-untyped-def]
        return CliRunner().invoke(command, list(args), env=self.env, catch_exceptions=False)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    settings = write_world(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    study_due, check_due = now - timedelta(days=5), now - timedelta(hours=1)

    async def populate() -> tuple[int, int]:
        runtime = await make_runtime(settings, Clock(now))
        try:
            study = await fire_due(runtime, "study", study_due)
            check = await fire_due(runtime, "eve", check_due)
            await record_confirmation(runtime.db, study, "wang", via="link", note="参会 23 人",
                                      now=study_due + timedelta(hours=2))
            return study, check
        finally:
            await runtime.db.stop()

    study, check = asyncio.run(populate())
    env = {"REMINDBOT_DATABASE_URL": settings.database_url, "REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir),
           "REMINDBOT_VAR_DIR": str(settings.var_dir), "REMINDBOT_SECRET_KEY": settings.signing_key}
    return Cli(env, study, check, study_due, tmp_path)


def confirmations(cli: Cli) -> list[Confirmation]:
    async def read() -> list[Confirmation]:
        from storage.db import Database

        db = Database(cli.env["REMINDBOT_DATABASE_URL"])
        try:
            async with db.session() as session:
                return list((await session.exec(select(Confirmation))).all())
        finally:
            await db.stop()

    return asyncio.run(read())


def line_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if name in line)


# ---------------------------------------------------------------- status


def test_status_shows_who_confirmed_when_and_how_and_who_is_overdue(cli: Cli) -> None:
    result = cli.run(status, "study")

    assert result.exit_code == 0, result.output
    assert f"【每月学习日】（study，记录号 {cli.study}）" in result.output
    assert "已确认 1/3 人，逾期未确认 2 人" in result.output
    wang = line_of(result.output, "王芳")
    assert "已确认" in wang and "链接" in wang and "参会 23 人" in wang
    confirmed_at = (cli.study_due + timedelta(hours=2)).astimezone(BJ)
    assert f"{confirmed_at:%Y-%m-%d %H:%M}" in wang
    assert "逾期未确认" in line_of(result.output, "刘洋")
    assert "（已过）" in result.output


def test_a_note_with_line_breaks_stays_on_its_persons_line_of_the_status_table(cli: Cli) -> None:
    async def record() -> None:
        from storage.db import Database

        db = Database(cli.env["REMINDBOT_DATABASE_URL"])
        try:
            await record_confirmation(db, cli.study, "liu", via="chat", note="第一行\n第二行\r\n第三行\t完",
                                      now=cli.study_due + timedelta(hours=3))
        finally:
            await db.stop()

    asyncio.run(record())
    output = cli.run(status, "study").output
    assert "第一行 第二行 第三行 完" in line_of(output, "刘洋")
    table = output[output.index("状态"):].splitlines()
    assert not any(line.startswith(("第二行", "第三行")) for line in table)
    assert len(table) == 2 + 3  # header, rule, one line for each of the three people


def test_status_without_an_id_shows_the_latest_of_every_reminder_asking_for_confirmation(cli: Cli) -> None:
    result = cli.run(status)

    assert result.exit_code == 0, result.output
    assert "【每月学习日】" in result.output and "【节前安全检查】" in result.output
    check = result.output.split("【节前安全检查】")[1]
    assert "已确认 0/3 人" in check and "逾期" not in check  # the deadline is this evening


def test_status_of_an_unknown_reminder_says_so_in_chinese(cli: Cli) -> None:
    result = cli.run(status, "nope")

    assert result.exit_code == 1
    assert "没有标识为 “nope” 的提醒" in result.output


# ---------------------------------------------------------------- confirm


def test_an_admin_records_a_confirmation_received_by_phone(cli: Cli) -> None:
    result = cli.run(confirm, str(cli.study), "liu", "--by", "chen", "--note", "电话确认，参会 18 人")

    assert result.exit_code == 0, result.output
    assert "已代录：刘洋" in result.output and "代录人 陈静" in result.output
    liu = next(c for c in confirmations(cli) if c.person_id == "liu")
    assert (liu.via, liu.recorded_by, liu.note) == ("admin", "chen", "电话确认，参会 18 人")
    shown = line_of(cli.run(status, "study").output, "刘洋")
    assert "管理员代录（陈静）" in shown and "逾期确认" in shown


def test_confirm_accepts_a_person_s_name_and_does_not_record_twice(cli: Cli) -> None:
    assert cli.run(confirm, str(cli.check), "吴敏", "--by", "chen").exit_code == 0
    again = cli.run(confirm, str(cli.check), "wu", "--by", "chen")

    assert again.exit_code == 0
    assert "确认过，本次未重复记录" in again.output
    assert len([c for c in confirmations(cli) if c.person_id == "wu"]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{study}", "liu", "--by", "wang"], "“wang” 不是管理员"),
        (["{study}", "liu", "--by", "nobody"], "“nobody” 不是管理员"),
        (["9999", "liu", "--by", "chen"], "找不到记录号为 9999 的提醒记录"),
        (["{study}", "ghost", "--by", "chen"], "找不到人员 “ghost”"),
        (["{study}", "zhao", "--by", "chen"], "赵明 不在 “每月学习日”"),
    ],
)
def test_confirm_refuses_with_a_clear_chinese_message(cli: Cli, args: list[str], message: str) -> None:
    result = cli.run(confirm, *[a.format(study=cli.study) for a in args])

    assert result.exit_code == 1
    assert message in result.output
    assert [c.person_id for c in confirmations(cli)] == ["wang"]


# ---------------------------------------------------------------- report


def test_report_ranks_units_by_on_time_rate(cli: Cli) -> None:
    month = f"{cli.study_due.astimezone(BJ):%Y-%m}"
    result = cli.run(report, "--period", month, "--reminder", "study")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("党建工作确认情况统计（")
    ranked = [line.split()[1] for line in lines if line[:1].isdigit()]
    assert ranked[0] == "发改委第一党支部" and set(ranked[1:]) == {"发改委第二党支部", "教育局第一党支部"}
    assert "100.0%" in line_of(result.output, "发改委第一党支部")
    assert "合计：应确认 3 项，按时 1 项（33.3%）" in result.output


def test_report_as_csv_and_markdown(cli: Cli) -> None:
    month = f"{cli.study_due.astimezone(BJ):%Y-%m}"
    as_csv = cli.run(report, "--period", month, "--reminder", "study", "--format", "csv")
    assert as_csv.stdout_bytes.startswith(b"\xef\xbb\xbf")  # Excel on Chinese Windows reads it as UTF-8
    rows = list(csv.reader(io.StringIO(as_csv.stdout_bytes.decode("utf-8-sig"))))
    assert rows[0][0] == "排名" and rows[1][1] == "发改委第一党支部" and len(rows) == 4

    as_markdown = cli.run(report, "--period", month, "--reminder", "study", "--format", "markdown")
    assert "| 1 | 发改委第一党支部 | 1 | 1 | 0 | 0 | 0 | 0 | 100.0% | 0 |" in as_markdown.output


def test_report_written_to_a_csv_file_opens_in_excel(cli: Cli) -> None:
    target = cli.tmp / "report.csv"
    month = f"{cli.study_due.astimezone(BJ):%Y-%m}"
    result = cli.run(report, "--period", month, "--format", "csv", "-o", str(target))

    assert result.exit_code == 0 and "已写入" in result.output
    assert target.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8


def test_report_to_a_path_that_cannot_be_written_is_a_chinese_error_naming_it(cli: Cli) -> None:
    month = f"{cli.study_due.astimezone(BJ):%Y-%m}"
    target = cli.tmp / "no-such-folder" / "report.txt"
    result = cli.run(report, "--period", month, "-o", str(target))
    assert result.exit_code == 1
    assert result.output.strip() == f"无法写入 {target}：所在的文件夹不存在。请换一个可以写入的路径（-o/--output）。"


def test_report_refuses_a_period_it_cannot_read(cli: Cli) -> None:
    result = cli.run(report, "--period", "last-month")

    assert result.exit_code == 1
    assert "无法识别统计周期" in result.output


def test_report_of_a_month_out_of_range_is_a_sentence_with_an_example(cli: Cli) -> None:
    result = cli.run(report, "--period", "2026-13")

    assert result.exit_code == 1
    said = result.output.strip()
    assert said.endswith("的月份应在 1–12 之间，应写成如 2026-11（月）、2026-Q4（季度）或 2026（年）。"), said


def test_report_of_an_empty_period_says_there_was_nothing_to_confirm(cli: Cli) -> None:
    result = cli.run(report, "--period", "2020-01")

    assert result.exit_code == 0
    assert "本期没有需要确认的事项" in result.output
    assert "默认统计上月" not in result.output  # a period asked for: no word about the default


def test_report_of_an_unknown_unit_or_reminder_says_which_was_meant(cli: Cli) -> None:
    result = cli.run(report, "--unit", "fgw_b22", "--reminder", "studdy")

    assert result.exit_code == 1
    assert "没有标识为 “studdy” 的提醒，是不是 “study”？" in result.output
    assert "；未知的单位标识 “fgw_b22”，是不是 “fgw_b2”？" in result.output


def test_report_of_an_empty_last_month_says_how_to_see_this_month(cli: Cli) -> None:
    # A database with nothing in it, so last month is empty whatever today is (in a month's first five
    # days the fixture's study day falls in last month).
    empty = {**cli.env, "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{cli.tmp / 'empty.db'}"}
    made = CliRunner().invoke(main, ["db", "upgrade"], env=empty, catch_exceptions=False)  # report makes none
    assert made.exit_code == 0, made.output
    # The default: last month (the admin pages open on this month: trial 9).
    result = CliRunner().invoke(report, [], env=empty, catch_exceptions=False)

    assert result.exit_code == 0
    assert "本期没有需要确认的事项。\n（默认统计上月；统计本月请加 --period current_month）" in result.output


def test_confirm_by_accepts_the_admin_s_name_as_the_person_argument_does(cli: Cli) -> None:
    result = cli.run(confirm, str(cli.study), "刘洋", "--by", "陈静")

    assert result.exit_code == 0, result.output
    assert "代录人 陈静" in result.output
    liu = next(c for c in confirmations(cli) if c.person_id == "liu")
    assert liu.recorded_by == "chen"
    refused = cli.run(confirm, str(cli.check), "吴敏", "--by", "王芳")
    assert refused.exit_code == 1 and "“王芳” 不是管理员" in refused.output


def test_report_total_tells_confirmations_not_yet_due_apart(cli: Cli) -> None:
    # The month of the check, due an hour before the fixture's now (local time: at a month's first
    # hour, the check is in the month before now's).
    month = f"{(cli.study_due + timedelta(days=5, hours=-1)).astimezone(BJ):%Y-%m}"
    result = cli.run(report, "--period", month, "--reminder", "eve")

    assert result.exit_code == 0, result.output
    # Three people owe the check, its deadline is this evening: none counts against the rate yet.
    assert "合计：应确认 3 项（其中 3 项未到截止，不计入完成率），按时 0 项（—）" in result.output


def test_status_filters_by_a_unit_with_its_branches_and_by_status(cli: Cli) -> None:
    fgw = cli.run(status, "study", "--unit", "fgw")  # 王芳 and 刘洋 are in its branches, 吴敏 is not
    assert fgw.exit_code == 0, fgw.output
    assert "王芳" in fgw.output and "刘洋" in fgw.output and "吴敏" not in fgw.output
    assert "筛选：单位“fgw”（含下级单位），共 2 人" in fgw.output
    owing = cli.run(status, "study", "--status", "未确认")  # 逾期未确认 included
    assert "王芳" not in owing.output and "刘洋" in owing.output and "吴敏" in owing.output
    done = cli.run(status, "study", "--status", "已确认", "--unit", "fgw_b2")
    assert "没有符合筛选条件的人员。" in done.output
    assert cli.run(status, "study", "--status", "不知道").exit_code == 2


def test_status_of_a_large_board_lists_a_bounded_number_of_rows_and_says_how_to_see_all(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.cli.status as module

    monkeypatch.setattr(module, "STATUS_ROWS", 2)  # the three people of the study day stand for 20,000
    short = cli.run(status, "study")
    assert "刘洋" in short.output and "吴敏" in short.output and "王芳" not in short.output  # who owes first
    assert "只列出前 2 人，另有 1 人未列出（共 3 人：逾期未确认 2 人，已确认 1 人）。加 --all 列出全部" in short.output
    assert "王芳" in cli.run(status, "study", "--all").output


def test_status_says_a_unit_it_does_not_know_and_a_partial_match(cli: Cli) -> None:
    unknown = cli.run(status, "study", "--unit", "不存在")
    assert unknown.exit_code == 0, unknown.output
    assert "名单中没有名称或编号为“不存在”的单位" in unknown.output
    partial = cli.run(status, "study", "--unit", "发展")  # no unit is named exactly 发展
    assert "没有名称正好是“发展”的单位，按名称含“发展”的" in partial.output
    exact = cli.run(status, "study", "--unit", "fgw")
    assert "没有名称" not in exact.output and "名单中没有" not in exact.output


def test_status_of_a_mistyped_unit_id_or_name_says_which_were_meant_as_report_does(cli: Cli) -> None:
    """Trial 10 #8: ``status --unit fgw_b9`` gave no hint while ``report --unit fgw9`` did."""
    typo = cli.run(status, "study", "--unit", "fgw_b9")
    assert typo.exit_code == 0, typo.output
    assert ("名单中没有名称或编号为“fgw_b9”的单位，是不是 “fgw_b1” 或 “fgw_b2”？"
            "按提醒发出时记录的单位名称") in typo.output
    assert "“fgw_b1” 或 “fgw_b2”" in cli.run(report, "--unit", "fgw_b9").output  # the same words
    named = cli.run(status, "study", "--unit", "教育局第二党支部")
    assert "是不是 “教育局第一党支部”？" in named.output


def test_status_date_shows_the_occurrence_due_that_day(cli: Cli) -> None:
    settings_env = cli.env
    earlier_due = cli.study_due - timedelta(days=35)

    async def fire_earlier() -> int:
        from bot.settings import Settings

        settings = Settings(database_url=settings_env["REMINDBOT_DATABASE_URL"],
                            schedules_dir=Path(settings_env["REMINDBOT_SCHEDULES_DIR"]),
                            var_dir=Path(settings_env["REMINDBOT_VAR_DIR"]),
                            secret_key=settings_env["REMINDBOT_SECRET_KEY"])
        runtime = await make_runtime(settings, Clock(earlier_due))
        try:
            return await fire_due(runtime, "study", earlier_due)
        finally:
            await runtime.db.stop()

    earlier = asyncio.run(fire_earlier())
    latest = cli.run(status, "study")
    assert f"记录号 {cli.study}）" in latest.output and f"记录号 {earlier}）" not in latest.output
    day = f"{earlier_due.astimezone(BJ):%Y-%m-%d}"
    then = cli.run(status, "study", "--date", day)
    assert then.exit_code == 0, then.output
    assert f"记录号 {earlier}）" in then.output and f"记录号 {cli.study}）" not in then.output
    everyone = cli.run(status, "--date", day)
    assert f"记录号 {earlier}）" in everyone.output
    none = cli.run(status, "study", "--date", f"{(earlier_due - timedelta(days=1)).astimezone(BJ):%Y-%m-%d}")
    assert none.exit_code == 1 and "没有需要确认的提醒记录" in none.output


def test_status_of_a_mistyped_reminder_names_the_one_meant(cli: Cli) -> None:
    result = cli.run(status, "stduy")

    assert result.exit_code == 1
    assert "没有标识为 “stduy” 的提醒，是不是 “study”？" in result.output
    titled = cli.run(status, "每月学习日")  # the title the messages show, written for the id
    assert "没有标识为 “每月学习日” 的提醒：这是提醒 “study” 的标题，请写提醒标识 “study”" in titled.output


def test_link_to_a_mistyped_person_names_the_one_meant(cli: Cli) -> None:
    from bot.cli.confirmations import link

    by_id = cli.run(link, str(cli.study), "lui")
    assert by_id.exit_code == 1 and "找不到人员 “lui”，是不是 “liu”？" in by_id.output
    one_apart = cli.run(link, str(cli.study), "王五")  # two characters, one apart (trial 10 #8)
    assert one_apart.exit_code == 1 and "找不到人员 “王五”，是不是 “王芳”？" in one_apart.output
    stranger = cli.run(link, str(cli.study), "张三")
    assert stranger.exit_code == 1 and "找不到人员 “张三”：请写日程配置中的人员标识或姓名" in stranger.output


# ---------------------------------------------------------------- confirm refusals: one full stop (trial 15)


def refusal(cli: Cli, *args: str) -> str:
    result = cli.run(confirm, *args)
    assert result.exit_code == 1, result.output
    return result.output.rstrip("\n")


def test_confirm_refusals_end_with_exactly_one_full_stop(cli: Cli) -> None:
    assert refusal(cli, "999", "王芳", "--by", "陈静") == \
        "找不到记录号为 999 的提醒记录（记录号见 remindbot status）。"
    too_long = refusal(cli, str(cli.check), "吴敏", "--by", "陈静", "--note", "很" * (NOTE_MAX + 1))
    assert too_long == f"备注最多 {NOTE_MAX} 个字，现在有 {NOTE_MAX + 1} 个字。"
    assert refusal(cli, str(cli.check), "吴敏", "--by", "王芳").endswith("管理员名字（REMINDBOT_ADMINS、"
                                                                   "REMINDBOT_ADMIN_USER）或日程配置中角色为 admin 的"
                                                                   "人员标识或姓名。可以操作的有：陈静（chen）。")
    asked = refusal(cli, str(cli.study), "wnag", "--by", "陈静")  # a question takes no 。 after it
    assert asked.endswith("是不是 “wang”？"), asked

def test_sentence_ends_with_exactly_one_full_stop() -> None:
    assert [sentence(t) for t in ("无需确认", "无需确认。", "无需确认。。", "是不是 “wang”？", "再试。\n")] == \
        ["无需确认。", "无需确认。", "无需确认。", "是不是 “wang”？", "再试。"]
