"""Did-you-mean hints for unknown ids against a province's people: a typo is named, a stranger is not."""

from __future__ import annotations

from pathlib import Path

from test_sheets_defects import HEADER, UNITS, errors, folder_with

from bot.config.hints import SCAN_MAX, Hints
from bot.config.loader import check_schedules


def people_csv(count: int) -> str:
    return HEADER + "".join(f"p{i:05d},人员{i},b1,secretary,138{i:08d}\n" for i in range(count))


def test_unknown_people_among_thousands_are_hinted_only_when_one_typo_away(tmp_path: Path) -> None:
    count = SCAN_MAX + 1000
    reminders = ("reminders:\n  - id: r\n    title: 提醒\n    when: {monthly: {day: 1}, at: '09:00'}\n"
                 "    template: generic\n    recipients:\n      channels: [gw]\n"
                 "      mention: {people: [P00123, p00213x, 王芳, p01234]}\n")
    folder = folder_with(tmp_path, people_csv=people_csv(count), units_csv=UNITS, r_yaml=reminders)
    _, issues = check_schedules(folder)
    messages = [i.message for i in errors(issues) if i.file.endswith("r.yaml")]
    assert messages == [
        "未知的人员 “P00123”，是不是 “p00123”？",  # another case
        "未知的人员 “p00213x”，是不是 “p00213”？",  # a character added
        "未知的人员 “王芳”",  # nothing like it: no guess among thousands of ids
    ]


def test_among_many_candidates_the_one_a_single_typo_away_is_named() -> None:
    hints = Hints({f"u{i:04d}x" for i in range(5000)})
    assert len(hints.known) > SCAN_MAX
    assert hints.closest("u0102X") == "u0102x"  # another case
    assert hints.closest("0u102x") == "u0102x"  # two characters swapped
    assert hints.closest("u0102y") == "u0102x"  # one replaced
    assert hints.closest("u0102") == "u0102x"  # one left out
    assert hints.closest("u01") is None  # two away: no guess
    assert hints.closest("完全不同的名字") is None


def test_a_single_typo_is_found_among_few_candidates_whatever_the_length() -> None:
    hints = Hints({"lead", "admin", "secretary"})
    assert hints.typo("leed") == "lead"  # difflib's ratio is 0.75 for four letters
    assert hints.typo("amdin") == "admin"
    assert hints.typo("deputy_secretary") is None
    assert hints.typo("") is None


def test_equally_close_candidates_are_named_together_and_too_many_none() -> None:
    from bot.config.hints import did_you_mean

    assert Hints({"fgw_b1", "fgw_b2", "czj"}).meant("fgw_b9") == ["fgw_b1", "fgw_b2"]
    assert did_you_mean(["fgw_b1", "fgw_b2"]) == "，是不是 “fgw_b1” 或 “fgw_b2”？"
    assert did_you_mean(["a", "b", "c"]) == "，是不是 “a”、“b” 或 “c”？"
    assert Hints({"gw_wecom", "gw_dingtalk"}).meant("gw_wecon") == ["gw_wecom"]  # the closest alone
    assert Hints({f"b{i}" for i in range(1, 10)}).meant("bx") == []  # nine as close: no coin toss
    assert did_you_mean([]) == ""
