"""``remindbot serve`` as an operator runs it: a real process, real HTTP on loopback, a SQLite file.

And ``remindbot validate`` as an admin runs it before (or instead of) a restart.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from servehelp import (
    ROOT,
    STARTED,
    STOPPED,
    STOPPING,
    Service,
    Workspace,
    error_lines,
    reminder_count,
    wait_until,
    where,
)

from bot.cli.schedule import validate

STOP_BOUND_SECONDS = 10.0
SHIPPED_REMINDERS = reminder_count(ROOT / "schedules")




# ---------------------------------------------------------------- serve


def test_serve_answers_healthz_with_status_ok_and_the_reminder_count(service: Service) -> None:
    status, body = service.health()
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["reminders"] == SHIPPED_REMINDERS


def test_serve_logs_its_start_line_to_stdout_with_address_and_reminder_count(service: Service) -> None:
    service.wait_for_log(STARTED)
    line = next(x for x in service.stdout.splitlines() if STARTED in x)
    assert f"127.0.0.1:{service.port}" in line
    assert f"{SHIPPED_REMINDERS} 个提醒" in line
    assert "Traceback" not in service.stderr


def test_serve_keeps_its_state_in_the_configured_database_and_var_dir(
        service: Service, workspace: Workspace) -> None:
    assert workspace.database.is_file()
    assert (workspace.var / "secret_key").is_file()  # no REMINDBOT_SECRET_KEY: generated and kept


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_serve_stops_cleanly_with_exit_code_0_within_seconds_on(sig: signal.Signals, service: Service) -> None:
    service.wait_for_log(STARTED)
    code = service.stop(sig)
    assert code == 0, service.output()
    assert service.stopped_in is not None and service.stopped_in < STOP_BOUND_SECONDS
    lines = service.stdout.splitlines()
    stopping = [i for i, x in enumerate(lines) if STOPPING in x]
    stopped = [i for i, x in enumerate(lines) if x.endswith(f": {STOPPED}")]
    assert stopping and stopped and stopping[0] < stopped[-1], service.output()
    assert "Traceback" not in service.stderr + service.stdout


def test_serve_refuses_to_start_on_invalid_schedules_and_says_where(workspace: Workspace) -> None:
    workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")
    running = Service.start(workspace)
    try:
        code = running.process.wait(timeout=60)
    finally:
        running.kill()
    assert code == 1
    at = where(workspace.schedules / "study.yaml", "titel:")
    # REMINDBOT_SCHEDULES_DIR is absolute here: so is the path, whatever the current folder (as validate says it)
    assert f"{workspace.schedules}/study.yaml:{at}: 错误 字段 reminders[study-day].titel：未知字段 “titel”，" \
        "是不是 “title”？" in running.stderr


# ---------------------------------------------------------------- validate


def _run_validate(folder: Path, workspace: Workspace) -> tuple[int, str, str]:
    result = CliRunner().invoke(validate, [str(folder)], env=workspace.env(), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_validate_exits_0_and_summarises_the_shipped_schedules(workspace: Workspace) -> None:
    code, out, err = _run_validate(ROOT / "schedules", workspace)
    assert code == 0, err
    assert f"配置无误：{SHIPPED_REMINDERS} 个提醒" in out
    assert error_lines(out) == []


def test_validate_exits_1_and_lists_every_error_in_every_file(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace.root)  # paths are printed relative to the folder the admin is in
    workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")
    workspace.edit("duties.yaml", "channels: [leaders_wecom]", "channels: [leader_wecom]")
    workspace.replace("broken.yaml", 'reminders:\n  - id: x\n    title: "unterminated\n')
    code, out, _err = _run_validate(Path("schedules"), workspace)  # given relative: shown relative
    study, duties = workspace.schedules / "study.yaml", workspace.schedules / "duties.yaml"
    assert code == 1
    assert error_lines(out) == [
        "schedules/broken.yaml:3:12: 错误 YAML 语法错误：引号没有成对（缺少结束的引号）。",
        f"schedules/duties.yaml:{where(duties, 'leader_wecom]')}: 错误 字段 reminders[one-post-two-duties].recipients."
        "channels[0]：未知的频道 “leader_wecom”，是不是 “leaders_wecom”？",
        f"schedules/study.yaml:{where(study, 'titel:')}: 错误 字段 reminders[study-day].titel："
        "未知字段 “titel”，是不是 “title”？",
    ]
    assert "共 3 处错误，配置未通过检查。" in out


def test_validate_run_from_elsewhere_prints_paths_that_open_from_there(
        workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.edit("duties.yaml", "channels: [leaders_wecom]", "channels: [leader_wecom]")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _, out, _ = _run_validate(workspace.schedules, workspace)
    [line] = error_lines(out)
    shown = line.split(":", 1)[0]
    assert Path(shown).is_absolute() and Path(shown).is_file(), line


def test_a_template_error_names_the_template_file_and_line(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace.root)
    template = workspace.templates / "study_day.md.j2"
    template.write_text("第一行\n{{ reminder.title }\n", encoding="utf-8")
    _, out, _ = _run_validate(workspace.schedules, workspace)
    assert "message_templates/study_day.md.j2:2" in out, out
    assert Path(workspace.root / "message_templates/study_day.md.j2").is_file()


def test_validate_as_a_command_exits_1_on_a_broken_copy(workspace: Workspace) -> None:
    workspace.edit("duties.yaml", "channels: [leaders_wecom]", "channels: [leader_wecom]")
    result = workspace.validate()
    assert result.returncode == 1
    assert len(error_lines(result.stdout)) == 1  # on stdout: `remindbot validate | less` shows them
    assert "未知的频道 “leader_wecom”" in result.stdout


def test_a_port_in_use_is_one_chinese_line_naming_it_and_exit_1_with_nothing_started(workspace: Workspace) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = Service.start(workspace, "--port", str(port))
        try:
            code = service.process.wait(timeout=60)
        finally:
            service.kill()
    assert code == 1, service.output()
    assert "Traceback" not in service.output()
    lines = [line for line in service.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, service.output()
    assert f"127.0.0.1:{port}" in lines[0] and "端口已被占用" in lines[0]
    assert "发送器已停止" not in service.stdout  # the sending loop never started
    assert STARTED not in service.stdout


def _province(folder: Path, people: int) -> None:
    """A schedules folder whose people come from a CSV big enough that the start takes a while."""
    for old in folder.glob("*.yaml"):
        old.unlink()
    (folder / "channels.yaml").write_text(
        "service: {admin_channel: c0}\nchannels:\n  - {id: c0, name: 群0, platform: wecom, webhook: ''}\n",
        encoding="utf-8")
    (folder / "reminders.yaml").write_text(
        "reminders:\n  - id: owed\n    title: 每月学习日\n"
        "    when: {monthly: {weekday: fri, nth: 1}, at: \"09:00\"}\n"
        "    recipients: {channels: [c0], mention: {roles: [secretary]}}\n", encoding="utf-8")
    units = ["标识,名称,上级单位", "u0,工委,"] + [f"u{i},支部{i},u0" for i in range(1, 200)]
    (folder / "units.csv").write_text("\n".join(units) + "\n", encoding="utf-8")
    rows = ["标识,姓名,单位,角色,所在群"] + [f"p{i},人员{i},u{i % 200},secretary,c0" for i in range(people)]
    (folder / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_asked_while_serve_is_still_starting_is_logged_and_exits_0(
        sig: signal.Signals, workspace: Workspace) -> None:
    # Before its event loop handled signals, a SIGTERM in the first part of the start killed serve
    # with no line at all (exit -15), and a SIGINT printed a traceback.
    _province(workspace.schedules, 40_000)
    running = Service.start(workspace)
    try:
        def starting() -> bool:
            assert running.process.poll() is None, running.output()
            try:
                return running.get("/healthz")[0] == 503  # "starting": the port is bound, the start goes on
            except OSError:
                return False

        wait_until(starting, "/healthz saying 503 starting", timeout=60)
        code = running.stop(sig)
    finally:
        running.kill()
    said = running.stdout + running.stderr
    assert code == 0, running.output()
    assert "启动尚未完成时收到停止信号" in said or STOPPED in said, running.output()
    early = [line for line in said.splitlines() if "启动尚未完成时收到停止信号" in line]
    # In the service's log (stdout), with its time, like every other line (trial 7: not when the cache was warm).
    assert all(line in running.stdout and re.match(r"\d{4}-\d\d-\d\d ", line) for line in early), early
    assert "Traceback" not in said
    # Nothing half-done is left behind: the next start comes up.
    again = Service.start(workspace)
    try:
        again.wait_ready()
    finally:
        again.kill()


def test_the_start_up_line_of_channels_without_webhooks_names_ten_and_counts_the_rest(workspace: Workspace) -> None:
    # Trial 7: at a province's 500 groups this was one log line of 4.5 KB naming every one.
    _province(workspace.schedules, 10)
    chans = "".join(f"  - {{id: c{i}, name: 群{i}, platform: wecom, webhook: ''}}\n" for i in range(30))
    (workspace.schedules / "channels.yaml").write_text(
        f"service: {{admin_channel: c0}}\nchannels:\n{chans}", encoding="utf-8")
    running = Service.start(workspace)
    try:
        running.wait_for_log("未配置 webhook 的频道")  # logged just after the start line: wait for it, not that
    finally:
        running.kill()
    line = next(x for x in running.stdout.splitlines() if "未配置 webhook 的频道" in x)
    assert line.endswith("群0、群1、群2、群3、群4、群5、群6、群7、群8、群9……等 30 个"), line


def test_the_start_says_where_the_admin_area_is_and_warns_of_links_to_this_machine(workspace: Workspace) -> None:
    # Trial 9: personal links went out as http://127.0.0.1:8080/c/… to a real OA webhook, silently; and `/`
    # answered 404 with nothing in the log saying where the admin area is.
    webhook = "https://oa.example.invalid/push/secret-path-0042"
    running = Service.start(workspace, env={"REMINDBOT_OA_WEBHOOK": webhook})
    try:
        running.wait_for_log("REMINDBOT_BASE_URL 是本机地址")  # the warnings come just after the start line
    finally:
        running.kill()
    said = running.stdout
    assert f"管理页面：http://127.0.0.1:{running.port}/admin/" in said, running.output()
    warning = next(line for line in said.splitlines() if "REMINDBOT_BASE_URL 是本机地址" in line)
    assert "WARNING" in warning and "机关协同办公平台待办推送" in warning, warning
    assert "收到的人打不开" in warning and "市直机关党务工作群" not in warning  # that group got no webhook
    assert webhook not in said + running.stderr and "secret-path-0042" not in said


def test_serve_and_validate_show_an_absolute_schedules_folder_the_same_way_from_any_folder(
        workspace: Workspace, tmp_path: Path) -> None:
    """Trial 13: with REMINDBOT_SCHEDULES_DIR=/tmp/x, serve said ``x/study.yaml:5:5`` wherever it ran, validate
    ``/tmp/x/study.yaml`` from one folder and ``x/study.yaml`` from another. One rule now: absolute as given."""
    workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")
    expected = f"{workspace.schedules}/study.yaml:{where(workspace.schedules / 'study.yaml', 'titel:')}: 错误"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd in (workspace.root, elsewhere):
        checked = subprocess.run([sys.executable, "-m", "bot", "validate"], env=workspace.env(), cwd=cwd,
                                 capture_output=True, text=True, timeout=60, check=False)
        shown = [line.split(": 错误")[0] + ": 错误" for line in error_lines(checked.stdout)]
        assert shown == [expected], checked.stdout
    running = Service.start(workspace)
    try:
        assert running.process.wait(timeout=60) == 1
    finally:
        running.kill()
    assert f"{expected} 字段 reminders[study-day].titel" in running.stderr, running.stderr
