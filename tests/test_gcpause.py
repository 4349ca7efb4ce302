"""The collector during ``serve``'s start (bot/config/gcpause.py, bot/cli/serve.py): paused until the
service is ready, then enabled again (what the start made frozen), and enabled again when the start
fails."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

import bot.service
from bot.cli import serve as serve_command
from bot.config import gcpause
from bot.settings import Settings


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    gc.unfreeze()
    gcpause.release()
    if was:
        gc.enable()


def test_release_enables_only_what_pause_disabled() -> None:
    gc.enable()
    gcpause.pause()
    assert not gc.isenabled()
    gcpause.pause()  # nested: still one release
    gcpause.release()
    assert gc.isenabled()
    gc.disable()  # disabled by someone else: release leaves it so
    gcpause.release()
    assert not gc.isenabled()


def test_the_collector_comes_back_once_the_service_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_serve(settings: Settings, *, ready: asyncio.Event, **_: Any) -> None:
        seen["while starting"] = gc.isenabled()
        ready.set()
        await asyncio.sleep(0.01)
        seen["once ready"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(bot.service, "serve", fake_serve)
    gc.enable()
    gcpause.pause()
    asyncio.run(serve_command._run(Settings(), None, None, None))  # type: ignore[arg-type]
    assert seen == {"while starting": False, "once ready": True, "frozen": seen["frozen"]} and seen["frozen"] > 0


def test_the_collector_comes_back_when_the_start_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(settings: Settings, **_: Any) -> None:
        raise bot.service.CannotStart("端口已被占用")

    monkeypatch.setattr(bot.service, "serve", failing)
    monkeypatch.setattr("bot.cli.schedule.start_or_exit", lambda settings: (bot.service.Schedules(), [], None))
    gc.enable()
    with pytest.raises(SystemExit):
        serve_command._serve(Settings(), None, None)
    assert gc.isenabled()
