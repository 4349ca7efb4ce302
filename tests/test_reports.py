"""Per-unit figures and ranking, periods, the figures templates receive, and output formats."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select
from test_followup import BJ, Clock, bj, confirm, fire_due, make_runtime, outbox, write_world
from wcwidth import wcswidth

from bot.confirming.confirmations import board, to_db_time
from bot.confirming.followup import FollowUps
from bot.reporting.reports import (
    Owed,
    UnitRow,
    board_figures,
    figures_for,
    format_rows,
    nudge_counts,
    period_bounds,
    rank,
    tally,
    unit_figures,
)
from bot.reporting.textable import table, width
from bot.runtime import Runtime
from bot.scheduling.occurrences import fire
from bot.scheduling.timing import Due, Fire
from bot.settings import Settings
from storage.models import Occurrence


@pytest.fixture
async def november(tmp_path: Path) -> AsyncIterator[Runtime]:
    """Two study days in November 2026 and one in October, with a mixed record.

    Wang (发改委第一党支部) confirms both on time; Liu (发改委第二党支部) confirms the first late
    and the second on time; Wu (教育局第一党支部) confirms neither. One round of follow-ups
    nudges Liu and Wu once each.
    """
    runtime = await make_runtime(with_webhook(write_world(tmp_path)), Clock(bj(2026, 11, 3, 9, 0)))
    try:
        october = await fire_due(runtime, "study", bj(2026, 10, 13, 9, 0))
        await confirm(runtime, october, "wang", bj(2026, 10, 13, 10, 0))
        first = await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))  # deadline 6 Nov 09:00
        await confirm(runtime, first, "wang", bj(2026, 11, 3, 10, 0))
        await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0))
        await confirm(runtime, first, "liu", bj(2026, 11, 9, 10, 0))
        second = await fire_due(runtime, "study", bj(2026, 11, 17, 9, 0))
        await confirm(runtime, second, "wang", bj(2026, 11, 17, 9, 30))
        await confirm(runtime, second, "liu", bj(2026, 11, 18, 9, 30))
        yield runtime
    finally:
        await runtime.db.stop()


NOVEMBER = (bj(2026, 11, 1), bj(2026, 12, 1))


def with_webhook(settings: Settings) -> Settings:
    """The world with a webhook for its group chat (nothing is dispatched here: its messages stay waiting)."""
    path = settings.schedules_dir / "world.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("{id: group, name: 党务工作群, platform: generic}",
                                 "{id: group, name: 党务工作群, platform: generic, webhook: 'https://hooks.example.cn/x'}"),
                    encoding="utf-8")
    return settings


async def test_figures_count_on_time_late_missing_and_nudges_per_unit(november: Runtime) -> None:
    rows = await unit_figures(november, *NOVEMBER)

    assert [(r.unit, r.expected, r.on_time, r.late, r.missing, r.nudges) for r in rows] == [
        ("发改委第一党支部", 2, 2, 0, 0, 0),
        ("发改委第二党支部", 2, 1, 1, 0, 1),
        ("教育局第一党支部", 2, 0, 0, 2, 1),
    ]
    assert [r.rate for r in rows] == [1.0, 0.5, 0.0]


async def test_figures_roll_branches_up_to_their_organ(november: Runtime) -> None:
    rows = await unit_figures(november, *NOVEMBER, by_parent=True)

    assert [(r.unit_id, r.unit, r.expected, r.on_time, r.missing) for r in rows] == [
        ("fgw", "市发展改革委", 4, 3, 0), ("jyj", "市教育局", 2, 0, 2)]


async def test_figures_can_be_narrowed_to_units_and_reminders(november: Runtime) -> None:
    only_fgw = await unit_figures(november, *NOVEMBER, unit_ids=["fgw"])
    assert [r.unit_id for r in only_fgw] == ["fgw_b1", "fgw_b2"]
    assert await unit_figures(november, *NOVEMBER, reminder_ids=["eve"]) == []
    october = await unit_figures(november, bj(2026, 10, 1), bj(2026, 11, 1))
    assert sum(r.expected for r in october) == 3


def test_ranking_puts_the_best_rate_first_and_then_fewest_missing() -> None:
    rows = [UnitRow("a", "甲", expected=2, on_time=0, missing=2), UnitRow("b", "乙", expected=2, on_time=0, late=2),
            UnitRow("c", "丙", expected=4, on_time=3, missing=1)]
    assert [r.unit_id for r in rank(rows)] == ["c", "b", "a"]


DEADLINE = bj(2026, 11, 6, 9, 0)


@pytest.mark.parametrize(
    ("confirmed_at", "now", "counted"),
    [
        (bj(2026, 11, 6, 9, 0), bj(2026, 12, 1), "on_time"),  # at the deadline is still on time
        (bj(2026, 11, 6, 9, 1), bj(2026, 12, 1), "late"),
        (None, bj(2026, 11, 6, 8, 59), "pending"),  # missing, but there is still time
        (None, bj(2026, 11, 6, 9, 0), "overdue"),
    ],
)
def test_tally_sorts_each_confirmation_by_its_deadline(confirmed_at: datetime | None, now: datetime,
                                                       counted: str) -> None:
    [row] = tally([Owed("b1", "第一党支部", confirmed_at, DEADLINE, nudges=2)], now)
    got = {"on_time": row.on_time, "late": row.late, "pending": row.pending,
           "overdue": row.missing - row.pending}
    assert got == {k: int(k == counted) for k in got}
    assert (row.expected, row.nudges, row.missing) == (1, 2, int(confirmed_at is None))


def test_tally_counts_a_confirmation_without_a_deadline_as_on_time_and_a_missing_one_as_pending() -> None:
    rows = tally([Owed("b1", "第一党支部", datetime(2026, 11, 3, 2), None), Owed("b1", "第一党支部", None, None)],
                 bj(2027, 1, 1))
    assert rows == [UnitRow("b1", "第一党支部", expected=2, on_time=1, missing=1, pending=1)]


async def test_an_occurrence_s_board_counts_exactly_like_a_period_holding_only_it(november: Runtime) -> None:
    now = bj(2026, 11, 10)
    async with november.db.session() as session:
        [occ_id] = (await session.exec(select(Occurrence.id).where(
            Occurrence.due_at == to_db_time(bj(2026, 11, 3, 9, 0))))).all()
        nudges = await nudge_counts(session, [occ_id])
    the_board = await board(november.db, occ_id, now)

    from_board = board_figures(the_board, nudges, now)

    assert from_board == await unit_figures(november, bj(2026, 11, 1), bj(2026, 11, 10), now=now)
    assert [(r.unit, r.on_time, r.late, r.missing, r.nudges) for r in from_board] == [
        ("发改委第一党支部", 1, 0, 0, 0), ("发改委第二党支部", 0, 1, 0, 1), ("教育局第一党支部", 0, 0, 1, 1)]


@pytest.mark.parametrize(
    ("spec", "now", "start", "end", "label"),
    [
        ("2026-11", bj(2027, 3, 1), bj(2026, 11, 1), bj(2026, 12, 1), "2026年11月"),
        ("2026-Q4", bj(2027, 3, 1), bj(2026, 10, 1), bj(2027, 1, 1), "2026年第四季度"),
        ("2026", bj(2027, 3, 1), bj(2026, 1, 1), bj(2027, 1, 1), "2026年"),
        ("previous_month", bj(2026, 1, 15), bj(2025, 12, 1), bj(2026, 1, 1), "2025年12月"),
        ("current_month", bj(2026, 2, 28), bj(2026, 2, 1), bj(2026, 3, 1), "2026年2月"),
        ("previous_quarter", bj(2026, 2, 3), bj(2025, 10, 1), bj(2026, 1, 1), "2025年第四季度"),
        ("current_quarter", bj(2026, 8, 3), bj(2026, 7, 1), bj(2026, 10, 1), "2026年第三季度"),
        ("previous_year", bj(2026, 8, 3), bj(2025, 1, 1), bj(2026, 1, 1), "2025年"),
        # 20:00 UTC on 30 November is already 1 December in Beijing.
        ("current_month", datetime(2026, 11, 30, 20, 0, tzinfo=UTC), bj(2026, 12, 1), bj(2027, 1, 1), "2026年12月"),
    ],
)
def test_period_bounds(spec: str, now: datetime, start: datetime, end: datetime, label: str) -> None:
    period = period_bounds(spec, now, BJ)
    assert (period.start, period.end, period.label) == (start, end, label)


@pytest.mark.parametrize("spec", ["2026-13", "last month", "2026-Q5", "26-11"])
def test_period_bounds_refuses_what_it_cannot_read_in_chinese(spec: str) -> None:
    with pytest.raises(ValueError, match="统计周期"):
        period_bounds(spec, bj(2026, 11, 1), BJ)


async def test_a_report_reminder_gets_its_period_and_every_unit(november: Runtime) -> None:
    bulletin = november.schedules.reminders["bulletin"]
    figures = await figures_for(november, bulletin, None, bj(2026, 12, 2, 16, 0))

    assert figures is not None and figures["period"] == "2026年11月"
    assert [(r["unit"], r["rate"]) for r in figures["rows"]] == [
        ("发改委第一党支部", 1.0), ("发改委第二党支部", 0.5), ("教育局第一党支部", 0.0)]


async def test_a_leader_s_one_post_two_duties_brief_covers_only_the_units_they_oversee(november: Runtime) -> None:
    duties = november.schedules.reminders["duties"]
    zhao = november.schedules.people["zhao"]

    figures = await figures_for(november, duties, zhao, bj(2027, 1, 8, 10, 0))

    assert figures is not None and figures["period"] == "2026年第四季度"
    assert [r["unit"] for r in figures["rows"]] == ["发改委第一党支部", "发改委第二党支部"]
    assert figures["rows"][0]["expected"] == 3  # October and November
    assert await figures_for(november, duties, november.schedules.people["wang"], bj(2027, 1, 8)) is None


async def test_the_brief_reaches_each_leader_through_the_firing_pipeline(november: Runtime) -> None:
    now = bj(2027, 1, 8, 10, 0)
    due = Due("duties", now, None, False, False, None)

    # The figures are those of the period before the occurrence's due time, whatever the clock says.
    await fire(november, Fire("duties", "due", now, due, None))

    rows = {r.body["mentions"][0]["person_id"]: r.body["markdown"] for r in await outbox(november, "due")
            if r.occurrence_id and r.body["mentions"] and r.summary.startswith("“一岗双责”")}
    assert "发改委第二党支部：应确认 3 项，按时 1 项，逾期确认 1 项" in rows["zhao"]
    assert "教育局" not in rows["zhao"]
    assert "教育局第一党支部：应确认 3 项，按时 0 项，逾期确认 0 项，未确认 3 项" in rows["sun"]


def _rows() -> list[UnitRow]:
    return [UnitRow("fgw_b1", "发改委第一党支部", 2, 2, 0, 0, 0), UnitRow("x", "Unit X", 3, 1, 1, 1, 4)]


def test_the_table_lines_up_columns_with_chinese_names() -> None:
    lines = format_rows(_rows(), "table").splitlines()
    header, body = lines[0], lines[2:]

    def column_start(line: str, cell: str) -> int:
        return wcswidth(line[: line.index(cell)])

    assert column_start(body[0], "  2  ") == column_start(body[1], "  3  ") == column_start(header, "  应确认")
    assert body[0].rstrip().endswith("0") and "100.0%" in body[0] and "33.3%" in body[1]


def test_text_tables_measure_plain_chinese_as_wcwidth_does() -> None:
    """Cells of ASCII and CJK ideographs are measured without wcwidth (by their UTF-8 length); every
    ideograph of that range, alone and among ASCII, must count as wcwidth counts it, and a column
    with any other character (fullwidth punctuation, an emoji, an accent) lines up the same way."""
    for code in range(0x4E00, 0x9FF0):
        cell = f"a{chr(code)}1 "
        assert width(cell) == wcswidth(cell), hex(code)
    cells = ["人员201", "（出差）", "✅ 已确认", "Zoë", "", "支部19997"]
    lines = table(["姓名", "备注"], [[c, "x"] for c in cells]).splitlines()
    assert len({wcswidth(line[: line.index("x")]) for line in lines[2:]}) == 1
    assert [width(c) for c in cells] == [max(wcswidth(c), 0) for c in cells]
    plain = table(["姓名", "备注"], [[c, "x"] for c in ("人员201", "", "Li Lei", "支部19997")]).splitlines()
    assert len({wcswidth(line[: line.index("x")]) for line in plain[2:]}) == 1
    assert plain[1] == "-" * max(wcswidth(c) for c in ("姓名", "人员201", "支部19997")) + "  ----"


def test_a_report_table_with_dashes_lines_up_without_wcwidth() -> None:
    """A report's "—" (no place, no rate yet) is measured as wcwidth measures it (one column), in a
    table that lines up, without importing wcwidth: a province's report was the one table with
    such cells, and importing wcwidth's tables cost it ~20 ms at every run."""
    for cell in ("—", "支部—1", "—%", "a—b"):
        assert width(cell) == wcswidth(cell), cell
    code = ("import sys\n"
            "from bot.reporting.reports import HEADERS, UnitRow, format_rows, rank\n"
            "rows = rank([UnitRow('u1', '支部1', 2, 1, 0, 1), UnitRow('u2', '第二支部', 1, 0, 0, 1, pending=1),"
            " UnitRow('u10', '局10', 3, 3)])\n"
            "print(format_rows(rows, 'table'))\n"
            "print('wcwidth' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120, check=True)
    *lines, imported = done.stdout.splitlines()
    assert imported == "False"
    assert "—" in lines[-1] and lines[-1].split()[:2] == ["—", "第二支部"]
    for n in (2, 8):  # the 3rd and the 9th column (应确认, 按时完成率) start at one terminal column on each line
        starts = {wcswidth(re.match(rf"(\S+\s+){{{n}}}", line)[0]) for i, line in enumerate(lines) if i != 1}
        assert len(starts) == 1, (n, starts, lines)


def test_csv_and_markdown_carry_the_same_ranked_rows() -> None:
    parsed = list(csv.reader(io.StringIO(format_rows(_rows(), "csv"))))
    assert parsed[0][:3] == ["排名", "单位", "应确认"]
    assert parsed[1] == ["1", "发改委第一党支部", "2", "2", "0", "0", "0", "0", "100.0%", "0"]
    markdown = format_rows(_rows(), "markdown", title="统计").splitlines()
    assert markdown[0] == "### 统计"
    assert markdown[-1] == "| 2 | Unit X | 3 | 1 | 1 | 1 | 0 | 4 | 33.3% | 0 |"
    with pytest.raises(ValueError, match="未知的输出格式"):
        format_rows(_rows(), "xlsx")


def test_confirmations_not_yet_due_do_not_count_against_a_unit() -> None:
    from bot.reporting.reports import UnitRow, percent

    row = UnitRow("u", "第一党支部", expected=4, on_time=2, late=0, missing=2, pending=2)
    assert row.rate == 1.0 and percent(row) == "100.0%"
    assert percent(UnitRow("u", "第二党支部", expected=3, missing=3, pending=3)) == "—"


async def test_nudges_count_follow_up_rounds_that_reached_the_person_not_messages(tmp_path: Path) -> None:
    """Wang and Liu get a group message and a personal-link message per round: one round each."""
    runtime = await make_runtime(with_webhook(write_world(tmp_path)), Clock(bj(2026, 11, 3, 9, 0)))
    try:
        await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0))
        assert len(await outbox(runtime, "followup")) == 3  # group + two personal links
        rows = await unit_figures(runtime, *NOVEMBER, now=bj(2026, 11, 4, 10, 0))
        assert {r.unit: r.nudges for r in rows} == {"发改委第一党支部": 1, "发改委第二党支部": 1, "教育局第一党支部": 1}
    finally:
        await runtime.db.stop()


async def test_follow_ups_only_recorded_for_channels_without_a_webhook_count_no_nudge(tmp_path: Path) -> None:
    runtime = await make_runtime(write_world(tmp_path), Clock(bj(2026, 11, 3, 9, 0)))
    try:
        await fire_due(runtime, "study", bj(2026, 11, 3, 9, 0))
        await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0))
        assert {r.status for r in await outbox(runtime, "followup")} == {"dry_run"}
        rows = await unit_figures(runtime, *NOVEMBER, now=bj(2026, 11, 4, 10, 0))
        assert [r.nudges for r in rows] == [0, 0, 0]
    finally:
        await runtime.db.stop()
