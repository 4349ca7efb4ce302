"""Nothing read from the schedules folder can stall or exhaust the service.

Hostile or careless files — a YAML "billion laughs" alias bomb, a 20 MB people file, absurd nesting,
too many entries — are refused quickly with a Chinese message naming file:line, by ``remindbot
validate`` and by a running ``remindbot serve``, whose reload runs in a child process: /healthz keeps
answering within a second throughout, SIGTERM stops it in seconds, and a refused reload is visible
on /healthz, on the admin pages, in the metrics and (once per distinct failure) in the admin channel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servehelp import (
    REFUSED,
    RELOADED,
    ROOT,
    WAIT_SECONDS,
    Service,
    Workspace,
    reminder_count,
    wait_until,
    where,
)

from bot.config.limits import MAX_DEPTH, Limits
from bot.config.loader import check_schedules, load_schedules
from bot.config.models import Schedules
from bot.metrics import REGISTRY
from bot.runtime import ReloadState
from bot.settings import Settings
from bot.watch import Reloader
from tests.fakes.platforms import FakePlatforms

SHIPPED_REMINDERS = reminder_count(ROOT / "schedules")
HEALTH_BOUND_SECONDS = 1.0
VALIDATE_BOUND_SECONDS = 20.0
STOP_BOUND_SECONDS = 10.0
WORKER = b"bot.config.worker"

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, from 10 short lines.
BOMB = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
# Aliases as an admin would use them — three nested anchors shared by nine reminders — well under the bound.
MODERATE_ALIASES = """\
reminders:
  - id: alias-1
    title: 共用设置的提醒 1
    when: &when
      monthly: {day: 10}
      at: "09:00"
    template: research
    recipients: &to
      channels: [gw_wecom]
      mention: &who {roles: &roles [secretary]}
    confirm: &confirm
      deadline: 3wd
      who: *who
""" + "".join(f"""\
  - id: alias-{i}
    title: 共用设置的提醒 {i}
    when: *when
    template: research
    recipients: *to
    confirm: *confirm
""" for i in range(2, 10))
MODERATE_REMINDERS = 9
PERSON = """\
  - id: p{i}
    name: 人员{i}
    title: 支部书记
    roles: [secretary]
    unit: fgw_b1
    mobile: "138{i:08d}"
    ids: {{wecom: W{i}, dingtalk: "{i}"}}
    channels: [gw_wecom]
"""


def people_file(path: Path, megabytes: float) -> int:
    """Write a valid people file of about ``megabytes`` MB; returns its size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        out.write("people:\n")
        i = 0
        while out.tell() < megabytes * 1024 * 1024:
            out.write("".join(PERSON.format(i=i + k) for k in range(1000)))
            i += 1000
    return path.stat().st_size


