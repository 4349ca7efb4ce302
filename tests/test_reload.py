"""Editing schedules/ while the service runs: a valid change applies at once, without a restart;
an invalid one is refused with the messages ``remindbot validate`` prints, and the last good
schedules keep running until the file is fixed.

The first tests drive a real ``remindbot serve`` and look where an admin would look (the log, the
admin area's upcoming page, /healthz); the last ones call ``bot.watch`` in-process, which is fast.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from servehelp import (
    REFUSED,
    RELOADED,
    ROOT,
    WAIT_SECONDS,
    Service,
    Workspace,
    error_lines,
    reminder_count,
    wait_until,
)

from bot.config.loader import check_schedules
from bot.config.models import Schedules
from bot.config.yamlsource import shown_issue
from bot.settings import Settings
from bot.watch import Reloader, reload_schedules, watch_schedules

OLD_TITLE = "每月学习日"
NEW_TITLE = "机关集中学习日"
SHIPPED_REMINDERS = reminder_count(ROOT / "schedules")
EXTRA_REMINDER = """\
reminders:
  - id: branch-election
    title: 支部换届提醒
    when:
      monthly: {day: 10}
      at: "09:00"
    template: research
    recipients:
      channels: [gw_wecom]
"""
# (file, text to replace, replacement): one typo an admin could make, and one broken YAML.
INVALID_EDITS = {
    "unknown-field": ("study.yaml", f"    title: {OLD_TITLE}", f"    titel: {OLD_TITLE}"),
    "yaml-syntax": ("study.yaml", f"    title: {OLD_TITLE}", f'    title: "{OLD_TITLE}'),
}




def _watch_errors(service: Service) -> list[str]:
    """The error messages the watcher logged, without the log line's time/level/logger prefix."""
    marker = " bot.watch: "
    return [line.split(marker, 1)[1] for line in service.stdout.splitlines()
            if marker in line and ": 错误" in line]


def _scheduled_jobs(service: Service) -> int:
    """The job count in the scheduler's last "已加载 N 个提醒" line."""
    found = re.findall(r"bot\.scheduling\.scheduler: 已加载 (\d+) 个提醒", service.stdout)
    assert found, service.output()
    return int(found[-1])


def _shows(service: Service, text: str) -> bool:
    return text in service.upcoming_page()


# ---------------------------------------------------------------- while serving


def test_a_changed_title_shows_on_the_upcoming_page_without_a_restart(
        service: Service, workspace: Workspace) -> None:
    assert _shows(service, OLD_TITLE)
    pid = service.process.pid

    workspace.edit("study.yaml", f"title: {OLD_TITLE}", f"title: {NEW_TITLE}")

    service.wait_for_log(RELOADED)
    wait_until(lambda: _shows(service, NEW_TITLE), "the new title on /admin/upcoming")
    assert not _shows(service, OLD_TITLE)
    assert service.process.poll() is None and service.process.pid == pid


def test_an_added_reminder_is_counted_and_listed_without_a_restart(
        service: Service, workspace: Workspace) -> None:
    assert service.health()[1]["reminders"] == SHIPPED_REMINDERS
    jobs = _scheduled_jobs(service)

    workspace.replace("extra.yaml", EXTRA_REMINDER)

    service.wait_for_log(f"{RELOADED}：{SHIPPED_REMINDERS + 1} 个提醒")
    wait_until(lambda: service.health()[1]["reminders"] == SHIPPED_REMINDERS + 1,
               "/healthz counting the added reminder")
    assert _shows(service, "支部换届提醒")
    # The scheduler got a job for it too, not only the pages.
    service.wait_for_log(f"bot.scheduling.scheduler: 已加载 {jobs + 1} 个提醒")


