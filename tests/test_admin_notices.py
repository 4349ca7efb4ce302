"""The admin channel's notices of refused (and then fixed) schedules, on SQLite and PostgreSQL:

* instances starting at the same moment on one database tell each once, not once each (the database's
  unique key decides);
* a rehearsal's notice queued by an earlier version (no ``dry/`` key) does not hold back the real one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, select, update

from bot.config.issues import ConfigIssue, problem_key
from bot.config.loader import check_schedules, load_schedules
from bot.delivery.render import Renderer
from bot.runtime import Runtime
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.watch import admin_notifier, tell_fixed_while_down
from storage.db import Database
from storage.models import Outbox

ROOT = Path(__file__).resolve().parent.parent
HOOK = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=admin"
ERRORS = ["schedules/study.yaml:3:5: 错误 未知字段 templte"]
WRONG = problem_key([ConfigIssue("schedules/study.yaml", 3, 5, "reminders[0].templte", "未知字段 templte")])


@asynccontextmanager
async def instances(db: Database, tmp_path: Path, count: int) -> AsyncIterator[list[Runtime]]:
    """``count`` services' runtimes, each with its own connection pool on ``db``'s database."""
    schedules = load_schedules(ROOT / "schedules", templates_dir=ROOT / "message_templates",
                               env={"REMINDBOT_ADMIN_WECOM_WEBHOOK": HOOK})
    own = [Database(db.url, schema=db.schema) for _ in range(count)]
    for database in own:
        await database.start()
    try:
        yield [Runtime(settings=Settings(database_url=db.url, var_dir=tmp_path / "var", secret_key="k"),
                       db=database, schedules=schedules, calendar=WorkCalendar(schedules.calendar),
                       renderer=Renderer(ROOT / "message_templates"), clock=lambda: datetime.now(UTC))
               for database in own]
    finally:
        for database in own:
            await database.stop()


async def notices(db: Database) -> list[str]:
    async with db.session() as session:
        rows = (await session.exec(select(Outbox.dedupe_key).where(col(Outbox.stage) == "admin")
                                   .order_by(col(Outbox.id)))).all()
    return list(rows)


async def test_instances_starting_together_tell_the_admin_channel_once_per_distinct_problem(
        any_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with instances(any_db, tmp_path, 3) as started:
        with caplog.at_level(logging.INFO, logger="bot.watch"):
            await asyncio.gather(*(admin_notifier(rt)(ERRORS, WRONG) for rt in started))
        told = await notices(any_db)
        assert len(told) == 1 and told[0].startswith("admin:schedules:"), told
        assert sum(r.getMessage().startswith("已通知管理员频道") for r in caplog.records) == 1
        assert sum("另一实例已通知管理员频道" in r.getMessage() for r in caplog.records) == 2

        # Fixed while they were down: 已恢复生效 once too; then the same errors again are told again, once.
        await asyncio.gather(*(tell_fixed_while_down(rt) for rt in started))
        await asyncio.gather(*(admin_notifier(rt)(ERRORS, WRONG) for rt in started))
        told = await notices(any_db)
        assert [k.split(":")[1] for k in told] == ["schedules", "schedules-recovered", "schedules"], told


async def test_a_rehearsal_notice_queued_by_an_earlier_version_does_not_hold_back_the_real_one(
        any_db: Database, tmp_path: Path) -> None:
    """Before rehearsals' notices were keyed ``dry/``, a dry run queued its notice as a plain pending row
    (no dispatcher ran to send it). The next real start with the same errors must still tell the admin."""
    import hashlib

    from bot.delivery import outbox
    from bot.platforms.base import Message
    from bot.platforms.registry import platform_for

    digest = hashlib.sha256("\n".join(ERRORS).encode()).hexdigest()[:16]
    async with instances(any_db, tmp_path, 1) as (runtime,):
        admin = runtime.schedules.channels["admin_wecom"]
        async with runtime.db.session() as session:  # as that version queued it in a rehearsal
            await outbox.enqueue(session, dedupe_key=f"admin:schedules:{digest}:2026-11-30T17:00:00+00:00",
                                 channel=admin, platform="wecom", stage="admin", summary="日程配置未生效通知",
                                 bodies=platform_for(admin).build(admin, Message(title="t", markdown="m")))
            await session.commit()

        await admin_notifier(runtime)(ERRORS, WRONG)

        told = await notices(any_db)
        assert len(told) == 2 and ":after-" in told[1], told


async def test_errors_reworded_by_an_upgrade_are_not_told_again_and_another_problem_is(
        any_db: Database, tmp_path: Path) -> None:
    """The notice was keyed by the errors' words: a release that reworded them told the admin channel
    once more about the very errors it already had (as after the last session's rewording)."""
    folder = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", folder)
    study = folder / "study.yaml"
    study.write_text(study.read_text(encoding="utf-8").replace("    title: 每月学习日", "    titel: 每月学习日"),
                     encoding="utf-8")
    _, issues = check_schedules(folder, env={})
    errors = [i for i in issues if not i.warning]
    reworded = [replace(i, message=f"（新版措辞）{i.message}") for i in errors]  # what the next release says
    async with instances(any_db, tmp_path, 1) as (runtime,):
        tell = admin_notifier(runtime)
        await tell([str(i) for i in errors], problem_key(errors))
        await tell([str(i) for i in reworded], problem_key(reworded))  # the upgraded service's start
        assert len(await notices(any_db)) == 1

        study.write_text(study.read_text(encoding="utf-8").replace("    titel: 每月学习日", "    title: 每月学习日")
                         .replace("    template: study_day", "    templte: study_day"), encoding="utf-8")
        _, issues = check_schedules(folder, env={})
        other = [i for i in issues if not i.warning]
        await tell([str(i) for i in other], problem_key(other))
        assert len(await notices(any_db)) == 2


async def test_errors_an_earlier_version_told_in_the_same_words_are_not_told_again(
        any_db: Database, tmp_path: Path) -> None:
    """That version keyed the notice by the words' digest; an upgrade that keeps the words tells no one."""
    import hashlib

    digest = hashlib.sha256("\n".join(ERRORS).encode()).hexdigest()[:16]
    async with instances(any_db, tmp_path, 1) as (runtime,):
        await told_before(runtime, digest)

        await admin_notifier(runtime)(ERRORS, WRONG)

        assert len(await notices(any_db)) == 1


async def told_before(runtime: Runtime, key: str) -> None:
    """The 日程配置未生效 notice of ``key`` as an earlier version enqueued it, and sent."""
    from bot.delivery import outbox
    from bot.platforms.base import Message
    from bot.platforms.registry import platform_for

    admin = runtime.schedules.channels["admin_wecom"]
    async with runtime.db.session() as session:
        await outbox.enqueue(session, dedupe_key=f"admin:schedules:{key}:after-0",
                             channel=admin, platform="wecom", stage="admin", summary="日程配置未生效通知",
                             bodies=platform_for(admin).build(admin, Message(title="t", markdown="m")))
        await session.exec(update(Outbox).values(status="sent", attempts=1))  # type: ignore[call-overload]
        await session.commit()
