"""The registry (bot/platforms/registry.py) is the only place that lists the platforms.

Adding a platform is its folder (with ``spec.py``), two lines in the registry (an import and its
``SPECS`` entry) and its tests; everything an admin meets per platform (a person's ids in YAML and the JSON schema, the
spreadsheet columns, the webhook host check, the callback URL and ``remindbot apps check``) follows
from the folder's declaration. These tests fail when a list of platforms appears elsewhere, when code
elsewhere branches on a platform's name, or when a declared platform is missing from what an admin uses.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config.loader import check_schedules
from bot.platforms.registry import APP_SENDERS, CALLBACKS, EDITIONS, PERSON_ID_FIELDS, SPECS
from tests.test_sheets import UNITS_CSV, folder_with

ROOT = Path(__file__).resolve().parent.parent
NAMES = set(EDITIONS)


def platform_lists(root: Path) -> list[str]:
    """Literal tuples, lists, sets and dict keys naming two or more platforms, outside bot/platforms/."""
    found = []
    for path in sorted((root / "bot").rglob("*.py")):
        if "platforms" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if not isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) or items is None:
                continue
            named = {i.value for i in items if isinstance(i, ast.Constant) and i.value in NAMES}
            if len(named) >= 2:
                found.append(f"{path.relative_to(root)}:{node.lineno} {sorted(named)}")
    return found


def test_no_module_outside_the_platform_folders_lists_platforms() -> None:
    assert platform_lists(ROOT) == []


def platform_branches(root: Path) -> list[str]:
    """Comparisons with a platform's name (``platform.name == "wecom"``) outside bot/platforms/."""
    found = []
    for path in sorted((root / "bot").rglob("*.py")):
        if "platforms" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in NAMES for c in (node.left, *node.comparators)):
                found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_module_outside_the_platform_folders_branches_on_a_platforms_name(tmp_path: Path) -> None:
    """What differs by platform (such as how a report's chart is sent: ``chart``) is said in its folder."""
    assert platform_branches(ROOT) == []
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "x.py").write_text('if platform == "dingtalk":\n    pass\n')
    assert platform_branches(tmp_path) == ["bot/x.py:1 platform == 'dingtalk'"]


def test_each_platform_says_how_a_report_chart_goes_with_its_messages() -> None:
    """WeCom robots send the chart as an image message, DingTalk shows it in markdown, others link it."""
    ways = {spec.robot.name: spec.robot.chart for spec in SPECS}
    assert ways == {"wecom": "image", "dingtalk": "inline", "feishu": "link", "slack": "link", "generic": "link"}
    assert {sender.chart for sender in APP_SENDERS.values()} == {"link"}


def test_the_check_would_see_a_list_written_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "x.py").write_text('LABELS = ("wecom", "slack")\nWORDS = {"feishu": 1, "lark": 2}\n')
    assert platform_lists(tmp_path) == ["bot/x.py:1 ['slack', 'wecom']", "bot/x.py:2 ['feishu', 'lark']"]


def test_every_declared_id_is_a_field_of_people_ids_in_the_schema() -> None:
    result = CliRunner().invoke(main, ["schema", "-o", "-"])
    assert result.exit_code == 0, result.output
    ids = json.loads(result.output)["$defs"]["PlatformIds"]
    assert {k: v["description"] for k, v in ids["properties"].items()} == PERSON_ID_FIELDS
    assert set(PERSON_ID_FIELDS) == {"wecom", "dingtalk", "feishu", "lark", "slack"}  # generic has no ids


@pytest.mark.parametrize("name", sorted(PERSON_ID_FIELDS))
def test_each_platforms_id_column_in_a_sheet_fills_that_id(tmp_path: Path, name: str) -> None:
    header = EDITIONS[name].sheet_headers[0]
    people = f"标识,姓名,单位,角色,{header}\np001,李国强,gw,leader,\np007,张伟,b1,secretary,U-007\n"
    folder = folder_with(tmp_path, units_csv=UNITS_CSV, people_csv=people)
    schedules, issues = check_schedules(folder)
    assert issues == [] and schedules is not None
    assert schedules.people["p007"].ids.model_dump(exclude_none=True) == {name: "U-007"}


def test_every_app_platform_has_a_sender_and_a_callback() -> None:
    app_platforms = {n for s in SPECS if s.app_model for n in s.names}
    assert app_platforms == set(APP_SENDERS) == set(CALLBACKS) == {"wecom", "dingtalk", "feishu", "lark", "slack"}
    for spec in SPECS:  # an app's ``platform:`` values are its folder's editions
        if spec.app_model:
            literal = spec.app_model.model_fields["platform"].annotation
            assert set(literal.__args__) == set(spec.names)  # type: ignore[union-attr]
