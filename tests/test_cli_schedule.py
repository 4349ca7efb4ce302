"""`remindbot upcoming` and `remindbot schema` as an admin runs them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.cli.schedule import SCHEMA_PATH, schema_text
from bot.config.loader import load_schedules

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("REMINDBOT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REMINDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    return CliRunner()


def test_upcoming_400_days_lists_every_shipped_reminder(runner: CliRunner) -> None:
    result = runner.invoke(main, ["upcoming", "--days", "400", "--from", "2026-11-26"])
    assert result.exit_code == 0, result.output
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={})
    for reminder in schedules.reminders.values():
        if reminder.when.once is None or reminder.when.once.isoformat() >= "2026-11-26":
            assert reminder.title in result.output, reminder.id


def test_upcoming_marks_holiday_moves_with_the_original_date(runner: CliRunner) -> None:
    result = runner.invoke(main, ["upcoming", "--days", "400", "--from", "2026-11-26", "--reminder", "theme-party-day",
                                  "--no-notices"])
    assert result.exit_code == 0, result.output
    # The 20th of December 2026 is a Sunday: the previous_workday policy moves it to Friday the 18th.
    line = next(line for line in result.output.splitlines() if line.startswith("2026年12月18日"))
    assert "原定 2026年12月20日" in line


def test_upcoming_warns_about_years_beyond_the_holiday_data(runner: CliRunner) -> None:
    # 2035 lies beyond any chinesecalendar release for years to come.
    result = runner.invoke(main, ["upcoming", "--days", "60", "--from", "2035-01-01", "--reminder", "study-day"])
    assert result.exit_code == 0
    assert re.search(r"警告：2035 年的法定节假日安排尚未收录", result.output)
    assert "临时" in result.output


def test_upcoming_for_an_unknown_reminder_lists_the_known_ones(runner: CliRunner) -> None:
    result = runner.invoke(main, ["upcoming", "--reminder", "study-dya"])
    assert result.exit_code == 1
    assert "study-day" in result.output


def test_validate_passes_on_the_shipped_schedules(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert "配置无误" in result.output


def test_validate_lists_every_error_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    text = (folder / "study.yaml").read_text(encoding="utf-8")
    text = text.replace("template: study_day", "templte: study_day").replace("deadline: 5d", "deadline: 5x")
    (folder / "study.yaml").write_text(text, encoding="utf-8")
    result = runner.invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    assert "schedules/study.yaml:" in result.output
    assert "templte" in result.output and "5x" in result.output
    assert "共 2 处错误" in result.output


def test_shipped_schema_is_current_and_referenced_by_every_file() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8").strip() == schema_text().strip(), "run `remindbot schema`"
    schema = json.loads(schema_text())
    assert {"reminders", "channels", "people", "units", "calendar"} <= set(schema["properties"])
    for path in (ROOT / "schedules").glob("*.yaml"):
        assert path.read_text(encoding="utf-8").startswith(
            "# yaml-language-server: $schema=remindbot.schema.json"), path.name


def test_validate_explains_bad_mobiles_and_names_single_fields_from_sheets_and_yaml(
        runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / "people-extra.csv").write_text(
        "标识,姓名,单位,角色,手机,企业微信\n"
        "p1,张三,fgw_b1,secretary,+8613800000011,Z3\n"  # +86 is accepted
        "p2,李四,fgw_b9,secretary,1380000,L4\n"  # 7 digits can never be @-mentioned
        "p3,王五,fgw_b1,secretary,007,W5\n", encoding="utf-8")
    calendar = (folder / "calendar.yaml").read_text(encoding="utf-8")
    (folder / "calendar.yaml").write_text(calendar.replace(
        "  holidays: []", "  holidays:\n    - {from: 2026-02-30, to: 2026-03-02, name: 春节}"), encoding="utf-8")
    result = runner.invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    # A spreadsheet's issue names the column as its header does, not the YAML path (trial 7).
    # fgw_b9 is as close to fgw_b1 as to fgw_b2: both are named, not one by a coin toss (trial 9).
    assert "/people-extra.csv:3:3: 错误 列 “单位”：未知的单位 “fgw_b9”，是不是 “fgw_b1” 或 “fgw_b2”？" in result.output
    assert ("/people-extra.csv:3:5: 错误 列 “手机”："
            "应为 11 位手机号（如 13800000000），现在是 “1380000”") in result.output
    assert ("/people-extra.csv:4:5: 错误 列 “手机”："
            "应为 11 位手机号（如 13800000000），现在是 “007”") in result.output
    assert any("/calendar.yaml:14:14: " in line and "字段 calendar.holidays[0].from：日期不存在" in line
               and "2026-02-30" in line for line in lines), result.output
    assert "共 4 处错误" in result.output


def test_a_mobile_written_with_86_reaches_the_platforms_as_the_bare_11_digits(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / "people-extra.csv").write_text(
        "标识,姓名,单位,手机\np1,张三,fgw_b1,+8613800000011\n", encoding="utf-8")
    schedules = load_schedules(folder, templates_dir=ROOT / "message_templates", env={})
    assert schedules.people["p1"].mobile == "13800000011"


def test_validate_refuses_yaml_names_with_line_breaks_or_over_64_characters(runner: CliRunner, tmp_path: Path) -> None:
    """A line break in a name splits its @-mention (“@高\\n明”); the spreadsheet reader refuses it, so must YAML."""
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / "people-yaml.yaml").write_text(
        "people:\n"
        '  - {id: y1, name: "高\\n明", unit: fgw_b1}\n'
        f"  - {{id: y2, name: {'长' * 65}, unit: fgw_b1}}\n"
        "units:\n"
        '  - {id: yu1, name: "第一\\t支部", parent: fgw}\n', encoding="utf-8")
    result = runner.invoke(main, ["validate", str(folder)])
    assert result.exit_code == 1, result.output
    assert "/people-yaml.yaml:2:" in result.output and "字段 people" in result.output
    assert result.output.count("名称中不能有换行符、制表符等控制字符") == 2, result.output
    assert "/people-yaml.yaml:3:" in result.output and "名称不能超过 64 个字符（现在 65 个）" in result.output
    assert "共 3 处错误" in result.output


def test_validate_of_one_file_checks_its_whole_folder_and_says_so(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trial 9: `validate schedules/study.yaml` reported the channels and roles defined in the folder's
    other files as unknown. The folder is checked, said in one line, and errors still name their files."""
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["validate", "schedules/study.yaml"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == ("检查的是 study.yaml 所在文件夹 schedules/ 中的全部日程文件"
                                             "（频道、人员等可以定义在其他文件中，服务也是整个文件夹一起读取）。")
    assert "未知的频道" not in result.output and "配置无误：" in result.output
    text = (folder / "channels.yaml").read_text(encoding="utf-8")
    (folder / "channels.yaml").write_text(text.replace("platform: wecom", "platfrom: wecom", 1), encoding="utf-8")
    result = runner.invoke(main, ["validate", "schedules/study.yaml"])
    assert result.exit_code == 1
    assert "schedules/channels.yaml:" in result.output and "缺少 platform" in result.output


def test_validate_of_a_file_under_the_configured_folder_checks_that_folder(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / "people").mkdir()
    (folder / "people" / "people-extra.csv").write_text("标识,姓名,单位\np1,张三,fgw_b1\n", encoding="utf-8")
    monkeypatch.setenv("REMINDBOT_SCHEDULES_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["validate", "schedules/people/people-extra.csv"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("检查的是 people-extra.csv 所在文件夹 schedules/ 中的全部日程文件")
    assert "11 人" in result.output


def test_validate_of_a_lone_file_or_of_the_configured_file_checks_the_file_alone(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(ROOT / "schedules" / "calendar.yaml", lone / "calendar.yaml")
    result = runner.invoke(main, ["validate", str(lone / "calendar.yaml")])
    assert result.exit_code == 0, result.output
    assert "检查的是" not in result.output and "配置无误：0 个提醒" in result.output
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    monkeypatch.setenv("REMINDBOT_SCHEDULES_DIR", str(folder / "calendar.yaml"))  # the service reads this file alone
    result = runner.invoke(main, ["validate", str(folder / "calendar.yaml")])
    assert result.exit_code == 0, result.output
    assert "检查的是" not in result.output


def test_validate_help_says_path_is_the_folder_or_a_file_in_it(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", "--help"])
    assert "PATH 是日程文件夹" in result.output and "也可以是其中的一个文件" in result.output


def test_preview_and_upcoming_of_a_mistyped_reminder_name_the_one_meant(runner: CliRunner) -> None:
    for command in ("preview", "upcoming --reminder"):
        result = runner.invoke(main, [*command.split(), "stduy-day"])
        assert result.exit_code == 1
        assert "没有标识为 “stduy-day” 的提醒，是不是 “study-day”？可用的有：" in result.output, command


def test_an_unknown_person_is_hinted_by_a_close_id_or_a_close_name() -> None:
    from types import SimpleNamespace

    from bot.cli.unknown import unknown_person

    people = {"wang_fang": SimpleNamespace(name="王芳"), "li_guoqiang": SimpleNamespace(name="李国强")}
    assert unknown_person(people, "wang_fnag") == "找不到人员 “wang_fnag”，是不是 “wang_fang”？"
    assert unknown_person(people, "李国张") == "找不到人员 “李国张”，是不是 “李国强”？"
    assert unknown_person(people, "王方") == "找不到人员 “王方”，是不是 “王芳”？"
    assert unknown_person(people, "张三") == "找不到人员 “张三”：请写日程配置中的人员标识或姓名"


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_a_duplicate_id_shows_both_places_the_same_way(runner: CliRunner, tmp_path: Path, where: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Trial 10: the duplicate was shown at an absolute path, its first place relative to another folder.
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    (folder / "people-extra.csv").write_text("标识,姓名,单位,角色\nwang_fang,王芳二,fgw_b1,secretary\n",
                                              encoding="utf-8")
    if where == "inside":
        monkeypatch.chdir(tmp_path)
    # given relative from its parent: relative paths; given absolute: absolute ones, from anywhere
    result = runner.invoke(main, ["validate", "schedules" if where == "inside" else str(folder)])
    assert result.exit_code == 1
    found = re.search(r"^(\S+):2:1: 错误 列 “标识”：标识 “wang_fang” 重复，已在 (\S+):(\d+) 定义。$", result.output,
                      re.M)
    assert found, result.output
    mine, first = Path(found[1]), Path(found[2])
    assert mine.name == "people-extra.csv" and first.name == "organization.yaml"
    assert mine.parent == first.parent == (Path("schedules") if where == "inside" else folder)
    assert f"{first}:{found[3]}" in {f"{first}:{n}" for n, line in enumerate(
        (folder / "organization.yaml").read_text(encoding="utf-8").splitlines(), 1) if "id: wang_fang" in line}


def test_person_hints_on_the_shipped_people_trial_10() -> None:
    """Trial 10 #8: zhao named a secretary (zheng_tao, as close as zhao_ming), liu and Chinese names none."""
    from bot.cli.unknown import unknown_person

    people = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={}).people
    assert unknown_person(people, "zhao") == "找不到人员 “zhao”，是不是 “zhao_ming”？"  # the id it begins
    assert unknown_person(people, "liu") == "找不到人员 “liu”，是不是 “liu_yang”？"
    assert unknown_person(people, "王方") == "找不到人员 “王方”，是不是 “王芳”？"  # two characters, one apart
    assert unknown_person(people, "刘阳") == "找不到人员 “刘阳”，是不是 “刘洋”？"
    assert unknown_person(people, "赵敏") == "找不到人员 “赵敏”，是不是 “赵明”？"  # not 吴敏: the surname first
    assert unknown_person(people, "赵") == "找不到人员 “赵”，是不是 “赵明”？"  # a surname alone


def test_a_surname_shared_by_a_few_is_listed_and_by_many_counted() -> None:
    from types import SimpleNamespace

    from bot.cli.unknown import unknown_person

    few = {f"p{i}": SimpleNamespace(name=n) for i, n in enumerate(["王芳", "王伟", "李强"])}
    assert unknown_person(few, "王") == "找不到人员 “王”，是不是 “王伟” 或 “王芳”？"
    many = {f"p{i}": SimpleNamespace(name=f"王{c}") for i, c in enumerate("一二三四五")}
    assert unknown_person(many, "王") == "找不到人员 “王”：姓王的有 5 人，请写全姓名或人员标识"
    ids = {f"wang_{c}": SimpleNamespace(name="某") for c in "abcde"}
    assert unknown_person(ids, "wang") == "找不到人员 “wang”：“wang”开头的有 5 人，请写全姓名或人员标识"


def test_leader_link_of_a_part_of_an_id_names_the_leader(runner: CliRunner) -> None:
    result = runner.invoke(main, ["leader-link", "zhao"])
    assert result.exit_code == 1
    assert "找不到人员 “zhao”，是不是 “zhao_ming”？" in result.output and "zheng_tao" not in result.output


def test_preview_and_status_of_a_day_the_holiday_rule_moved_show_the_occurrence_it_became(
        runner: CliRunner) -> None:
    """Trial 10 #9: December's 主题党日 (the 20th, a Sunday) is on the 18th; --date 2026-12-20 said
    there was none and named January's."""
    preview = runner.invoke(main, ["preview", "theme-party-day", "--date", "2026-12-20"])
    assert preview.exit_code == 0, preview.output
    assert "“主题党日”2026年12月20日是星期日，已调整到 2026年12月18日（星期五）09:00。" in preview.output
    assert "主题党日：2026年12月18日（星期五）09:00（当天提醒），共" in preview.output
    assert "2027年1月20日" not in preview.output

    fired = runner.invoke(main, ["fire", "theme-party-day", "--date", "2026-12-20", "--yes"])
    assert fired.exit_code == 0, fired.output
    number = re.findall(r"记录号 (\d+)", fired.output)[0]
    status = runner.invoke(main, ["status", "theme-party-day", "--date", "2026-12-20"])
    assert status.exit_code == 0, status.output
    assert f"2026年12月20日是星期日，已调整到 2026年12月18日（星期五）09:00（记录号 {number}）" in status.output
    assert f"【主题党日】（theme-party-day，记录号 {number}）" in status.output
    every = runner.invoke(main, ["status", "--date", "2026-12-20"])  # every reminder's: the same
    assert f"（记录号 {number}）" in every.output and "没有需要确认的提醒记录" not in every.output


def test_preview_for_someone_the_reminder_does_not_reach_says_whom_it_reaches(runner: CliRunner) -> None:
    """Trial 10 #13: ``--person 王芳`` on the leaders' reminder printed 共 0 条消息."""
    result = runner.invoke(main, ["preview", "one-post-two-duties", "--person", "王芳"])
    assert result.exit_code == 1
    assert ("王芳 不是此提醒（“一岗双责”党建工作提醒）的接收人：此提醒发给角色为 leader 的人，"
            "共 3 人：李国强、赵明、孙丽。") in result.output
    assert "共 0 条消息" not in result.output
    reached = runner.invoke(main, ["preview", "one-post-two-duties", "--person", "赵明"])
    assert reached.exit_code == 0 and "共 1 条消息" in reached.output


def test_schema_to_a_folder_that_does_not_exist_is_a_chinese_error_naming_the_path(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "x.json"
    result = CliRunner().invoke(main, ["schema", "-o", str(target)])
    assert result.exit_code == 1
    assert result.output.strip() == f"无法写入 {target}：所在的文件夹不存在。请换一个可以写入的路径（-o/--output）。"
    assert "Traceback" not in result.output and not target.exists()


def test_upcoming_marks_a_day_fired_ahead_and_drops_its_notices(runner: CliRunner, tmp_path: Path) -> None:
    """Trial 12 #3: after `fire study-day --date 2026-12-04`, the day is no longer listed as to come."""
    import asyncio
    from datetime import UTC, datetime

    from storage.db import Database
    from storage.models import Occurrence

    async def fired_ahead() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await db.start()
        async with db.session() as session:
            session.add(Occurrence(reminder_id="study-day", due_at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC),
                                   title="每月学习日", fired_at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC)))
            await session.commit()
        await db.stop()

    before = runner.invoke(main, ["upcoming", "--days", "10", "--from", "2026-11-26", "--reminder", "study-day"])
    assert "提前3天通知" in before.output and "已提前发出" not in before.output
    asyncio.run(fired_ahead())
    result = runner.invoke(main, ["upcoming", "--days", "10", "--from", "2026-11-26", "--reminder", "study-day"])
    assert result.exit_code == 0, result.output
    assert "已于 2026年11月30日（星期一）20:00 提前发出，届时不再发送预告和当天提醒" in result.output
    assert "提前3天通知" not in result.output and "提前1天通知" not in result.output


def test_upcoming_on_a_database_not_yet_migrated_to_0009_still_marks_a_day_fired_ahead(
        runner: CliRunner, tmp_path: Path) -> None:
    """After an upgrade and before the service restarts (it migrates), the file has no ``fired_by``:
    ``upcoming`` reads it without (it only reads) and marks the day in the words of before."""
    import sqlite3

    path = tmp_path / "bot.db"
    schema = (ROOT / "storage" / "schema_sqlite.sql").read_text(encoding="utf-8")
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        db.execute("ALTER TABLE occurrence DROP COLUMN fired_by")
        db.execute("UPDATE alembic_version SET version_num = '0008'")
        db.execute("INSERT INTO occurrence (reminder_id, due_at, title, kind, provisional, created_at, fired_at,"
                   " dry_run) VALUES ('study-day', '2026-12-04 01:00:00.000000', '每月学习日', 'reminder', 0,"
                   " '2026-11-30 12:00:00.000000', '2026-11-30 12:00:00.000000', 0)")
    result = runner.invoke(main, ["upcoming", "--days", "10", "--from", "2026-11-26", "--reminder", "study-day"])
    assert result.exit_code == 0, result.output
    assert "已于 2026年11月30日（星期一）20:00 提前发出，届时不再发送预告和当天提醒" in result.output
    assert "无法读取数据库" not in result.output


def test_upcoming_without_a_database_file_creates_none(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["upcoming", "--days", "10", "--from", "2026-11-26", "--reminder", "study-day"])
    assert result.exit_code == 0 and "提前3天通知" in result.output
    assert not (tmp_path / "bot.db").exists()