@pytest.mark.parametrize("kind", list(INVALID_EDITS))
def test_an_invalid_change_is_refused_with_the_validate_messages_and_the_last_good_schedules_keep_running(
        kind: str, service: Service, workspace: Workspace) -> None:
    name, old, new = INVALID_EDITS[kind]
    workspace.edit(name, old, new)

    service.wait_for_log(REFUSED)
    expected = error_lines(workspace.validate().stdout)
    assert expected, "validate found nothing wrong with the edit"
    assert _watch_errors(service) == expected, service.output()
    assert f"日程配置有 {len(expected)} 处错误，{REFUSED}" in service.stdout

    status, body = service.health()
    assert status == 200 and body["status"] == "ok"
    assert body["reminders"] == SHIPPED_REMINDERS
    assert _shows(service, OLD_TITLE)

    # The admin fixes the line: the fix applies without a restart.
    workspace.edit(name, new, f"    title: {NEW_TITLE}")
    service.wait_for_log(RELOADED)
    wait_until(lambda: _shows(service, NEW_TITLE), "the fixed title on /admin/upcoming")
    assert workspace.validate().returncode == 0


# ---------------------------------------------------------------- in-process


def _settings(workspace: Workspace) -> Settings:
    return Settings(
        schedules_dir=workspace.schedules,
        templates_dir=workspace.templates,
        var_dir=workspace.var,
        database_url=f"sqlite+aiosqlite:///{workspace.database}",
    )


