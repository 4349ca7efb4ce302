"""People and units from spreadsheets (CSV, Excel) in the schedules folder, with the YAML's messages."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import openpyxl
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from test_web_admin import AUTH, PASSWORD, USER
from test_web_confirm import build_world

from bot.cli import main
from bot.config.limits import Limits
from bot.config.loader import check_schedules
from bot.web import make_app
from storage.db import Database

ROOT = Path(__file__).resolve().parent.parent

YAML = """
channels:
  - {id: gw, name: 工委群, platform: wecom, webhook: ''}
reminders:
  - id: study
    title: 每月学习日
    when: {monthly: {day: 5}, at: "09:00"}
    recipients: {channels: [gw], mention: {roles: [secretary]}}
    confirm: {deadline: 3d}
"""


def folder_with(tmp_path: Path, **files: str | bytes) -> Path:
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "main.yaml").write_text(YAML, encoding="utf-8")
    for name, content in files.items():
        path = folder / name.replace("_", ".", 1) if "_" in name else folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


UNITS_CSV = "标识,名称,上级单位,分管领导\ngw,市直机关工委,,p001\nb1,第一党支部,gw,\n"
PEOPLE_CSV = ("\ufeff标识,姓名,单位,角色,手机,企业微信,所在群\n"
              "p001,李国强,gw,leader,13800000001,LiGQ,gw\n"
              "007,张伟,b1,secretary，worker,13800000007,,\n")


def test_people_and_units_from_csv_with_chinese_headers_are_selected_like_yaml(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, units_csv=UNITS_CSV, people_csv=PEOPLE_CSV)
    schedules, issues = check_schedules(folder)
    assert issues == []
    assert schedules is not None
    zhang = schedules.people["007"]  # a leading zero stays: every cell is text
    assert (zhang.name, zhang.unit, zhang.roles, zhang.channels) == ("张伟", "b1", ["secretary", "worker"], None)
    assert schedules.people["p001"].ids.wecom == "LiGQ"
    assert [p.id for p in schedules.select(schedules.reminders["study"].recipients.mention)] == ["007"]
    assert [p.id for p in schedules.leaders_of(zhang)] == ["p001"]
    assert schedules.sources["people:007"] == "schedules/people.csv:3"


def test_people_from_excel_with_english_headers_keep_text_ids_and_read_numbers_as_written(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["ID", "Name", "Unit", "Roles", "Mobile", "DingTalk"])
    sheet.append(["0042", "王芳", "b1", "secretary", 13800000042, "0102"])  # Excel keeps the mobile as a number
    book.save(tmp_path / "people.xlsx")
    folder = folder_with(tmp_path, units_csv=UNITS_CSV.replace(",p001", ","))
    (tmp_path / "people.xlsx").rename(folder / "people.xlsx")
    schedules, issues = check_schedules(folder)
    assert issues == [] and schedules is not None
    wang = schedules.people["0042"]
    assert (wang.mobile, wang.ids.dingtalk, wang.unit) == ("13800000042", "0102", "b1")


def test_errors_in_a_sheet_name_the_file_row_column_and_field_in_chinese(tmp_path: Path) -> None:
    people = ("标识,姓名,单位,角色,手机,备注\n"
              "p001,李国强,gw,leader,13800000001,x\n"
              "p002,张伟,b9,secretary,12x,y\n")
    folder = folder_with(tmp_path, units_csv=UNITS_CSV, people_csv=people)
    schedules, issues = check_schedules(folder)
    assert schedules is None
    found = {(i.file, i.line, i.column, i.field, i.message) for i in issues}
    allowed = "标识、姓名、单位、角色、职务、手机、企业微信、钉钉、飞书、lark、slack、所在群"
    assert ("schedules/people.csv", 1, 6, "", f"未知的列 “备注”（可用的列：{allowed}）") in found
    assert any(where[:4] == ("schedules/people.csv", 3, 5, "people[1].mobile")
               and where[4].startswith("应为 11 位手机号（如 13800000000），现在是 “12x”") for where in found)
    assert any((i.line, i.column, i.field) == (3, 3, "people[1].unit") and "未知的单位 “b9”" in i.message
               for i in issues)


def test_a_sheet_without_an_id_column_or_with_an_unknown_name_is_refused(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv="姓名\n张伟\n", staff_csv="标识,姓名\np1,张伟\n")
    _, issues = check_schedules(folder)
    messages = {(i.file, i.message) for i in issues}
    assert ("schedules/people.csv", "缺少必需的列：标识（第一行应为列名）") in messages
    assert any(f == "schedules/staff.csv" and "people" in m for f, m in messages)


def test_sheets_past_the_row_limit_are_refused_at_the_first_row_over(tmp_path: Path) -> None:
    rows = "".join(f"p{i},人员{i}\n" for i in range(5))
    folder = folder_with(tmp_path, people_csv="标识,姓名\n" + rows)
    _, issues = check_schedules(folder, limits=Limits(sheet_rows=3))
    assert [(i.line, i.field) for i in issues if "行数过多" in i.message] == [(5, "people[3]")]


def test_a_csv_saved_by_excel_in_gbk_is_read(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, people_csv=b"")
    (folder / "people.csv").write_bytes("标识,姓名,角色\np1,张伟,secretary\n".encode("gbk"))
    schedules, issues = check_schedules(folder)
    assert issues == [] and schedules is not None and schedules.people["p1"].name == "张伟"


@pytest.mark.parametrize("name", ["people.csv", "people.xlsx", "units.csv", "units.xlsx"])
async def test_the_admin_downloads_a_template_that_validates_in_the_shipped_schedules(
        db: Database, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    world = await build_world(db, tmp_path / "world", admin_user=USER, admin_password=PASSWORD)
    async with TestClient(TestServer(make_app(world.runtime), host="127.0.0.1")) as client:
        refused = await client.get(f"/admin/templates/{name}")
        assert refused.status == 401
        wrong = base64.b64encode(f"{USER}:nope".encode()).decode()
        assert (await client.get(f"/admin/templates/{name}", headers={"Authorization": f"Basic {wrong}"})).status == 401
        response = await client.get(f"/admin/templates/{name}", headers=AUTH)
        assert response.status == 200
        assert f'filename="{name}"' in response.headers["Content-Disposition"]
        body = await response.read()
        units_page = await (await client.get("/admin/units", headers=AUTH)).text()
    assert f'href="/admin/templates/{name}"' in units_page
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)  # what a new admin has: the shipped schedules
    (folder / name).write_bytes(body)
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    assert "配置无误" in result.output
    schedules, issues = check_schedules(folder, templates_dir=ROOT / "message_templates", env={})
    assert schedules is not None and not [i for i in issues if not i.warning]
    if name.startswith("people"):
        assert (schedules.people["p0001"].name, schedules.people["p0002"].name) == ("张三", "李四")
        assert schedules.people["p0001"].mobile == "13900000001"
    else:
        assert schedules.units["fgw_b3"].parent == "fgw" and schedules.units["czj_b2"].leaders == ["zhao_ming"]


def test_a_bad_mobile_in_excel_says_what_a_mobile_looks_like(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["ID", "Name", "Unit", "Mobile"])
    sheet.append(["p1", "王芳", "b1", "abc"])
    sheet.append(["p2", "李四", "b1", 1380000])  # seven digits: never @-mentionable
    folder = folder_with(tmp_path, units_csv=UNITS_CSV.replace(",p001", ","))
    book.save(folder / "people.xlsx")
    _, issues = check_schedules(folder)
    found = {(i.line, i.field, i.message) for i in issues}
    assert (2, "people[0].mobile", "应为 11 位手机号（如 13800000000），现在是 “abc”") in found
    assert (3, "people[1].mobile", "应为 11 位手机号（如 13800000000），现在是 “1380000”") in found


def test_a_bad_id_in_a_csv_is_quoted_bounded_and_escaped_after_what_an_id_may_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``remindbot validate``: the id a cell holds (a formula, a pasted escape sequence, 60 characters)
    is quoted in “…” after the rule, never read as the sentence's own words nor sent to the terminal raw."""
    people = ('标识,姓名,单位,角色\n=cmd|"/c calc"!A1,李国强,gw,leader\n'
              "p 2,张伟,b1,secretary\n" + "x" * 60 + "!,王芳,b1,secretary\n")
    folder = folder_with(tmp_path, units_csv=UNITS_CSV.replace(",p001", ","), people_csv=people)
    (folder / "main.yaml").write_text(YAML.replace('at: "09:00"}', 'at: "09:00"}\n    holiday: "keep\\n\\e[2J"'),
                                      encoding="utf-8")  # a terminal's clear-screen sequence, as YAML escapes it
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    rule = "列 “标识”：格式不对，只能使用字母、数字和 _ . -，现在是"
    assert f'people.csv:2:1: 错误 {rule} “=cmd|"/c calc"!A1”。\n' in result.output, result.output
    assert f"people.csv:3:1: 错误 {rule} “p 2”（" in result.output
    assert f"people.csv:4:1: 错误 {rule} “{'x' * 40}…”。\n" in result.output
    assert ("holiday：应为 next_workday、previous_workday、skip、keep 之一，而不是 “keep\\n\\x1b[2J”。\n"
            in result.output)
    assert "\x1b" not in result.output
