"""What an operator watches: /metrics (Prometheus text), JSON log lines, and /healthz's loop checks."""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config.loader import check_schedules, load_schedules
from bot.confirming.confirmations import record_confirmation
from bot.delivery import outbox
from bot.delivery.render import Renderer
from bot.logs import JsonFormatter
from bot.metrics import REGISTRY
from bot.platforms.base import Message
from bot.platforms.wecom.robot import WeCom
from bot.runtime import Runtime
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.web import make_app
from storage.db import Database
from storage.models import Expectation, Occurrence
from tests.test_dispatch import FakeWeCom, dispatcher, enqueue, fake, http, settings  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def runtime_for(db: Database, tmp_path: Path, **overrides: object) -> Runtime:
    config = Settings(database_url=db.url, var_dir=tmp_path, secret_key="k", **overrides)  # type: ignore[arg-type]
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates", env={})
    return Runtime(settings=config, db=db, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                   renderer=Renderer(ROOT / "message_templates"))


async def get(runtime: Runtime, path: str) -> tuple[int, str, str]:
    async with TestClient(TestServer(make_app(runtime))) as client:
        response = await client.get(path)
        return response.status, response.headers.get("Content-Type", ""), await response.text()


# ---------------------------------------------------------------- metrics


async def test_messages_are_counted_by_platform_and_outcome_and_retries_counted(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,  # noqa: F811
) -> None:
    good, gone = fake.channel("good"), fake.channel("gone")
    fake.keys.discard("KEY-gone-S3CRET")  # the robot was removed: dead at once
    fake.script["KEY-good-S3CRET"].append((502, {}, {}))  # one retry, then fine
    before = {o: sample("remindbot_messages_total", platform="wecom", outcome=o) for o in ("sent", "dead")}
    retries = sample("remindbot_retries_total", platform="wecom")
    await enqueue(db, good, "一", "二")
    await enqueue(db, gone, "三")
    await dispatcher(db, settings, http, good, gone).run_once()
    assert sample("remindbot_messages_total", platform="wecom", outcome="sent") - before["sent"] == 2
    assert sample("remindbot_messages_total", platform="wecom", outcome="dead") - before["dead"] == 1
    assert sample("remindbot_retries_total", platform="wecom") - retries == 1


async def test_a_real_message_to_a_channel_without_a_webhook_is_counted_record_only_not_dry_run(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,  # noqa: F811
) -> None:
    """Found by a trial: /metrics called record-only real messages dry runs (rehearsals)."""
    quiet = fake.channel("quiet").model_copy(update={"webhook": None})
    before = {o: sample("remindbot_messages_total", platform="wecom", outcome=o) for o in ("record_only", "dry_run")}
    await enqueue(db, quiet, "一", "二")
    await dispatcher(db, settings, http, quiet).run_once()
    assert sample("remindbot_messages_total", platform="wecom", outcome="record_only") - before["record_only"] == 2
    assert sample("remindbot_messages_total", platform="wecom", outcome="dry_run") == before["dry_run"]


async def test_a_fire_into_channels_without_a_webhook_counts_its_messages_record_only(
        db: Database, tmp_path: Path) -> None:
    """Found by a second trial: messages recorded when queued (the usual record-only path) were not counted."""
    from dataclasses import replace

    from bot.scheduling.occurrences import fire
    from bot.scheduling.timing import Due, Fire

    runtime = runtime_for(db, tmp_path)
    due_at = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)

    def totals() -> dict[str, float]:
        return {o: sum(sample("remindbot_messages_total", platform=p, outcome=o)
                       for p in ("wecom", "dingtalk", "feishu", "generic")) for o in ("record_only", "dry_run")}

    before = totals()
    stage = Fire("study-day", "due", due_at, Due("study-day", due_at, None, False, False, None), None)
    real = await fire(runtime, stage)
    middle = totals()
    assert real.queued > 0 and middle["record_only"] - before["record_only"] == real.queued
    assert middle["dry_run"] == before["dry_run"]
    rehearsal = replace(runtime, settings=runtime.settings.model_copy(update={"dry_run": True}))
    rehearsed = await fire(rehearsal, stage)
    after = totals()
    assert after["dry_run"] - middle["dry_run"] == rehearsed.queued and after["record_only"] == middle["record_only"]


