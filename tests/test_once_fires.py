"""A one-off (``once``) reminder is warned of by the day it really fires, after its holiday rule.

Found by a new user's trial: the warning "不会再发出" compared the date as written, so a one-off written
for a holiday Saturday that moves to the next working day (still to come) was said never to fire; a
one-off that ``holiday: skip`` drops was never warned of at all, and fired silently never; and
``serve``'s start logged its warnings with other paths than ``validate`` prints. Real schedules folders
(copies of the shipped ones), the real calendar (chinesecalendar: 2026-10-01 to 10-07 off for the
National Day, 10-10 a working Saturday), the CLI as an admin runs it and a real ``serve`` process.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config.loader import check_schedules
from bot.scheduling.timing import next_fire
from bot.scheduling.workdays import WorkCalendar
from tests.servehelp import STARTED, Service, Workspace, where

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "message_templates"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED_ONCE = "once: 2027-03-08"  # duties.yaml's spot-check-2027q1, at 10:00, holiday: next_workday
SHIPPED_RULE = "    holiday: next_workday\n    template: spot_check"
ONE_OFF = "spot-check-2027q1"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", target)
    return target


def write_one_off(folder: Path, written: str, rule: str) -> Path:
    """The shipped one-off written for ``written`` with ``holiday: <rule>``; its file."""
    duties = folder / "duties.yaml"
    text = duties.read_text(encoding="utf-8")
    assert SHIPPED_ONCE in text and SHIPPED_RULE in text
    text = text.replace(SHIPPED_ONCE, f"once: {written}").replace(
        SHIPPED_RULE, SHIPPED_RULE.replace("next_workday", rule))
    duties.write_text(text, encoding="utf-8")
    return duties


def once_warnings(folder: Path, now: datetime) -> list[str]:
    """The warnings of the check at ``now`` on the one-off's ``when.once`` field, as validate words them."""
    schedules, issues = check_schedules(folder, templates_dir=TEMPLATES, env={}, now=now)
    assert schedules is not None, [str(i) for i in issues]
    return [str(i) for i in issues if f" 字段 reminders[{ONE_OFF}].when.once：" in str(i)]


def fires_on(folder: Path, after: datetime) -> datetime | None:
    """When the service's timer sends the one-off's due after ``after`` (None: never)."""
    schedules, _ = check_schedules(folder, templates_dir=TEMPLATES, env={}, now=after)
    assert schedules is not None
    fire = next_fire(schedules.reminders[ONE_OFF], WorkCalendar(schedules.calendar), after)
    return fire.fire_at if fire is not None else None


def test_a_one_off_moved_past_its_written_holiday_is_not_said_to_be_past_while_it_is_still_to_come(
        folder: Path) -> None:
    """Written for Saturday 2026-10-03 (National Day), moved to Thursday 10-08: on Monday 10-05 it is to come."""
    write_one_off(folder, "2026-10-03", "next_workday")
    monday = datetime(2026, 10, 5, 2, tzinfo=UTC)
    assert fires_on(folder, monday) == datetime(2026, 10, 8, 10, tzinfo=SHANGHAI)
    assert once_warnings(folder, monday) == []
    friday = datetime(2026, 10, 9, 2, tzinfo=UTC)  # the day after it fired: now it is past
    [past] = once_warnings(folder, friday)
    assert "日期 2026-10-03（按节假日规则调整到 2026-10-08）已过（今天是 2026-10-09），这个提醒不会再发出" in past


def test_a_one_off_moved_back_before_today_is_said_to_be_past_though_its_written_date_is_to_come(
        folder: Path) -> None:
    """``previous_workday``: written for 10-03, it fires on Wednesday 09-30; on 10-01 it never will."""
    write_one_off(folder, "2026-10-03", "previous_workday")
    assert fires_on(folder, datetime(2026, 9, 29, tzinfo=UTC)) == datetime(2026, 9, 30, 10, tzinfo=SHANGHAI)
    assert fires_on(folder, datetime(2026, 10, 1, tzinfo=UTC)) is None
    [past] = once_warnings(folder, datetime(2026, 10, 1, 2, tzinfo=UTC))
    assert "日期 2026-10-03（按节假日规则调整到 2026-09-30）已过（今天是 2026-10-01）" in past


