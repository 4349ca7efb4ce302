"""A 通报 and a leader's brief over hundreds of units name a bounded few: the best and those behind.

The test world (``tests/test_followup.py``) gets 200 more branches under 市发展改革委, each with a
secretary, and one study day in November owed by all 203 secretaries, written straight into the
tables: a third confirmed on time, a third late, a third not at all, so the ranking is known.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import insert
from test_followup import Clock, bj, make_runtime, write_world
from test_reports import with_webhook

from bot.config.models import REPORT_ROWS, ReportSpec
from bot.confirming.confirmations import to_db_time
from bot.reporting import chart
from bot.reporting.chart import find_cjk_font, render_png
from bot.reporting.reports import UnitRow, figures_for, rank, shown_figures, shown_rows
from bot.runtime import Runtime
from bot.scheduling.occurrences import plan_fire, report_figures
from bot.scheduling.timing import Due, Fire
from bot.settings import Settings
from storage.models import Confirmation, Expectation, Occurrence

EXTRA = 200  # branches added to the test world's three
UNITS = EXTRA + 3
needs_font = pytest.mark.skipif(find_cjk_font() is None, reason="no CJK font installed (fonts-noto-cjk)")
NUMBERED = re.compile(r"^(\d+)\. ", re.MULTILINE)


def wide_world(settings: Settings) -> Settings:
    path = settings.schedules_dir / "world.yaml"
    text = path.read_text(encoding="utf-8")
    units = "".join(f"  - {{id: fgw_x{i:03d}, name: 发改委第{i:03d}支部, parent: fgw}}\n" for i in range(EXTRA))
    people = "".join(f"  - {{id: s{i:03d}, name: 书记{i:03d}, roles: [secretary], unit: fgw_x{i:03d}}}\n"
                     for i in range(EXTRA))
    text = text.replace("people:\n", units + "people:\n", 1).replace("channels:\n", people + "channels:\n", 1)
    path.write_text(text, encoding="utf-8")
    return settings


async def owed_in_november(runtime: Runtime) -> None:
    """One study day (3 November, deadline 6 November 09:00) owed by every secretary: by their
    order, on time, late, not at all, in turn."""
    due, deadline = bj(2026, 11, 3, 9, 0), bj(2026, 11, 6, 9, 0)
    secretaries = [p for p in runtime.schedules.people.values() if "secretary" in p.roles]
    async with runtime.db.engine.begin() as conn:
        [occ] = (await conn.execute(insert(Occurrence.__table__).returning(Occurrence.__table__.c.id), [  # type: ignore[attr-defined]
            {"reminder_id": "study", "due_at": to_db_time(due), "title": "每月学习日", "kind": "reminder",
             "deadline_at": to_db_time(deadline), "provisional": False, "created_at": to_db_time(due),
             "fired_at": to_db_time(due), "dry_run": False}])).scalars().all()
        await conn.execute(insert(Expectation.__table__), [  # type: ignore[attr-defined]
            {"occurrence_id": occ, "person_id": p.id, "person_name": p.name, "unit_id": p.unit,
             "unit_name": runtime.schedules.unit_name(p.unit), "leader_ids": [], "followups": 0, "escalations": 0}
            for p in secretaries])
        times = (deadline.replace(day=5), deadline.replace(day=9))  # on time, late
        await conn.execute(insert(Confirmation.__table__), [  # type: ignore[attr-defined]
            {"occurrence_id": occ, "person_id": p.id, "confirmed_at": to_db_time(times[i % 3]), "via": "link"}
            for i, p in enumerate(secretaries) if i % 3 < 2])


@pytest.fixture
async def wide(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await make_runtime(wide_world(with_webhook(write_world(tmp_path))), Clock(bj(2026, 12, 2, 16, 0)))
    try:
        await owed_in_november(runtime)
        yield runtime
    finally:
        await runtime.db.stop()


def _places(text: str) -> list[int]:
    return [int(n) for n in NUMBERED.findall(text)]


HEAD = REPORT_ROWS // 3  # the best ranked named (20 → 6); the rest of the bound are the units behind
TAIL = REPORT_ROWS - HEAD
MISSING = UNITS // 3  # units that never confirmed: the last, sharing one place
EXPECTED_PLACES = [1] * HEAD + [UNITS - MISSING + 1] * TAIL  # equal figures share a place


async def test_a_report_over_203_units_names_the_best_and_the_last_with_their_places(wide: Runtime) -> None:
    bulletin = wide.schedules.reminders["bulletin"]
    figures = await figures_for(wide, bulletin, None, bj(2026, 12, 2, 16, 0))

    assert figures is not None
    assert [r["place"] for r in figures["rows"]] == EXPECTED_PLACES
    assert (figures["more"], figures["head"], figures["total_units"]) == (UNITS - REPORT_ROWS, HEAD, UNITS)
    assert figures["totals"]["expected"] == UNITS and figures["totals"]["unit"] == "合计"
    assert figures["totals"]["missing"] == UNITS // 3  # 67 of 203 never confirmed
    assert all(r["missing"] == 1 for r in figures["rows"][HEAD:])  # those behind are named
    assert figures["ranking"] == "https://dj.example.gov.cn/admin/units?period=2026-11"

    due_at = bj(2026, 12, 2, 16, 0)
    fire = Fire("bulletin", "due", due_at, Due("bulletin", due_at, None, False, False, None), None)
    [plan] = await plan_fire(wide, bulletin, fire, 1, None, report_figures(wide))
    text = wide.renderer.render(plan.template, plan.context, plan.title).markdown

    assert _places(text) == EXPECTED_PLACES
    assert f"……（中间 {UNITS - REPORT_ROWS} 个单位略）" in text
    assert text.index("1. ") < text.index("……（中间") < text.index(f"{UNITS - MISSING + 1}. ")
    # the summary first: what a reader sees first carries the totals even if the list is split
    assert text.index("**统计周期：**") < text.index("合计（共") < text.index("完整排名见") < text.index("1. ")
    assert f"合计（共 {UNITS} 个单位）：按时完成率 " in text and f"应确认 {UNITS}，" in text
    assert f"以下列出排名前 {HEAD} 名与后 {TAIL} 名，其余 {UNITS - REPORT_ROWS} 个单位未列出" in text
    assert "(https://dj.example.gov.cn/admin/units?period=2026-11)" in text
    assert "请工作滞后的单位对照差距" in text
    assert len(text.encode()) <= 4096, len(text.encode())  # one WeCom markdown message


async def test_a_report_s_rows_option_bounds_it_and_is_validated(wide: Runtime) -> None:
    bulletin = wide.schedules.reminders["bulletin"]
    assert bulletin.report is not None
    short = bulletin.model_copy(update={"report": bulletin.report.model_copy(update={"rows": 12})})
    figures = await figures_for(wide, short, None, bj(2026, 12, 2, 16, 0))
    assert figures is not None
    assert [r["place"] for r in figures["rows"]] == [1] * 4 + [UNITS - MISSING + 1] * 8
    for bad in (0, 2, 101):
        with pytest.raises(ValidationError):
            ReportSpec(rows=bad)


async def test_a_leader_s_brief_over_202_units_names_the_bound_and_sums_up_the_rest(wide: Runtime) -> None:
    duties = wide.schedules.reminders["duties"]
    now = bj(2027, 1, 8, 10, 0)
    fire = Fire("duties", "due", now, Due("duties", now, None, False, False, None), None)
    plans = await plan_fire(wide, duties, fire, 1, None, report_figures(wide))
    [zhao] = [p for p in plans if p.mentions[0].person_id == "zhao"]
    text = wide.renderer.render(zhao.template, zhao.context, zhao.title).markdown

    oversees = EXTRA + 2  # 发改委's two branches and the 200 added
    missing = MISSING - 1  # 教育局第一党支部, one of those that never confirmed, is not his
    assert _places(text) == [1] * HEAD + [oversees - missing + 1] * TAIL
    assert f"……（中间 {oversees - REPORT_ROWS} 个单位略）" in text
    assert f"合计（共 {oversees} 个单位）：应确认 {oversees} 项" in text
    assert "- " not in text.split("分管单位党建工作情况")[1]
    [sun] = [p for p in plans if p.mentions[0].person_id == "sun"]  # one unit: a bullet, as before
    assert "- 教育局第一党支部：" in wide.renderer.render(sun.template, sun.context, sun.title).markdown


def test_a_ranking_at_the_bound_is_listed_whole_and_one_more_cuts_its_middle() -> None:
    rows = [UnitRow(f"u{i}", f"支部{i}", expected=1, on_time=1) for i in range(REPORT_ROWS + 1)]
    assert [p for p, _ in shown_rows(rows[:REPORT_ROWS])] == [1] * REPORT_ROWS  # equal figures: one place
    whole = shown_figures(rows[:REPORT_ROWS])
    assert (whole["more"], whole["total_units"]) == (0, REPORT_ROWS)
    cut = shown_figures(rows)
    assert cut["more"] == 1
    assert [r["place"] for r in cut["rows"]] == [1] * REPORT_ROWS
    assert cut["totals"]["expected"] == REPORT_ROWS + 1


def _png_height(png: bytes) -> int:
    return int(struct.unpack(">I", png[20:24])[0])


@needs_font
def test_a_chart_of_2000_units_draws_the_bound_s_bars_with_their_places(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[Any, ...]] = []
    real = chart._draw

    def spy(rows: list[UnitRow], title: str, font: str, places: list[int] | None = None, *,
            gap: tuple[int, int] | None = None) -> bytes:
        drawn.append((rows, title, places, gap))
        return real(rows, title, font, places, gap=gap)

    monkeypatch.setattr(chart, "_draw", spy)
    rows = [UnitRow(f"u{i}", f"支部{i}", expected=4, on_time=4 - i * 4 // 2000, missing=i * 4 // 2000)
            for i in range(2000)]
    started = time.process_time()
    picture = render_png(rows, "通报")
    spent = time.process_time() - started

    assert picture is not None and spent < 20, spent
    [(shown, title, places, gap)] = drawn
    assert len(shown) == REPORT_ROWS and places == [1] * HEAD + [1501] * TAIL  # 500 units share each place
    assert gap == (HEAD, 2000 - REPORT_ROWS)
    assert shown[-1] is rows[-1] and shown[HEAD - 1] is rows[HEAD - 1]
    assert title == f"通报\n（共 2,000 个单位，显示前 {HEAD} 名与后 {TAIL} 名）"
    assert _png_height(picture.png) < 2_000


@needs_font
async def test_a_report_s_chart_draws_the_rows_its_message_lists(wide: Runtime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[Any, ...]] = []
    real = chart._draw

    def spy(rows: list[UnitRow], title: str, font: str, places: list[int] | None = None, *,
            gap: tuple[int, int] | None = None) -> bytes:
        drawn.append((rows, title, places, gap))
        return real(rows, title, font, places, gap=gap)

    monkeypatch.setattr(chart, "_draw", spy)
    bulletin = wide.schedules.reminders["bulletin"]
    due_at = bj(2026, 12, 2, 16, 0)
    fire = Fire("bulletin", "due", due_at, Due("bulletin", due_at, None, False, False, None), None)
    [plan] = await plan_fire(wide, bulletin, fire, 1, None, report_figures(wide))

    assert plan.picture is not None
    [(rows, title, places, gap)] = drawn
    assert places == EXPECTED_PLACES and len(rows) == REPORT_ROWS
    assert gap == (HEAD, UNITS - REPORT_ROWS)
    assert title == f"组织生活情况通报（2026年11月）\n（共 {UNITS} 个单位，显示前 {HEAD} 名与后 {TAIL} 名）"


# ---------------------------------------------------------------- places, nothing due, summary first


def _report_text(rows: list[UnitRow], ranking: str | None = None) -> str:
    """The 通报 of ranked ``rows`` as the report template renders it (the shipped templates)."""
    from bot.delivery.render import Renderer, sample_contexts

    figures: dict[str, Any] = {"period": "2026年11月", "spec": "2026-11"} | shown_figures(rank(rows))
    if ranking:
        figures["ranking"] = ranking
    ctx = sample_contexts("组织生活情况通报")[0] | {"figures": figures, "late": None, "stage": "report"}
    renderer = Renderer(Path(__file__).resolve().parent.parent / "message_templates")
    return renderer.render("report", ctx, "组织生活情况通报").markdown


def test_equal_figures_share_a_place_and_a_unit_with_nothing_due_gets_a_dash() -> None:
    rows = [UnitRow("a", "甲支部", 2, 2), UnitRow("b", "乙支部", 2, 1, 1), UnitRow("c", "丙支部", 2, 1, 1),
            UnitRow("d", "丁支部", 2, 0, 0, 2), UnitRow("e", "戊支部", 2, 0, 0, 2, pending=2),
            UnitRow("f", "己支部", 0, excused=1)]  # nothing past its deadline; its only person excused
    assert [p for p, _ in shown_rows(rank(rows))] == [1, 2, 2, 0, 4, 0]  # ranked as the admin units page ranks
    text = _report_text(rows)
    assert _places(text) == [1, 2, 2, 4]
    assert "— 戊支部：按时完成率 —（应确认 2，" in text and "— 己支部：按时完成率 —（应确认 0，" in text
    assert text.count("按时完成率 0%") == 1  # 丁支部 alone: it has something due
    assert "请工作滞后的单位对照差距" in text


def test_a_ranking_with_nothing_due_yet_is_not_told_to_close_the_gap() -> None:
    text = _report_text([UnitRow("a", "甲支部", 2, 0, 0, 2, pending=2), UnitRow("b", "乙支部", 0, excused=1)])
    assert "按时完成率 0%" not in text and "请工作滞后的单位对照差距" not in text
    assert _places(text) == [] and "— 甲支部：按时完成率 —" in text


def test_a_cut_ranking_names_as_behind_only_units_with_something_due() -> None:
    due = [UnitRow(f"u{i}", f"支部{i}", 4, 4 - i % 5, i % 5) for i in range(25)]
    waiting = [UnitRow(f"w{i}", f"待办支部{i}", 3, 0, 0, 3, pending=3) for i in range(10)]
    figures = shown_figures(rank(due + waiting))
    named = [r["unit"] for r in figures["rows"]]
    assert not any(n.startswith("待办") for n in named)  # not the last: they owe nothing yet
    assert (figures["more"], figures["head"], len(named)) == (15, HEAD, REPORT_ROWS)
    assert all(r["rate"] < 1 for r in figures["rows"][HEAD:])  # the tail: the worst of those with something due
    assert [r["place"] for r in figures["rows"]] == [1] * 5 + [6] + [11] * 4 + [16] * 5 + [21] * 5
    assert figures["ranked"]


def test_a_long_report_puts_its_summary_and_link_in_the_first_part() -> None:
    from bot.platforms.markup import split_text

    name = "某某市某某区某某街道某某社区党委第{:03d}党支部委员会某某小组联络站"  # 33 characters
    rows = [UnitRow(f"u{i}", name.format(i), 40, 40 - i, i, 0, 12) for i in range(UNITS)]
    assert len(name.format(0)) == 33
    link = "https://dj.example.gov.cn/admin/units?period=2026-11"
    parts = split_text(_report_text(rows, link), 4096)
    assert len(parts) == 2
    assert f"合计（共 {UNITS} 个单位）" in parts[0] and link in parts[0]
    assert parts[1].startswith("（续 2/2）")
    body = "\n".join(parts)
    assert len(_places(body)) == REPORT_ROWS  # every row whole, in one part or the other


def test_a_report_reminder_without_a_template_uses_the_report_template() -> None:
    from bot.config.models import Reminder

    base = {"id": "monthly-report", "title": "月度通报", "kind": "report",
            "when": {"monthly": {"day": 5}, "at": "10:00"}, "recipients": {"channels": ["c000"]}}
    assert Reminder.model_validate(base).template == "report"
    assert Reminder.model_validate(base | {"template": "default"}).template == "default"  # as written
    assert Reminder.model_validate(base | {"template": "my_report"}).template == "my_report"
    assert Reminder.model_validate(base | {"kind": "reminder"}).template == "default"


def test_a_long_ranking_mostly_with_nothing_due_lists_every_unit_with_something_due_in_one_block() -> None:
    due = [UnitRow(f"u{i}", f"支部{i}", 2, 2 - i % 3, i % 3) for i in range(REPORT_ROWS)]
    waiting = [UnitRow(f"w{i}", f"待办支部{i}", 1, 0, 0, 1, pending=1) for i in range(30)]
    figures = shown_figures(rank(due + waiting))
    assert (figures["head"], figures["more"], figures["waiting"]) == (REPORT_ROWS, 30, 30)
    text = _report_text(due + waiting)
    assert "……（中间" not in text and "与后 0 名" not in text
    assert f"以下列出有到期事项的全部 {REPORT_ROWS} 个单位，其余 30 个单位尚无到期事项，未列出" in text
    assert len(_places(text)) == REPORT_ROWS and "待办支部" not in text


def test_a_long_ranking_with_nothing_past_its_deadline_says_so_without_contradicting_itself() -> None:
    # Trial 7: 20,000 units, every item still before its deadline: "全部 0 个单位" was listed, then
    # "本期没有需要确认的事项" under a 合计 of 20,000 items owed.
    waiting = [UnitRow(f"w{i}", f"待办支部{i}", 1, 0, 0, 1, pending=1) for i in range(REPORT_ROWS + 5)]
    text = _report_text(waiting)
    assert f"应确认 {REPORT_ROWS + 5}" in text and "未到截止" in text
    assert "全部 0 个单位" not in text and "本期没有需要确认的事项" not in text
    assert "各单位的事项均未到截止，暂不排名" in text and "待办支部" not in text


def test_a_leader_s_brief_with_nothing_past_its_deadline_says_so_rather_than_no_record() -> None:
    from bot.delivery.render import Renderer, sample_contexts

    waiting = [UnitRow(f"w{i}", f"待办支部{i}", 1, 0, 0, 1, pending=1) for i in range(REPORT_ROWS + 5)]
    figures: dict[str, Any] = {"period": "2026年11月", "spec": "2026-11"} | shown_figures(rank(waiting))
    ctx = sample_contexts("“一岗双责”提醒")[0] | {"figures": figures, "late": None, "stage": "due"}
    renderer = Renderer(Path(__file__).resolve().parent.parent / "message_templates")
    text = renderer.render("duty_brief", ctx, "“一岗双责”提醒").markdown
    assert "暂无需要确认的党建工作记录" not in text
    assert f"本期分管单位（共 {REPORT_ROWS + 5} 个）的事项均未到截止" in text


def test_a_small_ranking_without_ties_renders_as_before() -> None:
    rows = [UnitRow("a", "甲支部", 3, 3, 0, 0, 1), UnitRow("b", "乙支部", 3, 2, 1, 0, 2),
            UnitRow("c", "丙支部", 4, 1, 1, 2, 0, 1, 1)]
    assert _report_text(rows) == (  # as rendered before places were shared (commit d5b6481)
        "### 组织生活情况通报\n**统计周期：**2026年11月\n\n"
        "1. 甲支部：按时完成率 100%（应确认 3，按时确认 3，逾期确认 0，未确认 0，催办 1 次）\n"
        "2. 乙支部：按时完成率 67%（应确认 3，按时确认 2，逾期确认 1，未确认 0，催办 2 次）\n"
        "3. 丙支部：按时完成率 33%（应确认 4，按时确认 1，逾期确认 1，未确认 2（其中 1 项未到截止），催办 0 次；"
        "请假等免于确认 1 人）\n\n按按时完成率排名，请工作滞后的单位对照差距，抓紧整改。")
