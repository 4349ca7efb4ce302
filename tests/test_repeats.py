"""A loop that fails every turn logs once, then a reminder a minute at most, then its recovery."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from bot.delivery.dispatch import Dispatcher
from bot.repeats import RepeatedFailure, whole
from bot.settings import Settings
from storage.db import Database


class Ticks:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_every_second_is_one_line_then_one_a_minute_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Ticks()
    failing = RepeatedFailure(logging.getLogger("t"), "领取机器人通道失败，稍后重试", clock=clock)
    with caplog.at_level(logging.INFO, logger="t"):
        for second in range(150):  # two and a half minutes of a failure every second
            clock.now = float(second)
            failing.failed(RuntimeError("x"))
        failing.ok()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("领取机器人通道失败，稍后重试：RuntimeError")
    assert "又失败 60 次" in lines[1] and "连续 61 次" in lines[1]
    assert "又失败 60 次" in lines[2] and "连续 121 次" in lines[2]
    assert lines[3] == "领取机器人通道失败：已恢复（此前连续失败 150 次）"


async def test_a_dispatcher_with_its_table_dropped_does_not_flood_the_log(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE robot_lane"))
    settings = Settings(var_dir=tmp_path, claim_poll_seconds=0.02)
    caplog.set_level(logging.WARNING, logger="bot.delivery.dispatch")
    async with aiohttp.ClientSession() as http:
        worker = Dispatcher(db, settings, {}.get, http)
        await worker.start()
        await asyncio.sleep(1.5)  # dozens of failed turns
        await worker.stop(timeout=0.5)
    claims = [r for r in caplog.records if "领取机器人通道失败" in r.getMessage()]
    assert len(claims) == 1, [r.getMessage() for r in claims]
    assert "OperationalError" in claims[0].getMessage()


async def test_whole_lets_a_turn_finish_when_its_loop_is_cancelled() -> None:
    finished: list[str] = []

    async def turn() -> None:
        await asyncio.sleep(0.2)
        finished.append("committed")

    loop_task = asyncio.create_task(whole(turn(), "测试"))
    await asyncio.sleep(0.05)
    loop_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop_task
    assert finished == ["committed"]  # the stop waited for the turn, then the loop ended


async def test_whole_cuts_off_a_turn_that_outlasts_the_grace_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def stuck() -> None:
        await asyncio.sleep(3600)

    loop_task = asyncio.create_task(whole(stuck(), "催办检查", grace=0.1))
    await asyncio.sleep(0.05)
    began = time.monotonic()
    loop_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop_task
    assert time.monotonic() - began < 2
    assert "停止时催办检查 0.1 秒内未结束，已中断" in caplog.text
