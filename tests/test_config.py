"""Validation an admin can act on: every error names the file, line, column and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config.loader import check_schedules, load_schedules
from bot.config.yamlsource import ConfigError, ConfigIssue

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "schedules"
TEMPLATES = ROOT / "message_templates"

GOOD_REMINDER = """\
reminders:
  - id: extra
    title: 测试提醒
    when:
      monthly: {day: 5}
      at: "09:00"
    recipients:
      channels: [gw_wecom]
      mention: {roles: [secretary]}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "schedules"
    shutil.copytree(SHIPPED, target)
    return target


def issues_for(folder: Path, templates: Path = TEMPLATES) -> list[ConfigIssue]:
    schedules, issues = check_schedules(folder, templates_dir=templates, env={})
    assert schedules is None, "expected the folder to be invalid"
    return [i for i in issues if not i.warning]


def one(issues: list[ConfigIssue], field: str) -> ConfigIssue:
    found = [i for i in issues if i.field == field]
    assert found, f"no issue for {field}: {[str(i) for i in issues]}"
    return found[0]


def test_shipped_schedules_are_valid_and_cover_every_mechanism() -> None:
    schedules = load_schedules(SHIPPED, templates_dir=TEMPLATES, env={})
    periods = {r.when.period for r in schedules.reminders.values()}
    assert {"monthly", "quarterly", "half_yearly", "yearly", "once"} <= periods
    kinds = {r.kind for r in schedules.reminders.values()}
    assert kinds == {"reminder", "report"}
    assert any(r.recipients.per_person for r in schedules.reminders.values())
    assert {c.platform for c in schedules.channels.values()} >= {"wecom", "dingtalk", "feishu", "generic"}
    # Channels without their environment variables run dry, so a new user needs no account.
    assert all(c.dry_run for c in schedules.channels.values())


def test_yaml_syntax_error_names_file_and_line(folder: Path) -> None:
    (folder / "broken.yaml").write_text("reminders:\n  - id: a\n    title: [unclosed\n", encoding="utf-8")
    issue = one(issues_for(folder), "")
    assert issue.file == "schedules/broken.yaml"
    assert issue.line == 4
    assert "YAML 语法错误" in issue.message


def test_unknown_field_is_an_error_with_a_suggestion(folder: Path) -> None:
    text = GOOD_REMINDER.replace("    recipients:", "    templte: study_day\n    recipients:")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].templte")
    assert (issue.file, issue.line, issue.column) == ("schedules/extra.yaml", 7, 5)
    assert "未知字段" in issue.message and "template" in issue.message


def test_a_misspelt_field_is_one_error_naming_the_field_meant_and_the_reminder_by_its_id(folder: Path) -> None:
    text = GOOD_REMINDER.replace("    title: 测试提醒", "    titel: 测试提醒")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")

    issues = issues_for(folder)

    assert [str(i) for i in issues] == [
        "schedules/extra.yaml:3:5: 错误 字段 reminders[extra].titel：未知字段 “titel”，是不是 “title”？"]


def test_a_field_that_is_really_missing_is_still_reported_beside_an_unrelated_unknown_one(folder: Path) -> None:
    text = GOOD_REMINDER.replace("    title: 测试提醒", "    colour: red")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")

    shown = [str(i) for i in issues_for(folder)]

    assert any("reminders[extra].title：缺少必填字段" in line for line in shown), shown
    assert any("reminders[extra].colour：未知字段 “colour”" in line for line in shown), shown


def test_an_entry_without_an_id_is_named_by_its_place(folder: Path) -> None:
    text = GOOD_REMINDER.replace("  - id: extra\n    title: 测试提醒", "  - title: 测试提醒")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")

    shown = [str(i) for i in issues_for(folder)]

    assert any("字段 reminders[0].id：缺少必填字段" in line for line in shown), shown


def test_wrong_type_says_what_was_expected(folder: Path) -> None:
    text = GOOD_REMINDER.replace("monthly: {day: 5}", "monthly: {day: five}")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].when.monthly.day")
    assert issue.line == 5
    assert "应为整数" in issue.message and "five" in issue.message


def test_a_duration_in_weeks_is_explained_in_days_and_workdays(folder: Path) -> None:
    text = GOOD_REMINDER.replace('      at: "09:00"\n', '      at: "09:00"\n    notices: [2w]\n')
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].notices[0]")
    assert issue.line == 7
    assert issue.message.startswith("无法识别的时长 “2w”：应写成 3d")
    assert issue.message.endswith("2 周请写 14d（或 10wd，按工作日）")