async def test_metrics_show_queue_depth_and_oldest_ready_age_per_platform(any_db: Database, tmp_path: Path) -> None:
    db = any_db
    channel = FakeWeCom(url="http://127.0.0.1:9/cgi-bin/webhook/send").channel("a")
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with db.session() as session:
        for n in range(3):
            bodies = WeCom().build(channel, Message(title="提醒", markdown=f"第{n}条"))
            await outbox.enqueue(session, dedupe_key=f"q/{n}", channel=channel, platform="wecom", bodies=bodies,
                                 stage="due", summary="提醒", now=long_ago)
        await session.commit()
    status, content_type, text = await get(runtime_for(db, tmp_path), "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert 'remindbot_queue_depth{platform="wecom"} 3.0' in text
    age = next(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('remindbot_oldest_ready_age_seconds{platform="wecom"}'))
    assert 300 <= age < 600
    assert "remindbot_messages_total" in text and "remindbot_confirmations_total" in text


async def test_metrics_can_be_turned_off(db: Database, tmp_path: Path) -> None:
    status, _, _ = await get(runtime_for(db, tmp_path, metrics_enabled=False), "/metrics")
    assert status == 404


async def test_confirmations_are_counted_by_way(db: Database) -> None:
    due = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    async with db.session() as session:
        occ = Occurrence(reminder_id="study-day", due_at=due, title="每月学习日")
        session.add(occ)
        await session.commit()
        assert occ.id is not None
        session.add(Expectation(occurrence_id=occ.id, person_id="wang_fang", person_name="王芳"))
        await session.commit()
    before = sample("remindbot_confirmations_total", via="admin")
    await record_confirmation(db, occ.id, "wang_fang", via="admin", recorded_by="管理员", now=due)
    await record_confirmation(db, occ.id, "wang_fang", via="admin", recorded_by="管理员", now=due)  # a repeat
    assert sample("remindbot_confirmations_total", via="admin") - before == 1


# ---------------------------------------------------------------- JSON log lines


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """What the service would print with REMINDBOT_LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def test_a_dead_message_is_one_json_log_line_with_stable_fields(
    db: Database, fake: FakeWeCom, http: aiohttp.ClientSession, settings: Settings,  # noqa: F811
    json_logs: io.StringIO,
) -> None:
    gone = fake.channel("gone")
    fake.keys.discard("KEY-gone-S3CRET")
    await enqueue(db, gone, "一")
    await dispatcher(db, settings, http, gone).run_once()
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    (dead,) = [line for line in lines if line.get("event") == "message_dead"]
    assert dead["level"] == "WARNING" and "消息投递失败" in dead["message"]
    assert isinstance(dead["outbox_id"], int)
    assert (dead["platform"], dead["channel_id"], dead["stage"], dead["error_kind"], dead["attempts"]) == (
        "wecom", "gone", "due", "config", 1)
    assert "S3CRET" not in json.dumps(lines, ensure_ascii=False)


# ---------------------------------------------------------------- /healthz: the loops


async def test_healthz_answers_503_when_the_dispatcher_loop_is_stale(db: Database, tmp_path: Path) -> None:
    runtime = runtime_for(db, tmp_path, health_stale_seconds=60)
    now = runtime.clock()
    runtime.ticks.update(scheduler=now, dispatcher=now - timedelta(seconds=59))
    status, _, body = await get(runtime, "/healthz")
    assert status == 200, body
    runtime.ticks["dispatcher"] = now - timedelta(seconds=90)
    status, _, body = await get(runtime, "/healthz")
    checks = json.loads(body)["checks"]
    assert status == 503 and checks["scheduler"]["ok"] and not checks["dispatcher"]["ok"]
    assert "没有运行" in checks["dispatcher"]["message"]


async def test_a_refused_reload_is_reported_but_sending_still_works(db: Database, tmp_path: Path) -> None:
    runtime = runtime_for(db, tmp_path)
    runtime.ticks.update(scheduler=runtime.clock(), dispatcher=runtime.clock())
    runtime.reload.ok, runtime.reload.errors = False, ["schedules/study.yaml:3:5: 错误 …"]
    status, _, body = await get(runtime, "/healthz")
    assert status == 200
    assert json.loads(body)["checks"]["reload"] == {
        "ok": False, "since": None, "error_count": 1, "last_good_at": None}


async def test_healthz_counts_schedule_errors_without_quoting_them(db: Database, tmp_path: Path) -> None:
    """/healthz needs no login: a broken mobile's error names the number (and may name the person);
    it shows the count only, the text stays behind the admin login."""
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    org = folder / "organization.yaml"
    org.write_text(org.read_text(encoding="utf-8").replace('mobile: "13800000002"', "mobile: 13800000002"),
                   encoding="utf-8")
    _, issues = check_schedules(folder, templates_dir=ROOT / "message_templates", env={})
    errors = [str(i) for i in issues if not i.warning]
    assert len(errors) == 1 and "13800000002" in errors[0], errors  # what the admin pages show
    runtime = runtime_for(db, tmp_path)
    runtime.ticks.update(scheduler=runtime.clock(), dispatcher=runtime.clock())
    runtime.reload.ok, runtime.reload.errors = False, errors
    status, _, body = await get(runtime, "/healthz")
    data = json.loads(body)
    assert status == 200 and data["schedules"].startswith("error since") and data["schedule_errors"] == 1
    assert data["checks"]["reload"]["error_count"] == 1
    assert "13800000002" not in body and "0000002" not in body and "赵明" not in body
    assert "organization.yaml" not in body and "mobile" not in body
