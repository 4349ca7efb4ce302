"""The admin channel's 【日程配置未生效】 notice is told once per problem, not once per line number.

An admin who, with an error still in a file, adds or removes lines elsewhere in it (a comment at the
top, a new reminder above) moves the error down without changing it: the admin group must not hear
the same notice again. A different error (another field, a YAML syntax error) is told.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from test_admin_notices import instances, notices, told_before
from test_schedule_limits import _Workspace, failing, fake_platforms, poll_health

from bot.config.issues import ConfigIssue, problem_key
from bot.config.loader import check_schedules
from bot.watch import admin_notifier
from storage.db import Database
from tests.servehelp import REFUSED, ROOT, Service, Workspace, wait_until

TYPO = ("    title: 每月学习日", "    titel: 每月学习日")
# A value with ": " in it and no quotes: a YAML syntax error (no field), at the theme day's title.
SYNTAX = ("    title: 主题党日", "    title: 主题党日: 支部活动")
NEW_ENTRY = """reminders:
  - id: new-first
    title: 新增的提醒
    when: {monthly: {day: 3}, at: "09:00"}
    template: study_day
    recipients: {channels: [gw_wecom]}

"""
TOLD_BEFORE = "此前已收到同样的日程配置错误通知"


def _errors(folder: Path) -> list[ConfigIssue]:
    _, issues = check_schedules(folder, env={})
    errors = [i for i in issues if not i.warning]
    assert errors, "the edit must be refused"
    return errors


def test_lines_added_above_an_error_keep_its_key_and_another_error_changes_it(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    study = folder / "study.yaml"
    shipped = study.read_text(encoding="utf-8")

    def key_of(text: str) -> tuple[str, list[int]]:
        study.write_text(text, encoding="utf-8")
        errors = _errors(folder)
        return problem_key(errors).key, [e.line for e in errors]

    typo = shipped.replace(*TYPO)
    key, lines = key_of(typo)
    for shifted in ("# 说明\n# 再加一行\n" + typo, typo.replace("reminders:\n", NEW_ENTRY, 1)):
        moved_key, moved_lines = key_of(shifted)
        assert moved_lines != lines and moved_key == key  # moved down, the same problem

    broken = shipped.replace(*SYNTAX)
    syntax_key, syntax_lines = key_of(broken)
    moved_key, moved_lines = key_of("# 说明\n\n" + broken)
    assert moved_lines == [syntax_lines[0] + 2] and moved_key == syntax_key
    assert syntax_key != key
    other_key, _ = key_of(shipped.replace("    title: 每月学习日", "    title: 每月学习日: 集中学习"))
    assert other_key != syntax_key  # the same kind of syntax error on another line is another problem


def test_a_running_service_does_not_tell_the_admin_group_again_when_an_error_only_moves(tmp_path: Path) -> None:
    with fake_platforms() as fakes:
        admin_group = fakes.wecom()  # service.admin_channel is admin_wecom
        workspace = _Workspace(**vars(Workspace.create(tmp_path)),
                               extra={"REMINDBOT_ADMIN_WECOM_WEBHOOK": admin_group.url})
        service = Service.start(workspace)
        study = workspace.schedules / "study.yaml"

        def notices() -> list[str]:
            return [t for t in admin_group.texts() if "日程配置未生效" in t]

        def add_lines_on_top(refusals: int, skipped: int) -> None:
            """A comment added at the file's top: refused again (the ``refusals``-th time), the admin
            notice decided (the ``skipped``-th said told before, or another notice sent)."""
            told = len(notices())
            workspace.replace("study.yaml", "# 修改说明：新增一行\n" + study.read_text(encoding="utf-8"))
            service.wait_for_log(REFUSED, count=refusals)
            wait_until(lambda: service.log_count(TOLD_BEFORE) >= skipped or len(notices()) > told,
                       "the admin notice decided")

        try:
            service.wait_ready()
            workspace.edit("study.yaml", *TYPO)
            poll_health(service, failing, "the typo to be refused")
            wait_until(lambda: len(notices()) == 1, "the admin group to be told")
            assert "titel" in notices()[0]

            add_lines_on_top(2, 1)
            assert len(notices()) == 1, notices()  # the same error, a line lower: not told again

            text = study.read_text(encoding="utf-8").replace(TYPO[1], TYPO[0]).replace(*SYNTAX)
            workspace.replace("study.yaml", text)  # the typo fixed, a syntax error made: another error, told
            service.wait_for_log(REFUSED, count=3)
            wait_until(lambda: len(notices()) == 2, "the admin group to be told of the syntax error")
            assert "YAML 语法错误" in notices()[1]

            add_lines_on_top(4, 2)
            assert len(notices()) == 2, notices()
        finally:
            service.kill()


async def test_errors_told_by_the_version_keyed_by_line_are_not_told_again_after_the_upgrade(
        any_db: Database, tmp_path: Path) -> None:
    """The version before keyed the notice by each error's file, line, column and field: a service upgraded
    while the folder is refused must know that notice, not tell the admin group a second time."""
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    study = folder / "study.yaml"
    study.write_text(study.read_text(encoding="utf-8").replace(*TYPO), encoding="utf-8")
    errors = _errors(folder)
    by_line = hashlib.sha256("".join(f"{e.file}\0{e.line}\0{e.column}\0{e.field or e.message}\n"
                                     for e in errors).encode()).hexdigest()[:16]
    async with instances(any_db, tmp_path, 1) as (runtime,):
        await told_before(runtime, by_line)

        await admin_notifier(runtime)([str(e) for e in errors], problem_key(errors))
        assert len(await notices(any_db)) == 1
