"""One mistake, one error, at the root: cascades folded, loops once, what the admin wrote quoted,
and settings that are valid YAML but surely wrong reported at their line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config.loader import check_schedules
from bot.config.yamlsource import ConfigIssue

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "schedules"
TEMPLATES = ROOT / "message_templates"
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0123456789abcdef"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "schedules"
    shutil.copytree(SHIPPED, target)
    return target


def check(folder: Path, env: dict[str, str] | None = None) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """(errors, warnings) in the order the admin reads them."""
    _, issues = check_schedules(folder, templates_dir=TEMPLATES, env=env or {})
    return [i for i in issues if not i.warning], [i for i in issues if i.warning]


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="utf-8")


# ---------------------------------------------------------------- cascades


def test_a_file_saved_as_gbk_is_one_error_that_names_the_encoding(folder: Path) -> None:
    org = folder / "organization.yaml"
    org.write_bytes(org.read_text(encoding="utf-8").encode("gbk"))
    errors, _ = check(folder)
    assert len(errors) == 1, [str(e) for e in errors]
    assert errors[0].file == "schedules/organization.yaml"
    assert "看起来是 GBK 编码，请另存为 UTF-8" in errors[0].message
    assert "另有" in errors[0].message  # the references into the file are counted, not listed


@pytest.mark.parametrize(("codec", "name"), [("utf-16", "UTF-16"), ("big5", "Big5")])
def test_other_encodings_are_named_too(folder: Path, codec: str, name: str) -> None:
    text = "# 組織\nunits:\n  - {id: extra_unit, name: 市財政局機關黨支部}\n"
    (folder / "extra.yaml").write_bytes(text.encode(codec))
    errors, _ = check(folder)
    assert [e.file for e in errors] == ["schedules/extra.yaml"]
    assert f"看起来是 {name} 编码" in errors[0].message


def test_one_wrong_field_in_a_channel_is_one_error_with_its_references_folded(folder: Path) -> None:
    edit(folder / "channels.yaml", "format: markdown", "format: markdwon")
    errors, _ = check(folder)
    assert len(errors) == 1, [str(e) for e in errors]
    assert errors[0].field == "channels[1].format"
    assert "未知的频道" not in "\n".join(str(e) for e in errors)
    assert "另有" in errors[0].message and "处引用了这个频道" in errors[0].message


def test_a_person_that_failed_takes_the_references_to_its_role_and_no_one_selected_is_not_blamed(
        folder: Path) -> None:
    edit(folder / "organization.yaml", '    mobile: "13800000010"', "    mobile: 13800-00010")
    edit(folder / "organization.yaml", "roles: [admin, worker]", "roles: [admin, worker, inspector]")
    (folder / "extra.yaml").write_text(
        "reminders:\n  - id: inspect\n    title: 抽查\n    when: {monthly: {day: 5}}\n"
        "    recipients: {channels: [gw_wecom], mention: {roles: [inspector]}}\n"
        "    confirm: {deadline: 3d}\n", encoding="utf-8")
    errors, _ = check(folder)
    assert [e.field for e in errors] == ["people[3].mobile"], [str(e) for e in errors]
    assert "另有 1 处引用了其角色" in errors[0].message


def test_the_root_cause_is_listed_before_independent_errors(folder: Path) -> None:
    (folder / "zz_broken.yaml").write_text("units:\n  - {id: zz, name: [unclosed\n", encoding="utf-8")
    (folder / "aa_uses.yaml").write_text(
        "people:\n  - {id: zz_person, name: 某人, unit: zz}\n"
        "units:\n  - {id: lone, name: 孤, leaders: 7}\n", encoding="utf-8")
    errors, _ = check(folder)
    assert [e.file for e in errors] == ["schedules/zz_broken.yaml", "schedules/aa_uses.yaml"]
    assert "YAML 语法错误" in errors[0].message and "另有 1 处" in errors[0].message
    assert errors[1].field == "units[0].leaders"


# ---------------------------------------------------------------- loops


def test_a_loop_in_unit_parents_is_reported_once_with_its_whole_path(folder: Path) -> None:
    edit(folder / "organization.yaml", "    name: 市直机关工委\n", "    name: 市直机关工委\n    parent: fgw\n")
    errors, _ = check(folder)
    assert len(errors) == 1, [str(e) for e in errors]
    assert errors[0].field == "units[0].parent"
    assert "gw → fgw → gw" in errors[0].message and "…" not in errors[0].message


def test_two_loops_are_two_errors_and_units_under_them_are_not_blamed(folder: Path) -> None:
    (folder / "loops.yaml").write_text(
        "units:\n  - {id: a1, name: 甲, parent: b1}\n  - {id: b1, name: 乙, parent: c1}\n"
        "  - {id: c1, name: 丙, parent: a1}\n  - {id: d1, name: 丁, parent: c1}\n"
        "  - {id: x1, name: 戊, parent: x1}\n", encoding="utf-8")
    errors, _ = check(folder)
    assert [(e.line, e.message.split("：")[1].split("（")[0]) for e in errors] == [
        (2, "a1 → b1 → c1 → a1"), (6, "x1 → x1")]


# ---------------------------------------------------------------- what the admin wrote


def test_unquoted_values_are_quoted_as_written_with_the_fix(folder: Path) -> None:
    org = folder / "organization.yaml"
    edit(org, "    title: 支部书记\n", "    title: yes\n")
    edit(org, '    mobile: "13800000101"', "    mobile: 13800000101")
    edit(org, 'dingtalk: "0102030405"', "dingtalk: 0203040506")
    errors, _ = check(folder)
    by_field = {e.field.rsplit(".", 1)[-1]: e.message for e in errors}
    assert "而不是 “yes”" in by_field["title"] and "True" not in by_field["title"]
    assert '请加引号："yes"' in by_field["title"]
    assert '请加引号："13800000101"' in by_field["mobile"]
    assert "而不是 “0203040506”" in by_field["dingtalk"] and '请加引号："0203040506"' in by_field["dingtalk"]
    assert "34357574" not in by_field["dingtalk"].split("；")[1]  # the fix quotes the text, not the number


# ---------------------------------------------------------------- valid YAML, surely wrong


REMINDER = """\
reminders:
  - id: extra
    title: 测试提醒
    when:
      monthly: {day: 5}
    notices: [3d, 40d]
    recipients:
      channels: [gw_wecom]