def test_bad_weekday_and_time_list_the_choices(folder: Path) -> None:
    text = GOOD_REMINDER.replace("monthly: {day: 5}", "monthly: {weekday: fry}").replace('"09:00"', '"25:00"')
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issues = issues_for(folder)
    assert "mon、tue" in one(issues, "reminders[0].when.monthly.weekday").message
    assert "HH:MM" in one(issues, "reminders[0].when.at").message


def test_unknown_references_are_errors_at_their_line(folder: Path) -> None:
    text = GOOD_REMINDER.replace("channels: [gw_wecom]", "channels: [gw_wecom, gw_wecon]").replace(
        "mention: {roles: [secretary]}", "mention: {roles: [secretery], people: [nobody], units: [nowhere]}")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issues = issues_for(folder)
    channel = one(issues, "reminders[0].recipients.channels[1]")
    assert channel.line == 8 and "gw_wecom" in channel.message  # "did you mean"
    assert "角色" in one(issues, "reminders[0].recipients.mention.roles[0]").message
    assert "人员" in one(issues, "reminders[0].recipients.mention.people[0]").message
    assert "单位" in one(issues, "reminders[0].recipients.mention.units[0]").message


def test_every_error_is_reported_at_once_across_files(folder: Path) -> None:
    (folder / "a.yaml").write_text(GOOD_REMINDER.replace("id: extra", "id: extra-a").replace(
        "day: 5", "day: 99"), encoding="utf-8")
    (folder / "b.yaml").write_text(GOOD_REMINDER.replace("id: extra", "id: extra-b").replace(
        "gw_wecom", "nope"), encoding="utf-8")
    issues = issues_for(folder)
    assert {i.file for i in issues} == {"schedules/a.yaml", "schedules/b.yaml"}


def test_duplicate_ids_across_files_name_the_first_definition(folder: Path) -> None:
    (folder / "zz_dup.yaml").write_text(GOOD_REMINDER.replace("id: extra", "id: study-day"), encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].id")
    assert "重复" in issue.message and "schedules/study.yaml:" in issue.message


def test_duplicate_keys_in_one_mapping_are_errors(folder: Path) -> None:
    text = GOOD_REMINDER.replace("    title: 测试提醒\n", "    title: 测试提醒\n    title: 又一个\n")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].title")
    assert issue.line == 4 and "重复" in issue.message


def test_undefined_template_variable_fails_validation_naming_template_line(folder: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "typo.md.j2").write_text("### {{ reminder.title }}\n{{ due.text }}\n{{ reminder.titel }}\n",
                                          encoding="utf-8")
    text = GOOD_REMINDER.replace("    recipients:", "    template: typo\n    recipients:")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder, templates), "reminders[0].template")
    assert issue.line == 7
    assert "typo" in issue.message and "第 3 行" in issue.message and "titel" in issue.message


def test_unknown_top_level_variable_in_template_is_named(folder: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "default.md.j2").write_text("{{ reminder.title }} {{ secretary_name }}\n", encoding="utf-8")
    (folder / "extra.yaml").write_text(GOOD_REMINDER, encoding="utf-8")
    issue = one(issues_for(folder, templates), "reminders[0].template")
    assert "secretary_name" in issue.message and "可用变量" in issue.message