def test_a_one_off_that_holiday_skip_drops_on_a_statutory_holiday_is_warned_of_where_it_is_written(
        folder: Path) -> None:
    duties = write_one_off(folder, "2026-10-03", "skip")
    before = datetime(2026, 9, 1, 2, tzinfo=UTC)
    assert fires_on(folder, before) is None  # the timer never sends it
    [skipped] = once_warnings(folder, before)
    assert skipped.startswith(f"schedules/duties.yaml:{where(duties, '2026-10-03')}: 警告 字段 reminders[{ONE_OFF}]")
    assert "日期 2026-10-03 是法定节假日（国庆节），而这个提醒写了 “holiday: skip”" in skipped
    assert "所以不会发出" in skipped and "“holiday: next_workday”" in skipped


def test_a_one_off_skipped_on_a_weekend_names_the_rest_day_and_a_disabled_one_is_not_warned_of(
        folder: Path) -> None:
    duties = write_one_off(folder, "2026-12-05", "skip")
    [skipped] = once_warnings(folder, datetime(2026, 11, 20, tzinfo=UTC))
    assert "日期 2026-12-05 是休息日（星期六），而这个提醒写了 “holiday: skip”" in skipped
    title = "    title: 组织生活抽查检查问题整改\n"
    text = duties.read_text(encoding="utf-8")
    duties.write_text(text.replace(title, f"{title}    enabled: false\n"), encoding="utf-8")
    assert once_warnings(folder, datetime(2026, 11, 20, tzinfo=UTC)) == []
    # A working Saturday (调休上班) is not skipped: 2026-10-10.
    duties.write_text(text.replace("2026-12-05", "2026-10-10"), encoding="utf-8")
    assert once_warnings(folder, datetime(2026, 9, 20, tzinfo=UTC)) == []


def test_the_skip_warning_gives_each_way_to_make_it_fire_its_own_clause(folder: Path) -> None:
    """Each way out its own clause, after a ；: not “…“holiday: next_workday”，照常在这天发出请改为…”."""
    write_one_off(folder, "2026-10-03", "skip")
    [skipped] = once_warnings(folder, datetime(2026, 9, 1, 2, tzinfo=UTC))
    assert skipped.endswith("所以不会发出；要顺延到下一个工作日，请改为 “holiday: next_workday”；"
                            "要照常在这天发出，请改为 “holiday: keep”；或者改正日期。"), skipped


# ---------------------------------------------------------------- the CLI and serve, on today's date


def one_offs_of_today(folder: Path) -> tuple[Path, str, str]:
    """Two one-offs around today (the real date: validate and serve take no clock), made so by the
    calendar's admin-listed holidays: ``moved-one-off`` written for yesterday, a listed holiday, moving
    past the holidays listed from today on (still to come); ``skipped-one-off`` on a listed holiday
    ten days ahead with ``holiday: skip``. The file and the two written dates."""
    today = datetime.now(SHANGHAI).date()
    yesterday, ahead = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=10)).isoformat()
    calendar = folder / "calendar.yaml"
    calendar.write_text(calendar.read_text(encoding="utf-8").replace("  holidays: []", (
        f"  holidays:\n    - {{from: {yesterday}, to: {(today + timedelta(days=3)).isoformat()}, name: 调整假日}}\n"
        f"    - {{date: {ahead}, name: 单位活动日}}")), encoding="utf-8")
    assert "单位活动日" in calendar.read_text(encoding="utf-8")
    file = folder / "oneoffs.yaml"
    file.write_text("reminders:\n" + "".join(
        f"  - id: {rid}\n    title: 临时事项\n    when:\n      once: {day}\n    holiday: {rule}\n"
        "    recipients:\n      channels: [gw_wecom]\n      mention: {roles: [secretary]}\n"
        for rid, day, rule in (("moved-one-off", yesterday, "next_workday"),
                               ("skipped-one-off", ahead, "skip"))), encoding="utf-8")
    return file, yesterday, ahead


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REMINDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    return CliRunner()