"""


def test_a_notice_longer_than_the_period_is_an_error_at_its_line(folder: Path) -> None:
    (folder / "extra.yaml").write_text(REMINDER, encoding="utf-8")
    errors, _ = check(folder)
    assert [(e.file, e.line, e.field) for e in errors] == [("schedules/extra.yaml", 6, "reminders[0].notices[1]")]
    assert "40d" in errors[0].message and "每月" in errors[0].message


def test_a_weekly_notice_is_measured_against_the_gap_between_its_weekdays(folder: Path) -> None:
    text = REMINDER.replace("monthly: {day: 5}", "weekly: {weekday: [mon, thu]}").replace("[3d, 40d]", "[2d, 3d]")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    errors, _ = check(folder)
    assert [e.field for e in errors] == ["reminders[0].notices[1]"]


def test_the_thirtieth_of_february_warns_that_it_means_the_last_day(folder: Path) -> None:
    text = REMINDER.replace("monthly: {day: 5}", "yearly: {month: 2, day: 30}").replace("[3d, 40d]", "[3d]")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    errors, warnings = check(folder)
    assert not errors
    warning = next(w for w in warnings if w.field == "reminders[0].when.yearly.day")
    assert warning.line == 5 and "2 月没有 30 日" in warning.message and "最后一天" in warning.message


CHANNEL = "channels:\n  - id: extra_ch\n    name: 群\n    platform: {platform}\n    webhook: ${{URL}}\n"


@pytest.mark.parametrize(("platform", "url", "words"), [
    ("wecom", WECOM_URL + "\n", "末尾有换行"),
    ("wecom", " " + WECOM_URL, "开头有空格"),
    ("wecom", WECOM_URL.replace("send?", "send ?"), "有空格"),
    ("wecom", "https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789", "钉钉的机器人地址"),
    ("dingtalk", WECOM_URL, "企业微信的机器人地址"),
    ("slack", WECOM_URL, "或换成 Slack 群机器人的地址"),
    ("wecom", "https://hooks.slack.com/services/T0/B0/abcdef0123456789", "webhook 是 Slack 的机器人地址"),
    ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=abc", "key="),
])
def test_a_webhook_that_cannot_be_right_is_an_error_without_showing_it(
        folder: Path, platform: str, url: str, words: str) -> None:
    (folder / "extra.yaml").write_text(CHANNEL.format(platform=platform), encoding="utf-8")
    errors, _ = check(folder, env={"URL": url})
    assert [(e.line, e.field) for e in errors] == [(5, "channels[0].webhook")], [str(e) for e in errors]
    assert words in errors[0].message
    assert "0123456789abcdef" not in str(errors[0]) and "abcdef0123456789" not in str(errors[0])


def test_a_government_wecom_host_is_accepted(folder: Path) -> None:
    (folder / "extra.yaml").write_text(CHANNEL.format(platform="wecom"), encoding="utf-8")
    errors, _ = check(folder, env={"URL": "https://wx.gov.example.cn/cgi-bin/webhook/send?key=abc123"})
    assert not errors


def test_a_broken_template_is_one_error_however_many_reminders_use_it(folder: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "three_meetings.md.j2").write_text("{{ reminder.titel }}\n", encoding="utf-8")
    users = (folder / "three-meetings.yaml").read_text(encoding="utf-8").count("template: three_meetings")
    assert users > 1
    _, issues = check_schedules(folder, templates_dir=templates, env={})
    errors = [i for i in issues if not i.warning]
    assert len(errors) == 1, [str(e) for e in errors]
    assert "titel" in errors[0].message and f"另有 {users - 1} 个提醒使用此模板" in errors[0].message


def test_a_template_name_that_does_not_exist_is_an_error_at_each_line_naming_it(folder: Path) -> None:
    edit(folder / "three-meetings.yaml", "template: three_meetings", "template: three_meeting", count=2)
    errors, _ = check(folder)
    assert [e.field for e in errors] == ["reminders[0].template", "reminders[1].template"]


def test_a_daily_cron_with_day_notices_is_an_error_for_each_notice(folder: Path) -> None:
    text = REMINDER.replace("monthly: {day: 5}", 'cron: "0 9 * * *"').replace("[3d, 40d]", "[3d, 1d]")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    errors, _ = check(folder)
    assert [e.field for e in errors] == ["reminders[0].notices[0]", "reminders[0].notices[1]"]
    assert "cron" in errors[0].message and "1 天" in errors[0].message


def test_a_weekly_cron_is_measured_by_its_fire_times(folder: Path) -> None:
    text = REMINDER.replace("monthly: {day: 5}", 'cron: "0 9 * * mon,thu"').replace("[3d, 40d]", "[2d, 3d]")
    (folder / "extra.yaml").write_text(text, encoding="utf-8")
    errors, _ = check(folder)
    assert [e.field for e in errors] == ["reminders[0].notices[1]"]
    assert "3 天" in errors[0].message
