"""``remindbot serve`` across a restart with a broken edit (trial 10 #3) and reloads that remove
reminders (trial 10 #12): real ``serve`` processes, a fake WeCom admin group counting what arrives,
a SQLite file.

* With errors at start and a last good entry (any earlier check that passed), the service starts on
  it, loudly: the errors in the log, /healthz "error since…", the admin pages' banner, the metric,
  the admin group told once; a saved fix applies and the admin group hears 【日程配置已恢复生效】.
* A reload that removes reminders names them in the log, to the admin group and on the admin pages,
  and is counted.
* Without a last good entry (a first start), ``serve`` exits with the errors as before
  (tests/test_serve.py: ``test_serve_refuses_to_start_on_invalid_schedules_and_says_where``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_migrations import PG_URL, fresh_pg_schema  # noqa: F401 (fresh_pg_schema: the fixture)
from test_schedule_limits import _Workspace, failing, fake_platforms, poll_health

from tests.servehelp import RELOADED, Service, Workspace, wait_until

MINUTE = "%Y-%m-%d %H:%M"  # the log stamp's minute, as the banner writes its times

TYPO = ("    template: study_day", "    templte: study_day")


def _metric(service: Service, name: str) -> float:
    status, text = service.get("/metrics")
    assert status == 200, text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def test_a_restart_with_a_broken_edit_runs_the_last_good_schedules_loudly_until_the_fix(tmp_path: Path) -> None:
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()  # service.admin_channel is admin_wecom
        workspace = _Workspace(**vars(Workspace.create(tmp_path)),
                               extra={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        assert workspace.validate().returncode == 0  # the check that keeps the last good entry
        workspace.edit("study.yaml", *TYPO)
        checked = workspace.validate()
        assert checked.returncode == 1 and "继续使用上一次有效的配置" in checked.stdout, checked.stdout

        service = Service.start(workspace)
        try:
            service.wait_ready()
            status, body = service.health()
            assert status == 200 and failing(body) and body["schedule_errors"] == 1, body
            assert body["reminders"] == 14  # the last good schedules run: every reminder is scheduled
            assert "templte" in service.stdout and "按上一次有效的配置" in service.stdout, service.output()
            page = service.upcoming_page()
            assert "日程配置有 1 处错误，最近的修改未生效" in page and "服务继续使用上一次有效的配置" in page
            assert "每月学习日" in page
            wait_until(lambda: any("日程配置未生效" in t for t in admin_group.texts()), "the admin group told")
            assert _metric(service, "remindbot_reload_failures_total") == 1.0

            workspace.edit("study.yaml", *reversed(TYPO))
            poll_health(service, lambda b: b["schedules"] == "ok", "the fix to apply")
            wait_until(lambda: any("日程配置已恢复生效" in t for t in admin_group.texts()), "the recovery told")
            assert "最近的修改未生效" not in service.upcoming_page()
            told = [t for t in admin_group.texts() if "日程配置" in t]
            assert len(told) == 2 and "未生效" in told[0] and "已恢复生效" in told[1], told

            # A reload that removes reminders: named in the log, to the admin group, on the pages, counted.
            workspace.replace("study.yaml", "")
            service.wait_for_log(RELOADED, count=2)
            assert "移除了 2 个提醒：每月学习日（study-day）、主题党日（theme-party-day）" in service.stdout
            wait_until(lambda: any("有内容被移除" in t for t in admin_group.texts()), "the removal told")
            removal = next(t for t in admin_group.texts() if "有内容被移除" in t)
            assert "每月学习日（study-day）" in removal and "不再发送" in removal
            page = service.upcoming_page()
            assert "移除了以下内容" in page and "每月学习日（study-day）" in page
            assert _metric(service, "remindbot_reload_removals_total") == 1.0
            assert len([t for t in admin_group.texts() if "日程配置" in t]) == 3  # nothing told twice

            # The next applied reload that removes nothing takes the banner away.
            workspace.replace("zz-note.yaml", "# 备注\n")
            service.wait_for_log(RELOADED, count=3)
            assert "移除了以下内容" not in service.upcoming_page()
        finally:
            service.kill()


def test_make_run_starts_the_service_after_a_failing_validate(tmp_path: Path) -> None:
    """``make run``'s validate step says it failed and what happens next, and does not stop the start
    (``serve`` decides): run with a stand-in ``remindbot`` whose validate fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "remindbot"
    stand_in.write_text('#!/bin/sh\necho "ran $1"\n[ "$1" != validate ]\n', encoding="utf-8")
    stand_in.chmod(0o755)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["make", "--no-print-directory", "-C", str(root), "run", f"BIN={bin_dir}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "ran validate" and "日程配置未通过检查" in out[1] and out[-1] == "ran serve", out


def test_a_service_restarting_on_the_same_broken_edit_tells_the_admin_group_once_per_distinct_problem(
        tmp_path: Path) -> None:
    """A restart loop used to repeat 【日程配置未生效】 to the admin group on every start. The database keeps
    what the group was last told: the same errors are not told again; other errors are; a start on
    fixed schedules says 已恢复生效, after which the first errors are told again."""
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()
        workspace = _Workspace(**vars(Workspace.create(tmp_path)),
                               extra={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        assert workspace.validate().returncode == 0  # the last good entry

        def told() -> list[str]:
            return [t for t in admin_group.texts() if "日程配置" in t]

        def run_once(name: str, expect: int, log: str = "remindbot 已启动") -> Service:
            service = Service.start(workspace, name=name)
            try:
                service.wait_for_log(log)
                wait_until(lambda: len(told()) >= expect, f"{expect} notices in the admin group")
                return service
            finally:
                assert service.stop() == 0, service.output()

        workspace.edit("study.yaml", *TYPO)
        run_once("first", 1)
        assert "未生效" in told()[0] and "templte" in told()[0]
        run_once("again", 1, log="此前已收到同样的日程配置错误通知")  # the same errors: not told again

        workspace.edit("study.yaml", "    template: theme_day", "    templete: theme_day")  # one more error
        run_once("other", 2)
        assert "未生效" in told()[1] and "templete" in told()[1]

        workspace.edit("study.yaml", *reversed(TYPO))
        workspace.edit("study.yaml", "    templete: theme_day", "    template: theme_day")
        run_once("fixed", 3)  # fixed while down: the group hears it
        assert "已恢复生效" in told()[2]

        workspace.edit("study.yaml", *TYPO)  # the first errors again: after a recovery, told again
        run_once("broken-again", 4)
        assert "未生效" in told()[3] and "templte" in told()[3]
        assert len(told()) == 4, told()


def test_a_restart_loop_without_an_admin_webhook_records_the_notice_once_and_says_so(tmp_path: Path) -> None:
    """The shipped default has no admin webhook: each start of a restart loop used to log 已通知管理员频道
    and queue one more record-only row. Now: recorded once, logged as only recorded; the error count is
    logged once per start."""
    workspace = Workspace.create(tmp_path)
    assert workspace.validate().returncode == 0  # the last good entry, no admin webhook in it
    workspace.edit("study.yaml", *TYPO)

    def run_once(name: str, log: str) -> Service:
        service = Service.start(workspace, name=name)
        try:
            service.wait_for_log(log)
            return service
        finally:
            assert service.stop() == 0, service.output()

    first = run_once("first", "通知只记录、不发送")
    assert "管理员频道未配置 webhook，通知只记录、不发送：日程配置未生效（1 处错误）" in first.stdout, first.output()
    assert "已通知管理员频道" not in first.output()
    assert "日程配置有 1 处错误，按上一次有效的配置" in first.output()  # said once, by bot.service
    assert "未生效；继续使用上一次有效的配置" not in first.output()  # not again by bot.watch
    again = run_once("again", "此前已收到同样的日程配置错误通知")
    assert "通知只记录、不发送" not in again.output() and "已通知管理员频道" not in again.output(), again.output()


def test_a_rehearsal_of_the_broken_edit_does_not_keep_the_real_notice_from_the_admin_group(tmp_path: Path) -> None:
    """A dry run (REMINDBOT_DRY_RUN) only rehearses the notice: the next real start with the same errors
    tells the admin group."""
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()
        workspace = _Workspace(**vars(Workspace.create(tmp_path)),
                               extra={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        assert workspace.validate().returncode == 0
        workspace.edit("study.yaml", *TYPO)
        rehearsal = Service.start(workspace, name="rehearsal", env={"REMINDBOT_DRY_RUN": "true"})
        try:
            rehearsal.wait_for_log("演练：管理员频道的通知只记录、不发送：日程配置未生效（1 处错误）")
        finally:
            assert rehearsal.stop() == 0, rehearsal.output()
        assert not admin_group.texts()
        real = Service.start(workspace, name="real")
        try:
            wait_until(lambda: any("日程配置未生效" in t for t in admin_group.texts()), "the real notice")
            assert "此前已收到同样的日程配置错误通知" not in real.output()
        finally:
            assert real.stop() == 0, real.output()


def test_a_webhook_set_since_the_last_good_check_reaches_the_admin_group(tmp_path: Path) -> None:
    """The last good copy keeps the ${VAR}s of when it was checked (no admin webhook then): a start on it
    with REMINDBOT_ADMIN_WECOM_WEBHOOK set now uses the webhook of now, so the notice arrives."""
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()
        workspace = Workspace.create(tmp_path)
        assert workspace.validate().returncode == 0  # the last good entry, without the webhook
        workspace.edit("study.yaml", *TYPO)
        service = Service.start(workspace, env={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        try:
            wait_until(lambda: any("日程配置未生效" in t for t in admin_group.texts()), "the admin group told")
            assert "只记录、不发送（未配置 webhook）：频道“机关工委" not in service.output(), service.output()
            assert "1 个频道的 webhook 或密钥已按当前环境变量更新" in service.output()
            assert admin_group.url not in service.output()
        finally:
            assert service.stop() == 0, service.output()


def test_a_start_on_unchanged_schedules_names_the_same_check_time_everywhere(tmp_path: Path) -> None:
    """A start on schedules unchanged since an earlier check reuses that check (the snapshot): the banner,
    /healthz, ``validate`` and a restart on a broken edit all name that check's time, not the start's."""
    import json

    workspace = Workspace.create(tmp_path)
    assert workspace.validate().returncode == 0
    pointer = next((workspace.var / "cache").glob("last-good-*.json"))
    entry = json.loads(pointer.read_text(encoding="utf-8"))
    entry["checked_at"] = "2026-01-05T01:09:00+00:00"  # the earlier check (09:09 in Beijing)
    pointer.write_text(json.dumps(entry), encoding="utf-8")

    service = Service.start(workspace)
    try:
        service.wait_ready()
        workspace.edit("study.yaml", *TYPO)
        poll_health(service, failing, "the broken edit refused")
        _status, body = service.health()
        assert body["checks"]["reload"]["last_good_at"].startswith("2026-01-05T01:09:00"), body
        page = service.upcoming_page()
        assert "服务继续使用上一次有效的配置（2026-01-05 09:09 检查通过）" in page, page  # as the terminal says it
    finally:
        assert service.stop() == 0, service.output()
    checked = workspace.validate()
    assert "继续使用上一次有效的配置（2026-01-05 09:09 检查通过）" in checked.stdout, checked.stdout
    again = Service.start(workspace, name="again")
    try:
        again.wait_ready()
        assert "按上一次有效的配置（2026-01-05 09:09 检查通过）启动" in again.output(), again.output()
        assert "（2026-01-05 09:09 检查通过）" in again.upcoming_page()
        # Since when the change is refused: as the terminal's refusal line is stamped (the same minute,
        # or the next when the start crossed one between the line and the state).
        logged = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d\.\d{3}\+08:00 ERROR bot\.service: 日程配置有 1 处错误",
                           again.output(), re.MULTILINE)
        since = re.search(r"（自 (\d{4}-\d\d-\d\d \d\d:\d\d) 起）", again.upcoming_page())
        assert logged and since, again.output()
        gap = datetime.strptime(since[1], MINUTE) - datetime.strptime(logged[1], MINUTE)
        assert gap in (timedelta(0), timedelta(minutes=1)), (logged[1], since[1])
    finally:
        assert again.stop() == 0, again.output()


def test_a_webhook_set_since_reaches_the_admin_group_when_the_channels_file_is_the_broken_one(
        tmp_path: Path) -> None:
    """The broken file is channels.yaml itself (it no longer parses): the last good copy still re-reads
    the admin channel's ``${REMINDBOT_ADMIN_WECOM_WEBHOOK:-}`` kept from its check, so the webhook set now
    is the one used — not the copy's (none then: the notice would only be recorded)."""
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()
        workspace = Workspace.create(tmp_path)
        assert workspace.validate().returncode == 0  # the last good entry, without the webhook
        workspace.edit("channels.yaml", "    name: 机关工委党建管理员群（政务微信）",
                       "    name: [机关工委党建管理员群（政务微信）")  # unclosed: the file does not parse
        service = Service.start(workspace, env={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        try:
            wait_until(lambda: any("日程配置未生效" in t for t in admin_group.texts()), "the admin group told")
            assert "1 个频道的 webhook 或密钥已按当前环境变量更新" in service.output()
            assert admin_group.url not in service.output()
        finally:
            assert service.stop() == 0, service.output()


@pytest.mark.postgres
def test_two_services_starting_together_on_postgres_tell_the_admin_group_once(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Two real ``serve`` processes start at the same moment on one PostgreSQL database with the same broken
    edit: the admin group hears 【日程配置未生效】 once; the other instance says it was told already.
    (Real starts rarely overlap within the milliseconds that matter: tests/test_admin_notices.py makes the
    instances read before either writes, which is what failed before the notice's key was made once.)"""
    import time

    schema = request.getfixturevalue("fresh_pg_schema")  # tests/test_migrations.py's
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()
        workspace = _Workspace(**vars(Workspace.create(tmp_path)), extra={
            "REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url, "REMINDBOT_DATABASE_URL": PG_URL,
            "REMINDBOT_DATABASE_SCHEMA": schema, "REMINDBOT_SECRET_KEY": "shared-key"})
        assert workspace.validate().returncode == 0
        workspace.edit("study.yaml", *TYPO)
        services = [Service.start(workspace, name=f"instance{n}") for n in range(2)]
        try:
            for service in services:
                service.wait_for_log("remindbot 已启动")
            outcomes = " ".join(s.stdout for s in services)
            assert outcomes.count("已通知管理员频道：日程配置未生效") == 1, outcomes
            assert outcomes.count("不再重复") == 1, outcomes  # told already, by the other (or just before it)
            wait_until(lambda: any("日程配置未生效" in t for t in admin_group.texts()), "the admin group told")
            time.sleep(2)  # both dispatchers have had their turn
            assert len([t for t in admin_group.texts() if "日程配置未生效" in t]) == 1, admin_group.texts()
        finally:
            for service in services:
                service.kill()


def test_a_signing_secret_rotated_since_is_used_when_the_apps_file_is_the_broken_one(tmp_path: Path) -> None:
    """A real ``serve`` starting on the last good copy while apps.yaml (a Slack app's
    ``signing_secret: ${SLACK_SIGNING}``) no longer parses: the secret rotated in the environment since
    the check is the one a callback is verified with (the old one is refused), and neither is logged."""
    from tests.fakes import chat

    old, new = "signing-secret-of-the-check", "signing-secret-rotated-since"
    workspace = _Workspace(**vars(Workspace.create(tmp_path)), extra={"SLACK_SIGNING": old})
    (workspace.schedules / "apps.yaml").write_text(
        "apps:\n  - id: sl\n    name: Slack 应用\n    platform: slack\n    signing_secret: ${SLACK_SIGNING}\n",
        encoding="utf-8")
    assert workspace.validate().returncode == 0  # the last good entry, with the secret of then
    workspace.edit("apps.yaml", "    name: Slack 应用", "    name: [Slack 应用")  # unclosed: does not parse
    service = Service.start(workspace, env={"SLACK_SIGNING": new})
    try:
        service.wait_ready()
        body = json.dumps({"type": "url_verification", "challenge": "c-1"}).encode()

        def call(secret: str) -> int:
            headers = chat.slack_headers(secret, str(int(time.time())), body, "application/json")
            request = urllib.request.Request(f"http://127.0.0.1:{service.port}/callback/slack/sl", data=body,
                                             headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert json.loads(response.read()) == {"challenge": "c-1"}
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert call(new) == 200, service.output()
        assert call(old) in (401, 403)
        assert "1 个应用的密钥已按当前环境变量更新" in service.output()
        assert new not in service.output() and old not in service.output()
    finally:
        assert service.stop() == 0, service.output()