def test_validate_warns_of_the_skipped_one_off_and_not_of_the_one_moved_past_today(
        runner: CliRunner, folder: Path) -> None:
    file, yesterday, ahead = one_offs_of_today(folder)
    result = runner.invoke(main, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "one-off]" in line]
    assert len(lines) == 1, result.output  # the moved one fires after the listed holidays: no "已过"
    assert lines[0].startswith(f"{file}:{where(file, ahead)}: 警告 字段 reminders[skipped-one-off].when.once：")
    why = "是节假日（单位活动日，日程的 calendar.holidays 中列出），而这个提醒写了 “holiday: skip”"
    assert f"日期 {ahead} {why}" in lines[0]
    assert f"日期 {yesterday}" not in result.output and "配置无误" in result.output


def test_serve_logs_its_start_warnings_as_validate_prints_them_and_the_admin_banner_shows_the_skip(
        tmp_path: Path) -> None:
    """The workspace's folder is configured absolute (REMINDBOT_SCHEDULES_DIR), as in a deployment."""
    workspace = Workspace.create(tmp_path)
    file, _, ahead = one_offs_of_today(workspace.schedules)
    study = workspace.schedules / "study.yaml"  # a warning that is not of today's date, too
    text = study.read_text(encoding="utf-8")
    assert "remind_every: 1d" in text
    study.write_text(text.replace("remind_every: 1d", "remind_every: 30m", 1), encoding="utf-8")
    checked = workspace.validate()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    warned = [line for line in checked.stdout.splitlines() if ": 警告 " in line]
    assert any(line.startswith(f"{study}:") and "过于频繁" in line for line in warned), checked.stdout
    service = Service.start(workspace)
    try:
        service.wait_for_log(STARTED)
        missing = [line for line in warned if line not in service.stdout]
        assert not missing, service.output()  # each line, its absolute path included
        skip = next(line for line in warned if line.startswith(f"{file}:{where(file, ahead)}: 警告 "))
        assert "“holiday: skip”" in skip
        service.wait_ready()
        page = service.upcoming_page()
        assert f"<strong>注意：</strong>{skip}" in page, page
    finally:
        service.kill()


def test_a_one_off_on_a_day_the_calendar_lists_as_off_fires_when_skip_is_changed_to_next_workday(
        folder: Path) -> None:
    """The advice of the warning works: with ``next_workday`` the listed holiday moves it, and no warning."""
    file, _, ahead = one_offs_of_today(folder)
    file.write_text(file.read_text(encoding="utf-8").replace("holiday: skip", "holiday: next_workday"),
                    encoding="utf-8")
    now = datetime.now(UTC)
    schedules, issues = check_schedules(folder, templates_dir=TEMPLATES, env={}, now=now)
    assert schedules is not None and not [i for i in issues if "one-off]" in str(i)], [str(i) for i in issues]
    fire = next_fire(schedules.reminders["skipped-one-off"], WorkCalendar(schedules.calendar), now)
    assert fire is not None and fire.fire_at.date() > date.fromisoformat(ahead)


def test_a_one_off_for_today_whose_time_has_passed_is_warned_of_and_one_still_to_come_is_not(folder: Path) -> None:
    """Written for today at 10:00 (``holiday: keep``): at 09:00 it is to come; checked at 18:18 it is not
    sent today (the service plans what falls due from its start on), and the check says so."""
    write_one_off(folder, "2026-12-01", "keep")
    assert once_warnings(folder, datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI)) == []
    [passed] = once_warnings(folder, datetime(2026, 12, 1, 18, 18, tzinfo=SHANGHAI))
    assert "发送时间 2026-12-01 10:00 已过（现在是 18:18），今天不会再发出（除非已发出）" in passed, passed


def test_a_one_off_moved_to_today_by_its_holiday_rule_is_warned_of_once_its_time_has_passed(folder: Path) -> None:
    """Written for Saturday 2026-10-03, moved to Thursday 10-08 at 10:00: at 11:00 that day it has passed."""
    write_one_off(folder, "2026-10-03", "next_workday")
    assert once_warnings(folder, datetime(2026, 10, 8, 9, 59, tzinfo=SHANGHAI)) == []
    [passed] = once_warnings(folder, datetime(2026, 10, 8, 11, 0, tzinfo=SHANGHAI))
    assert "发送时间 2026-10-08 10:00（2026-10-03 按节假日规则调整到今天）已过（现在是 11:00）" in passed, passed