def test_missing_environment_variable_is_an_error_without_default(folder: Path) -> None:
    text = (
        "channels:\n  - id: secret_group\n    name: 群\n    platform: dingtalk\n"
        "    webhook: ${DINGTALK_URL}\n    secret: ${DINGTALK_SECRET:-}\n"
    )
    (folder / "ch.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "channels[0].webhook")
    assert issue.line == 5 and "DINGTALK_URL" in issue.message


def test_environment_values_fill_secrets_and_never_appear_in_errors(folder: Path) -> None:
    secret_url = "https://oapi.dingtalk.com/robot/send?access_token=supersecrettoken123"
    text = (
        "channels:\n  - id: ding\n    name: 群\n    platform: dingtalk\n"
        "    webhook: ${DINGTALK_URL}\n    format: cardd\n"
    )
    (folder / "ch.yaml").write_text(text, encoding="utf-8")
    _, issues = check_schedules(folder, templates_dir=TEMPLATES, env={"DINGTALK_URL": secret_url})
    rendered = "\n".join(str(i) for i in issues)
    assert "channels[ding].format" in rendered
    assert "supersecrettoken123" not in rendered


def test_confirmation_that_selects_nobody_is_an_error(folder: Path) -> None:
    text = GOOD_REMINDER.replace("mention: {roles: [secretary]}", "mention: {units: [jyj], roles: [admin]}")
    text += "    confirm: {deadline: 3d}\n"
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    assert "没有选中任何人" in one(issues_for(folder), "reminders[0].confirm").message


def test_unit_parent_cycle_is_reported(folder: Path) -> None:
    text = "units:\n  - {id: a1, name: 甲, parent: b1}\n  - {id: b1, name: 乙, parent: a1}\n"
    (folder / "units.yaml").write_text(text, encoding="utf-8")
    assert "循环" in one(issues_for(folder), "units[0].parent").message


def test_load_schedules_raises_with_every_issue(folder: Path) -> None:
    (folder / "extra.yaml").write_text(GOOD_REMINDER.replace("day: 5", "day: 0"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_schedules(folder, templates_dir=TEMPLATES, env={})
    assert "schedules/extra.yaml:5" in str(caught.value)


def test_issue_text_reads_file_line_column_field_message() -> None:
    issue = ConfigIssue("schedules/a.yaml", 3, 7, "reminders[0].when", "缺少必填字段")
    assert str(issue) == "schedules/a.yaml:3:7: 错误 字段 reminders[0].when：缺少必填字段。"


@pytest.mark.parametrize(("message", "shown"), [
    ("引号结束后同一行还有别的内容：引号应包住整个值", "引号结束后同一行还有别的内容：引号应包住整个值。"),
    ("未知字段 “titel”，是不是 “title”？", "未知字段 “titel”，是不是 “title”？"),  # a question: no 。 after it
    ("文件过大。", "文件过大。"),  # already ended: not doubled
])
def test_every_issue_ends_as_one_sentence_like_the_cli_refusals(message: str, shown: str) -> None:
    assert str(ConfigIssue("zz.yaml", 1, 6, "", message)) == f"zz.yaml:1:6: 错误 {shown}"


def test_selectors_combine_roles_and_units_including_sub_units() -> None:
    schedules = load_schedules(SHIPPED, templates_dir=TEMPLATES, env={})
    from bot.config.models import Selector

    fgw_secretaries = schedules.select(Selector(roles=["secretary"], units=["fgw"]))
    assert [p.id for p in fgw_secretaries] == ["wang_fang", "liu_yang"]
    everyone_in_jyj = schedules.select(Selector(units=["jyj"]))
    assert {p.id for p in everyone_in_jyj} == {"wu_min", "zheng_tao"}
    assert [p.id for p in schedules.leaders_of(schedules.people["wang_fang"])] == ["zhao_ming"]
    assert {u.id for u in schedules.units_overseen_by("zhao_ming")} == {"fgw", "fgw_b1", "fgw_b2", "czj", "czj_b1"}


def test_cron_restricting_both_day_of_month_and_weekday_is_refused(folder: Path) -> None:
    text = GOOD_REMINDER.replace('      monthly: {day: 5}\n      at: "09:00"', '      cron: "0 9 1 * 1"')
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].when")
    assert "同时限定" in issue.message


def test_a_date_that_does_not_exist_is_reported_with_its_line(folder: Path) -> None:
    text = GOOD_REMINDER.replace('      monthly: {day: 5}\n', '      once: 2026-13-01\n')
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].when.once")  # named like every other error
    assert (issue.file, issue.line) == ("schedules/extra.yaml", 5)
    assert "日期不存在" in issue.message and "2026-13-01" in issue.message


def test_a_typo_and_an_unknown_channel_in_one_reminder_are_reported_together(folder: Path) -> None:
    text = GOOD_REMINDER.replace("    recipients:", "    templte: study_day\n    recipients:").replace(
        "channels: [gw_wecom]", "channels: [gw_wecon]")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    issues = issues_for(folder)
    assert "未知字段" in one(issues, "reminders[0].templte").message
    assert "gw_wecom" in one(issues, "reminders[0].recipients.channels[0]").message


def test_grace_defaults_to_6h_reads_a_span_and_refuses_working_days(folder: Path) -> None:
    schedules = load_schedules(SHIPPED, templates_dir=TEMPLATES, env={})
    assert str(schedules.reminders["study-day"].grace) == "6h"
    (folder / "extra.yaml").write_text(GOOD_REMINDER + "    grace: 30m\n", encoding="utf-8")
    assert load_schedules(folder, templates_dir=TEMPLATES, env={}).reminders["extra"].grace.delta.seconds == 1800
    (folder / "extra.yaml").write_text(GOOD_REMINDER + "    grace: 2wd\n", encoding="utf-8")
    issue = one(issues_for(folder), "reminders[0].grace")
    assert issue.line == 10 and "补发时限" in issue.message and "工作日" in issue.message


def test_every_impossible_date_in_a_file_is_reported_not_only_the_first(folder: Path) -> None:
    """Found by a trial: two bad dates in the calendar section gave one error (共 1 处)."""
    (folder / "extra.yaml").write_text(
        "calendar:\n  holidays: [2026-02-30]\n  workdays: [2026-13-01]\n", encoding="utf-8")
    found = {(i.line, i.field) for i in issues_for(folder) if "日期不存在" in i.message}
    assert found == {(2, "calendar.holidays[0]"), (3, "calendar.workdays[0]")}


@pytest.mark.parametrize("bad", ["2026-12-32", "2026-13-08", "2026-02-30"])
def test_an_impossible_once_date_is_one_error_among_the_others_of_its_file(folder: Path, bad: str) -> None:
    """Trial 12: an impossible date hid every other error of its file (共 1 处错误)."""
    duties = folder / "duties.yaml"
    text = duties.read_text(encoding="utf-8")
    for old, new in (("once: 2027-03-08", f"once: {bad}"), ("weekday: tue, nth: 2", "weekday: tues, nth: 2"),
                     ("    title: 组织生活抽查检查问题整改\n", "")):
        assert old in text
        text = text.replace(old, new)
    duties.write_text(text, encoding="utf-8")
    issues = issues_for(folder)
    shown = {(i.file, i.line, i.field): i.message for i in issues}
    assert len(issues) == 3, [str(i) for i in issues]
    assert "tues" in shown[("schedules/duties.yaml", 19, "reminders[1].when.monthly.weekday")]
    assert "缺少" in shown[("schedules/duties.yaml", 83, "reminders[6].title")]
    date_error = shown[("schedules/duties.yaml", 85, "reminders[6].when.once")]
    assert "日期不存在" in date_error and bad in date_error


def test_an_impossible_date_in_a_date_range_is_its_only_error(folder: Path) -> None:
    """Read on, the bad date must not make the range look like another form (未知字段 “from”…)."""
    calendar = folder / "calendar.yaml"
    calendar.write_text(calendar.read_text(encoding="utf-8").replace(
        "  holidays: []", "  holidays:\n    - {from: 2026-02-30, to: 2026-03-02, name: 春节}"), encoding="utf-8")
    issues = issues_for(folder)
    assert [(i.line, i.field) for i in issues] == [(14, "calendar.holidays[0].from")], [str(i) for i in issues]


def test_a_once_date_already_past_is_a_warning_naming_its_line(folder: Path) -> None:
    """Trial 12: ``once: 2025-12-08`` (a year typo) passed silently and never fired."""
    duties = folder / "duties.yaml"
    duties.write_text(duties.read_text(encoding="utf-8").replace("once: 2027-03-08", "once: 2025-12-08"),
                      encoding="utf-8")
    schedules, issues = check_schedules(folder, templates_dir=TEMPLATES, env={})
    assert schedules is not None  # a warning: a past one-off may be kept on purpose
    past = [i for i in issues if "已过" in i.message]
    assert len(past) == 1 and past[0].warning, [str(i) for i in issues]
    assert (past[0].file, past[0].line, past[0].field) == ("schedules/duties.yaml", 86, "reminders[6].when.once")
    assert "2025-12-08" in past[0].message and "不会再发出" in past[0].message


def test_a_future_or_disabled_once_date_gives_no_past_warning(folder: Path) -> None:
    duties = folder / "duties.yaml"
    text = duties.read_text(encoding="utf-8")
    duties.write_text(text.replace("once: 2027-03-08", "once: 2099-12-08"), encoding="utf-8")
    _, issues = check_schedules(folder, templates_dir=TEMPLATES, env={})
    assert not [i for i in issues if "已过" in i.message]
    title = "    title: 组织生活抽查检查问题整改\n"
    duties.write_text(text.replace("once: 2027-03-08", "once: 2025-12-08").replace(
        title, f"{title}    enabled: false\n"), encoding="utf-8")
    schedules, issues = check_schedules(folder, templates_dir=TEMPLATES, env={})
    assert schedules is not None and not [i for i in issues if "已过" in i.message]
