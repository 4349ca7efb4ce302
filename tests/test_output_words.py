"""The output reads right: stage names in Chinese, totals that agree, the provisional-year warning
once per run, log times that match the pages (Beijing time, offset written out)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from servehelp import RELOADED, STARTED, Service, Workspace
from test_fire import base_env, run_cli

from bot import logs
from bot.cli import main

BJ = ZoneInfo("Asia/Shanghai")
COVERAGE = "法定节假日安排尚未收录"
BENCH = str(Path(__file__).resolve().parent.parent / "bench")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REMINDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    return CliRunner()


def test_preview_names_the_stage_in_the_chinese_words_used_elsewhere(runner: CliRunner) -> None:
    due = runner.invoke(main, ["preview", "study-day", "--date", "2026-12-04"])
    assert due.exit_code == 0, due.output
    assert "2026年12月4日（星期五）09:00（当天提醒）" in due.output and "（due）" not in due.output
    assert "（gw_wecom，政务微信）" in due.output  # the edition as configured, not 企业微信
    notice = runner.invoke(main, ["preview", "study-day", "--date", "2026-12-04", "--stage", "notice:3d"])
    assert notice.exit_code == 0, notice.output
    assert "（提前3天通知）" in notice.output and "notice:3d）" not in notice.output
    for said in ("提前3天", "3d", "提前3天通知"):
        chinese = runner.invoke(main, ["preview", "study-day", "--date", "2026-12-04", "--stage", said])
        assert chinese.exit_code == 0 and "（提前3天通知）" in chinese.output, said
    wrong = runner.invoke(main, ["preview", "study-day", "--date", "2026-12-04", "--stage", "提前9天"])
    assert wrong.exit_code == 1 and "可写 当天（due）" in wrong.output and "3d（提前3天通知）" in wrong.output


def test_stage_words_are_chinese_for_every_stage_kind() -> None:
    from bot.scheduling.stages import stage_words

    assert [stage_words(s) for s in ("due", "notice:3d", "notice:2wd", "followup:2", "escalation:1", "report",
                                     "test")] == ["当天提醒", "提前3天通知", "提前2个工作日通知", "第2次催办",
                                                  "第1次告知领导", "通报", "测试消息"]


async def test_fire_dry_run_totals_agree_with_what_it_rehearsed(tmp_path: Path) -> None:
    code, out, err = await run_cli(base_env(tmp_path), "fire", "study-day", "--date", "2026-12-04", "--dry-run")
    assert code == 0, err
    rehearsed = int(re.search(r"演练 (\d+) 条消息", out)[1])  # type: ignore[index]
    result = re.search(r"发送结果：成功 (\d+) 条，演练 (\d+) 条，失败 (\d+) 条", out)
    assert result is not None, out
    assert (int(result[1]), int(result[2]), int(result[3])) == (0, rehearsed, 0)
    assert rehearsed == out.count("｜演练（未发送）") > 0


def test_upcoming_warns_about_provisional_years_once_naming_them_all(runner: CliRunner) -> None:
    result = runner.invoke(main, ["upcoming", "--days", "1000", "--from", "2035-01-01", "--reminder", "study-day"])
    assert result.exit_code == 0, result.output
    assert result.output.count(COVERAGE) == 1
    assert "2035、2036、2037 年的法定节假日安排尚未收录" in result.output
    assert result.output.count("临时") > 20  # every provisional date is still marked


def test_commands_that_do_not_plan_ahead_say_nothing_about_the_calendar(runner: CliRunner) -> None:
    for args in (["schema", "-o", "-"], ["preview", "study-day", "--date", "2026-12-04"], ["report"]):
        result = runner.invoke(main, args)
        assert COVERAGE not in result.output, args


def test_serve_logs_beijing_time_with_its_offset_and_the_calendar_warning_once(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # a server whose own zone is not the pages' zone
    service = Service.start(workspace)
    try:
        service.wait_ready()
        service.wait_for_log(STARTED)
        line = next(x for x in service.stdout.splitlines() if STARTED in x)
        stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+08:00) INFO ", line)
        assert stamp is not None, line
        logged = datetime.fromisoformat(stamp[1])
        assert abs(logged - datetime.now(BJ)) < timedelta(minutes=5)
        warned = workspace.validate().stdout.count(COVERAGE)  # 0 or 1: the years ahead not yet announced
        assert service.log_count(COVERAGE) == warned
        workspace.edit("study.yaml", "title: 每月学习日", "title: 每月学习日（新）")
        service.wait_for_log(RELOADED)
        assert service.log_count(COVERAGE) == warned  # a reload does not say it again
    finally:
        service.kill()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_times_are_beijing_time_with_the_offset_whatever_the_server_zone(fmt: str) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    logs.setup_logging(fmt)
    try:
        formatter = logging.getLogger().handlers[0].formatter
        assert formatter is not None
        record = logging.LogRecord("bot.test", logging.INFO, __file__, 1, "已发送", None, None)
        record.created = datetime(2026, 12, 4, 1, 0, 0, 250000, tzinfo=UTC).timestamp()  # 09:00 in Beijing
        line = formatter.format(record)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    shown = json.loads(line)["time"] if fmt == "json" else line.split(" INFO ")[0]
    assert shown.replace("T", " ") == "2026-12-04 09:00:00.250+08:00"


async def test_a_real_fire_into_channels_without_a_webhook_says_so_and_never_says_rehearsal(tmp_path: Path) -> None:
    # The shipped channels take their webhooks from the environment: none is set here.
    code, out, err = await run_cli(base_env(tmp_path), "fire", "study-day", "--date", "2026-12-04")
    assert code == 0, err
    result = re.search(r"发送结果：成功 (\d+) 条，未配置 webhook（只记录） (\d+) 条，失败 (\d+) 条", out)
    assert result is not None, out
    recorded = int(result[2])
    assert recorded == out.count("｜未配置 webhook（只记录）") > 0
    assert "演练" not in out + err  # the log too: 演练 means --dry-run only
    assert "remindbot resend <消息编号>" in out  # how to send them once a webhook is set
    numbers = re.findall(r"^  · .*｜消息编号 (\d+)$", out, re.M)  # trial 10 #2: the number was shown nowhere
    assert len(numbers) == out.count("  · ") and len(set(numbers)) == len(numbers)
    code, said, err = await run_cli(base_env(tmp_path), "resend", numbers[0], "--by", "陈静")
    assert code == 0 and "重新排队" in said, said + err


async def test_firing_again_says_the_results_shown_are_the_earlier_ones(tmp_path: Path) -> None:
    """Found by a trial: a repeated fire printed 发送结果 as if the earlier messages went again."""
    env = base_env(tmp_path)
    code, first, err = await run_cli(env, "fire", "study-day", "--date", "2026-12-04")
    assert code == 0, err
    assert "发送结果：" in first
    code, again, err = await run_cli(env, "fire", "study-day", "--date", "2026-12-04")
    assert code == 0, err
    assert "新排队 0 条消息" in again and "此前各条消息的状态（本次未新增）：成功 0 条" in again
    assert "发送结果" not in again


def test_the_docs_never_call_a_channel_without_a_webhook_a_dry_run() -> None:
    """A channel without a webhook is record-only (未配置 webhook（只记录）); 演练 is only ``--dry-run``."""
    root = Path(__file__).resolve().parent.parent
    for doc in (root / "README.md", *sorted((root / "docs").glob("*.md")), root / "schedules" / "channels.yaml"):
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if "webhook" in line.lower():
                said = line.lower().replace("--dry-run", "")
                assert not re.search(r"dry run(?! is)|留空.*演练", said), f"{doc.name}:{number}: {line}"


async def test_a_fire_into_many_channels_lists_the_first_messages_and_counts_the_rest(tmp_path: Path) -> None:
    """Found by a trial: a province's fire printed 500 lines, one per channel."""
    import sys

    sys.path.insert(0, BENCH)
    from scale import generate

    generate(tmp_path / "schedules", 200, 40, 45, 40)  # 45 channels without webhooks
    env = base_env(tmp_path) | {"REMINDBOT_SCHEDULES_DIR": str(tmp_path / "schedules")}
    code, out, err = await run_cli(env, "fire", "owed", "--date", "2026-12-04")
    assert code == 0, err
    assert "发送结果：成功 0 条，未配置 webhook（只记录） 45 条，失败 0 条" in out
    assert out.count("  · ") == 20
    assert "另有 25 条未逐条列出（未配置 webhook（只记录） 25 条）。加 --all 逐条列出全部。" in out
    code, again, err = await run_cli(env, "fire", "owed", "--date", "2026-12-04", "--all")
    assert code == 0, err
    assert again.count("  · ") == 45 and "另有" not in again
