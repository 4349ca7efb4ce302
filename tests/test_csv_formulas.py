"""CSV that a spreadsheet opens never runs a formula: ``report --format csv`` and the admin downloads alike."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_followup import BJ, WORLD_YAML, Clock, fire_due, make_runtime, write_world

from bot.cli.confirmations import report
from bot.reporting.csvfile import cell, csv_text

EVIL = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize("text", [EVIL, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "\n=1", "  =1", "\u3000=1"])
def test_a_cell_a_spreadsheet_would_run_is_written_as_text(text: str) -> None:
    assert cell(text) == "'" + text


@pytest.mark.parametrize("text", ["发改委第一党支部", "100.0%", "—", "3", "a=b", ""])
def test_ordinary_cells_are_left_alone(text: str) -> None:
    assert cell(text) == text


def test_csv_text_defuses_every_cell_header_included() -> None:
    rows = list(csv.reader(io.StringIO(csv_text(["=H"], [["=x", "ok"]]))))
    assert rows == [["'=H"], ["'=x", "ok"]]


def test_report_csv_defuses_a_unit_named_like_a_formula(tmp_path: Path) -> None:
    settings = write_world(tmp_path)
    world = tmp_path / "schedules" / "world.yaml"
    world.write_text(WORLD_YAML.replace("name: 发改委第一党支部", "name: \"=cmd|' /C calc'!A0\""), encoding="utf-8")
    now = datetime.now(UTC).replace(microsecond=0)
    due = now - timedelta(days=2)

    async def populate() -> None:
        runtime = await make_runtime(settings, Clock(now))
        try:
            await fire_due(runtime, "study", due)
        finally:
            await runtime.db.stop()

    asyncio.run(populate())
    env = {"REMINDBOT_DATABASE_URL": settings.database_url, "REMINDBOT_SCHEDULES_DIR": str(settings.schedules_dir),
           "REMINDBOT_VAR_DIR": str(settings.var_dir), "REMINDBOT_SECRET_KEY": settings.signing_key}
    for extra in ([], ["-o", str(tmp_path / "r.csv")]):
        result = CliRunner().invoke(report, ["--period", f"{due.astimezone(BJ):%Y-%m}", "--format", "csv", *extra],
                                    env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig") if extra else result.output
        units = [row[1] for row in csv.reader(io.StringIO(text))]
        assert "'" + EVIL in units and EVIL not in units