async def test_reload_schedules_applies_a_valid_folder(workspace: Workspace,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.watch")
    workspace.edit("study.yaml", f"title: {OLD_TITLE}", f"title: {NEW_TITLE}")
    applied: list[Schedules] = []

    assert await reload_schedules(_settings(workspace), applied.append) is True

    assert len(applied) == 1
    assert applied[0].reminders["study-day"].title == NEW_TITLE
    assert f"{RELOADED}：{SHIPPED_REMINDERS} 个提醒" in caplog.text
    # the apps are counted as `validate` counts them (trial 12: the reload line left them out)
    assert re.search(r"个频道（?[^，]*，\d+ 个应用", caplog.text)


@pytest.mark.parametrize("kind", list(INVALID_EDITS))
async def test_reload_schedules_refuses_an_invalid_folder_and_logs_every_issue(
        kind: str, workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.watch")
    name, old, new = INVALID_EDITS[kind]
    workspace.edit(name, old, new)
    applied: list[Schedules] = []

    assert await reload_schedules(_settings(workspace), applied.append) is False

    assert applied == []
    _, issues = check_schedules(workspace.schedules, templates_dir=workspace.templates)
    # the folder was given absolute: so are the paths, as validate and serve show them
    expected = [str(shown_issue(i, workspace.schedules, absolute=True)) for i in issues if not i.warning]
    assert expected
    assert [m for m in caplog.messages if ": 错误" in m] == expected
    assert f"日程配置有 {len(expected)} 处错误，{REFUSED}" in caplog.messages


class _Seen(logging.Handler):
    """Sets an event when a log message contains ``text`` (the watcher logs from the event loop)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.INFO)
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_watch_schedules_applies_a_saved_fix_after_refusing_a_typo(workspace: Workspace) -> None:
    refused = _Seen(REFUSED)
    watch_log = logging.getLogger("bot.watch")
    watch_log.addHandler(refused)
    applied: asyncio.Queue[Schedules] = asyncio.Queue()
    settings = _settings(workspace)
    watcher = asyncio.create_task(watch_schedules(Reloader(settings, applied.put_nowait), settings, debounce_ms=100))
    try:
        await asyncio.sleep(0.5)  # let the watcher subscribe before the first edit
        workspace.edit("study.yaml", f"    title: {OLD_TITLE}", f"    titel: {OLD_TITLE}")
        await asyncio.wait_for(refused.event.wait(), timeout=WAIT_SECONDS)
        assert applied.empty()
        workspace.edit("study.yaml", f"    titel: {OLD_TITLE}", f"    title: {NEW_TITLE}")
        schedules = await asyncio.wait_for(applied.get(), timeout=WAIT_SECONDS)
        assert schedules.reminders["study-day"].title == NEW_TITLE
    finally:
        watch_log.removeHandler(refused)
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


# ---------------------------------------------------------------- warnings shown and counted


def _config_warnings(service: Service) -> dict[str, float]:
    status, text = service.get("/metrics")
    assert status == 200, text
    return {m[1]: float(m[2]) for m in re.finditer(r'^remindbot_config_warnings\{kind="(\w+)"\} (\S+)$', text, re.M)}


def test_the_schedules_warnings_are_logged_shown_and_counted_from_the_start_until_fixed(workspace: Workspace) -> None:
    # Trial 10: warnings (a role one typo from a used one) were logged on a reload only, shown nowhere
    # and counted nowhere; at start they were not even logged.
    workspace.edit("organization.yaml", "roles: [secretary]", "roles: [secretry]")
    warning = "角色 “secretry” 没有任何提醒使用，是不是 “secretary”？"
    service = Service.start(workspace)
    try:
        service.wait_ready()
        wait_until(lambda: _config_warnings(service), "the warnings counted once the service has started")
        assert f"警告 字段 people[wang_fang].roles[0]：{warning}" in service.stdout, service.output()
        counted = _config_warnings(service)
        assert {k: counted[k] for k in ("base_url", "host", "schedules")} == {"base_url": 0.0, "host": 0.0,
                                                                             "schedules": 1.0}
        assert "holidays" in counted  # 1.0 when a year ahead is not yet announced: it depends on today
        # The path as validate prints it (the folder is configured absolute), as after a reload.
        assert f"注意：</strong>{workspace.schedules / 'organization.yaml'}:" in service.upcoming_page()
        assert warning in service.upcoming_page()

        workspace.edit("organization.yaml", "roles: [secretry]", "roles: [secretary]")
        service.wait_for_log(RELOADED)
        wait_until(lambda: _config_warnings(service)["schedules"] == 0.0, "the warning no longer counted")
        assert warning not in service.upcoming_page()
    finally:
        service.kill()


def test_a_once_date_already_past_is_logged_and_counted_as_a_schedules_warning(workspace: Workspace) -> None:
    # Trial 12: ``once: 2025-12-08`` (a year typo) passed silently and never fired.
    workspace.edit("duties.yaml", "once: 2027-03-08", "once: 2025-12-08")
    service = Service.start(workspace)
    try:
        service.wait_ready()
        wait_until(lambda: _config_warnings(service).get("schedules") == 1.0, "the past date counted")
        past = "警告 字段 reminders[spot-check-2027q1].when.once：日期 2025-12-08 已过"
        assert past in service.stdout, service.output()
    finally:
        service.kill()


def test_a_spreadsheet_backup_left_in_the_folder_is_skipped_with_a_warning_not_refusing_the_reload(
        service: Service, workspace: Workspace) -> None:
    # Trial 10: a people.xls backup (a format the loader cannot read) refused every later change.
    (workspace.schedules / "people_old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 an old backup")
    (workspace.schedules / "~$people.xlsx").write_bytes(b"\x06owner")  # Excel's lock file: not even a warning
    (workspace.schedules / "people.xlsx.bak").write_bytes(b"PK\x03\x04 a copy")
    workspace.edit("study.yaml", f"title: {OLD_TITLE}", f"title: {NEW_TITLE}")

    service.wait_for_log(RELOADED)
    wait_until(lambda: _shows(service, NEW_TITLE), "the new title applied beside the backup")
    skipped = "未读取 people_old.xls：无法读取 .xls 格式的表格，已跳过这个文件（其余文件照常生效）"
    assert f"{workspace.schedules}/people_old.xls:1:1: 警告 {skipped}" in service.stdout, service.output()
    page = service.upcoming_page()
    assert f"注意：</strong>{workspace.schedules}/people_old.xls:1:1: 警告 {skipped}" in page
    assert "~$people.xlsx" not in service.stdout + page and "people.xlsx.bak" not in service.stdout + page
    assert _config_warnings(service)["schedules"] == 1.0