def validate(workspace: Workspace, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``remindbot validate`` as an admin runs it; fails the test if it outlives the bound."""
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bot", "validate", str(workspace.schedules)],
                            env=workspace.env(**env), capture_output=True, text=True,
                            timeout=VALIDATE_BOUND_SECONDS, check=False)
    return result, time.monotonic() - began


def poll_health(service: Service, until: Callable[[dict[str, Any]], bool], what: str,
                timeout: float = 60.0) -> int:
    """Poll /healthz until ``until(body)``; every answer must be a 200 within a second. Returns the polls."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        began = time.monotonic()
        try:
            status, body = service.health()
        except OSError as exc:
            raise AssertionError(f"/healthz did not answer ({exc!r}) while waiting for {what}") from exc
        took = time.monotonic() - began
        polls += 1
        assert status == 200, body
        assert took < HEALTH_BOUND_SECONDS, f"/healthz took {took:.2f} s while waiting for {what}"
        if until(body):
            return polls
        assert time.monotonic() < deadline, f"gave up waiting for {what}; last body {body}\n{service.output()}"
        time.sleep(0.1)


def failing(body: dict[str, Any]) -> bool:
    return str(body.get("schedules", "")).startswith("error since ")


def stop_within_bound(service: Service) -> None:
    code = service.stop()
    assert code == 0, service.output()
    assert service.stopped_in is not None and service.stopped_in < STOP_BOUND_SECONDS


def workers_of(workspace: Workspace) -> list[int]:
    """Pids of schedules-check child processes working on this workspace's folder."""
    marker = f"REMINDBOT_SCHEDULES_DIR={workspace.schedules}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if WORKER in (entry / "cmdline").read_bytes() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# ---------------------------------------------------------------- validate


def test_validate_refuses_an_alias_bomb_within_seconds_naming_the_alias_and_accepts_moderate_aliases(
        workspace: Workspace) -> None:
    bomb = workspace.schedules / "bomb.yaml"
    bomb.write_text(BOMB, encoding="utf-8")

    result, took = validate(workspace)

    assert result.returncode == 1, result.stdout + result.stderr
    assert took < VALIDATE_BOUND_SECONDS
    # The alias whose expansion crosses the bound: a4's first *a3 (10 + 90 + 819 + 7380 + 7381 > 10 000).
    assert f"bomb.yaml:{where(bomb, '*a3')}: 错误 别名 *a3 展开后的内容过多" in result.stdout, result.stdout
    assert "别名炸弹" in result.stdout

    bomb.unlink()
    (workspace.schedules / "shared.yaml").write_text(MODERATE_ALIASES, encoding="utf-8")
    result, _ = validate(workspace)
    assert result.returncode == 0, result.stderr
    assert f"{SHIPPED_REMINDERS + MODERATE_REMINDERS} 个提醒" in result.stdout


def test_validate_refuses_a_20_mb_people_file_at_once_naming_the_file_and_the_limit(workspace: Workspace) -> None:
    size = people_file(workspace.schedules / "people.yaml", 20)

    result, took = validate(workspace)

    assert result.returncode == 1, result.stdout + result.stderr
    assert took < VALIDATE_BOUND_SECONDS
    assert f"people.yaml:1:1: 错误 文件过大（{size / 1024 / 1024:.1f} MB），超过上限 4.0 MB" in result.stdout
    assert "REMINDBOT_MAX_SCHEDULE_FILE_BYTES" in result.stdout
    # The limit is the admin's to raise.
    small = validate(workspace, REMINDBOT_MAX_SCHEDULE_FILE_BYTES="1000")[0]
    assert "超过上限 1000 字节" in small.stdout


# ---------------------------------------------------------------- the limits, in-process


def test_aliases_are_counted_as_if_expanded_and_refused_at_the_alias_that_crosses_the_bound(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    folder.mkdir()
    roles = "&r [secretary, a, b, c, d, e, f, g, h]"  # 10 nodes: the list and its 9 words
    people = "".join(f"  - {{id: p{i}, name: 人员{i}, roles: {roles if i == 0 else '*r'}}}\n" for i in range(7))
    (folder / "people.yaml").write_text(f"people:\n{people}", encoding="utf-8")

    schedules, issues = check_schedules(folder, limits=Limits(alias_nodes=60))  # 6 aliases × 10 nodes
    assert schedules is not None, [str(i) for i in issues]

    schedules, issues = check_schedules(folder, limits=Limits(alias_nodes=59))
    assert schedules is None
    assert [(i.file, i.line) for i in issues] == [("schedules/people.yaml", 8)]  # p6: the 6th alias
    assert "别名 *r 展开后的内容过多" in issues[0].message


def test_a_duplicate_key_inside_an_anchor_is_reported_once_however_often_it_is_aliased(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    folder.mkdir()
    people = "".join(f"  - {{id: p{i}, name: 人员{i}, ids: *ids}}\n" for i in range(1, 5))
    (folder / "people.yaml").write_text(
        "people:\n  - id: p0\n    name: 人员0\n    ids: &ids\n      wecom: A\n      wecom: B\n" + people,
        encoding="utf-8")

    _, issues = check_schedules(folder)

    duplicates = [i for i in issues if "重复出现" in i.message]
    assert [(i.line, i.field) for i in duplicates] == [(6, "people[0].ids.wecom")]


def test_nesting_deeper_than_the_bound_is_refused_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "deep.yaml").write_text("units:\n  - " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", encoding="utf-8")

    schedules, issues = check_schedules(folder)

    assert schedules is None
    assert [(i.file, i.line) for i in issues] == [("schedules/deep.yaml", 2)]  # the list inside units: is deep 2
    assert f"嵌套超过 {MAX_DEPTH} 层" in issues[0].message


def test_an_alias_inside_its_own_anchor_is_refused_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "loop.yaml").write_text("units:\n  - &u {id: a, name: 甲, parent: *u}\n", encoding="utf-8")

    schedules, issues = check_schedules(folder)

    assert schedules is None
    at = where(folder / "loop.yaml", "*u")
    assert [str(i) for i in issues] == [f"schedules/loop.yaml:{at}: 错误 别名 *u 引用了包含它自己的内容（循环引用）。"]


def test_too_many_entries_are_refused_at_the_first_entry_past_the_bound() -> None:
    shipped = load_schedules(ROOT / "schedules", env={})
    total = sum(len(getattr(shipped, s)) for s in ("units", "people", "channels", "reminders"))

    schedules, issues = check_schedules(ROOT / "schedules", env={}, limits=Limits(entries=total - 1))

    assert schedules is None
    assert len(issues) == 1 and "条目过多" in issues[0].message and f"上限 {total - 1} 条" in issues[0].message
    # The last entry read (files in name order; units, people, channels, reminders in each) is the one past it.
    assert issues[0].file.endswith("three-meetings.yaml")


# ---------------------------------------------------------------- reload, in-process


def _settings(workspace: Workspace) -> Settings:
    return Settings(schedules_dir=workspace.schedules, templates_dir=workspace.templates, var_dir=workspace.var,
                    database_url=f"sqlite+aiosqlite:///{workspace.database}")


def _failures() -> float:
    return REGISTRY.get_sample_value("remindbot_reload_failures_total") or 0.0


async def test_a_refused_reload_is_counted_kept_in_the_state_and_told_once_per_distinct_failure(
        workspace: Workspace) -> None:
    told: list[list[str]] = []

    async def tell(errors: list[str], wrong: str) -> None:
        told.append(errors)

    applied: list[Schedules] = []
    state = ReloadState()
    reload = Reloader(_settings(workspace), applied.append, state=state, tell_admin=tell)
    failures = _failures()

    workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")
    assert await reload() is False
    assert not state.ok and state.since is not None
    assert any("schedules/study.yaml:" in e and "titel" in e for e in state.errors), state.errors
    assert _failures() == failures + 1
    since = state.since

    assert await reload() is False  # the same errors again (another save): not told again
    assert len(told) == 1 and state.since == since and _failures() == failures + 2

    workspace.edit("study.yaml", "    titel: 每月学习日", "    title: 每月学习日")
    assert await reload() is True
    assert state.ok and state.errors == [] and state.last_good_at is not None

    workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")  # broken again: told again
    assert await reload() is False
    assert len(told) == 2 and told[1] == told[0]
    assert len(applied) == 1


async def test_emptying_a_file_or_removing_reminders_is_logged_as_such(
        workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.watch")
    running = load_schedules(workspace.schedules, templates_dir=workspace.templates)
    reload = Reloader(_settings(workspace), lambda s: None, current=lambda: running)

    workspace.replace("study.yaml", "# 暂时清空\n")
    assert await reload() is True

    assert "schedules/study.yaml 变为空，移除了 2 个提醒" in caplog.messages
    assert "移除了 2 个提醒：每月学习日（study-day）、主题党日（theme-party-day）" in caplog.messages

    caplog.clear()
    (workspace.schedules / "reports.yaml").unlink()
    assert await reload() is True
    assert "schedules/reports.yaml 已删除，移除了 1 个提醒" in caplog.messages


async def test_a_reload_says_what_runs_now_and_how_it_changed(
        workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.watch")
    running = load_schedules(workspace.schedules, templates_dir=workspace.templates)
    reload = Reloader(_settings(workspace), lambda s: None, current=lambda: running)
    people = running.size("people")
    (workspace.schedules / "people.csv").write_text("标识,姓名,单位,角色\ng1,高明,fgw_b1,secretary\n"
                                                    "g2,李雷,fgw_b2,secretary\n", encoding="utf-8")
    assert await reload() is True
    [line] = [m for m in caplog.messages if m.startswith("日程配置已重新加载")]
    assert f"{people + 2} 人（增加 2 人）" in line and "个提醒" in line and "个单位" in line
    assert "（增加" not in line.replace("人（增加 2 人）", "")  # nothing else changed


async def test_the_watcher_skips_a_batch_that_leaves_the_files_as_last_applied(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a trial: a long copy's last events, arriving during the check, reloaded (and logged) twice."""
    import bot.watch as watch

    async def batches(*_folders: str, **_options: Any) -> Any:
        for edit in (True, False, False, True, False):
            if edit:
                with (workspace.schedules / "people.csv").open("a", encoding="utf-8") as handle:
                    handle.write("" if handle.tell() else "标识,姓名,单位,角色\n")
                    handle.write(f"n{time.monotonic_ns()},新人,fgw_b1,secretary\n")
            else:  # Excel's lock file comes and goes: nothing the check reads
                (workspace.schedules / "~$people.xlsx").write_bytes(str(time.monotonic_ns()).encode())
            yield {("modified", "x")}

    calls: list[int] = []

    async def reload() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(watch, "awatch", batches)
    await watch.watch_schedules(reload, _settings(workspace))
    assert len(calls) == 2  # once per edit, not once per batch


# ---------------------------------------------------------------- a running service


def test_a_dropped_alias_bomb_never_stalls_serve_and_the_fixed_file_loads(
        service: Service, workspace: Workspace) -> None:
    workspace.replace("bomb.yaml", BOMB)

    poll_health(service, failing, "/healthz to report the schedules error")
    status, body = service.health()
    assert status == 200 and body["status"] == "ok" and body["schedule_errors"] == 1
    assert body["reminders"] == SHIPPED_REMINDERS  # the last good schedules keep running
    service.wait_for_log(REFUSED)
    assert f"schedules/bomb.yaml:{where(workspace.schedules / 'bomb.yaml', '*a3')}: 错误 别名 *a3" in service.stdout

    # The admin replaces it with aliases used sensibly: it loads, and the error clears.
    workspace.replace("bomb.yaml", MODERATE_ALIASES)
    poll_health(service, lambda b: b["schedules"] == "ok" and b["reminders"] == SHIPPED_REMINDERS + MODERATE_REMINDERS,
                "the moderate aliases to load")
    stop_within_bound(service)


def test_a_20_mb_people_file_is_refused_quickly_while_serve_keeps_answering(
        service: Service, workspace: Workspace) -> None:
    staging = workspace.root / "staging"
    staging.mkdir()
    people_file(staging / "people.yaml", 20)
    os.replace(staging / "people.yaml", workspace.schedules / "people.yaml")

    poll_health(service, failing, "/healthz to report the oversized file", timeout=WAIT_SECONDS)
    service.wait_for_log("schedules/people.yaml:1:1: 错误 文件过大")
    stop_within_bound(service)


def test_a_large_valid_people_file_reloads_off_the_event_loop(service: Service, workspace: Workspace) -> None:
    staging = workspace.root / "staging"
    staging.mkdir()
    people_file(staging / "people.yaml", 2)  # 10 000 people: seconds of parsing and validation
    os.replace(staging / "people.yaml", workspace.schedules / "people.yaml")

    polls = poll_health(service, lambda b: service.log_count(RELOADED) >= 1, "the large file to load")

    assert polls >= 3, "the reload was too quick to show anything"
    assert service.health()[1]["schedules"] == "ok"
    assert "Traceback" not in service.stdout + service.stderr


def test_sigterm_during_a_reload_stops_serve_in_seconds_and_ends_the_check(
        service: Service, workspace: Workspace) -> None:
    staging = workspace.root / "staging"
    staging.mkdir()
    people_file(staging / "people.yaml", 3.5)
    os.replace(staging / "people.yaml", workspace.schedules / "people.yaml")
    wait_until(lambda: workers_of(workspace), "the schedules check to start in its child process")

    stop_within_bound(service)

    wait_until(lambda: not workers_of(workspace), "the child process to end with the service", timeout=5)
    assert RELOADED not in service.stdout


# ---------------------------------------------------------------- the admin sees it


@dataclass
class _Workspace(Workspace):
    """A workspace whose service gets extra environment (the admin channel's webhook)."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{**self.extra, **extra})


@contextmanager
def fake_platforms() -> Iterator[FakePlatforms]:
    """The fake platforms on their own loop in a thread, so the test can block on the service."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fakes = FakePlatforms(clock=time.time)
    asyncio.run_coroutine_threadsafe(fakes.start(), loop).result(10)
    try:
        yield fakes
    finally:
        asyncio.run_coroutine_threadsafe(fakes.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_refused_reload_shows_on_the_admin_pages_and_the_admin_channel_is_told_once_per_failure(
        tmp_path: Path) -> None:
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()  # service.admin_channel is admin_wecom
        workspace = _Workspace(**vars(Workspace.create(tmp_path)),
                               extra={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        service = Service.start(workspace)
        try:
            service.wait_ready()
            notices = lambda: [t for t in admin_group.texts() if "日程配置未生效" in t]  # noqa: E731
            assert "日程配置" not in service.upcoming_page()

            workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")
            poll_health(service, failing, "the typo to be refused")
            errors = service.health()[1]["schedule_errors"]
            page = service.upcoming_page()
            assert f"日程配置有 {errors} 处错误，最近的修改未生效" in page
            assert f"schedules/study.yaml:{where(workspace.schedules / 'study.yaml', 'titel')}: 错误" in page
            wait_until(lambda: len(notices()) == 1, "the admin group to be told")
            assert f"共 {errors} 处错误" in notices()[0] and "titel" in notices()[0]

            # Saved again with the same mistake (another file touched): the admin group is not told twice.
            workspace.replace("zz-note.yaml", "# 备注\n")
            service.wait_for_log(REFUSED, count=2)
            workspace.edit("study.yaml", "    titel: 每月学习日", "    title: 每月学习日")
            poll_health(service, lambda b: b["schedules"] == "ok", "the fix to apply")
            assert "日程配置有" not in service.upcoming_page()
            assert service.log_count("已通知管理员频道：日程配置未生效") == 1

            # Broken again after the fix: a new failure, told again.
            workspace.edit("study.yaml", "    title: 每月学习日", "    titel: 每月学习日")
            poll_health(service, failing, "the typo to be refused again")
            wait_until(lambda: len(notices()) == 2, "the admin group to be told again")
            assert len(notices()) == 2
        finally:
            service.kill()
