"""Firing and follow-ups for many people at once: set-based writes that keep every guarantee.

A generated organ of ``PEOPLE`` secretaries (more than one insert batch and one claim batch), a
group chat and a channel with personal links; on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy import event, func
from sqlmodel import col, select

from bot.confirming.followup import CLAIM_BATCH, FollowUps
from bot.delivery.outbox import INSERT_BATCH
from bot.runtime import Runtime
from bot.scheduling.occurrences import fire
from bot.scheduling.timing import Due, Fire
from bot.settings import Settings
from storage.db import Database
from storage.models import Expectation, Nudge, Occurrence, Outbox
from tests.test_followup import SECRET, Clock, bj, make_runtime

PEOPLE = max(INSERT_BATCH, CLAIM_BATCH) + 150


GENERIC_GROUP = 'platform: generic, webhook: "https://oa.example.gov.cn/hook/g"'


def world_yaml(people: int, group: str = GENERIC_GROUP) -> str:
    """``people`` secretaries of one unit, a group channel (``group``: its platform and webhook) and
    an OA channel with personal links, and the monthly study day owed by every secretary."""
    lines = ["units:", "  - {id: gw, name: 市直机关工委}", "people:"]
    lines += [f"  - {{id: s{i}, name: 书记{i}, roles: [secretary], unit: gw, mobile: \"139{i:08d}\"}}"
              for i in range(people)]
    lines += [
        "channels:",
        f"  - {{id: group, name: 党务工作群, {group}}}",
        "  - {id: oa, name: 协同办公待办, platform: generic, personal_links: true,\n"
        "     webhook: \"https://oa.example.gov.cn/hook/oa\"}",
        "reminders:",
        "  - id: study",
        "    title: 每月学习日",
        "    when: {monthly: {weekday: tue, nth: 1}, at: \"09:00\"}",
        "    recipients: {channels: [group, oa], mention: {roles: [secretary]}}",
        "    confirm: {deadline: 3d, remind_every: 1d}",
    ]
    return "\n".join(lines) + "\n"


def settings_for(folder: Path, url: str) -> Settings:
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    (folder / "schedules" / "world.yaml").write_text(world_yaml(PEOPLE), encoding="utf-8")
    return Settings(database_url=url, schedules_dir=folder / "schedules", var_dir=folder / "var",
                    secret_key=SECRET, base_url="https://dj.example.gov.cn")


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def fire_study(runtime: Runtime, *, late: bool = False) -> int:
    due_at = bj(2026, 11, 3, 9, 0)
    due = Due("study", due_at, None, False, False, None)
    return (await fire(runtime, Fire("study", "due", due_at, due, None), late=late)).queued


async def count(db: Database, model: type, *where: object) -> int:
    async with db.session() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()  # type: ignore


async def test_firing_many_people_writes_each_row_once_in_set_based_statements(
        any_db: Database, tmp_path: Path) -> None:
    runtime = await make_runtime(settings_for(tmp_path, any_db.url), Clock(bj(2026, 11, 3, 9, 0)), any_db)
    with statements(any_db) as sent:
        queued = await fire_study(runtime)
    inserts = [s for s in sent if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) < 12  # batches, not one statement per person (there are ~2,300 rows)
    assert queued >= PEOPLE + 1  # one personal message each in oa, the group message in group
    assert await count(any_db, Expectation) == PEOPLE
    assert await count(any_db, Outbox, col(Outbox.channel_id) == "oa") == PEOPLE
    links = await count(any_db, Outbox, col(Outbox.channel_id) == "oa", col(Outbox.status) == "pending")
    assert links == PEOPLE

    rendered: list[object] = []
    render = runtime.renderer.render
    runtime.renderer.render = lambda *a, **k: rendered.append(a) or render(*a, **k)  # type: ignore[method-assign]
    assert await fire_study(runtime) == 0  # firing twice sends once
    assert rendered == []  # and costs a query of what is queued, not a rendering of every message again
    assert await count(any_db, Expectation) == PEOPLE
    assert await count(any_db, Outbox) == queued


async def test_a_bulk_rehearsal_stays_a_rehearsal_and_a_late_fire_says_补发(any_db: Database, tmp_path: Path) -> None:
    runtime = await make_runtime(settings_for(tmp_path, any_db.url), Clock(bj(2026, 11, 3, 9, 0)), any_db)
    rehearsal = replace(runtime, settings=runtime.settings.model_copy(update={"dry_run": True}))
    rehearsed = await fire_study(rehearsal)
    assert rehearsed >= PEOPLE + 1
    assert await count(any_db, Outbox, col(Outbox.status) != "dry_run") == 0
    assert await count(any_db, Expectation, col(Expectation.next_followup_at).is_not(None)) == 0
    assert await count(any_db, Occurrence, col(Occurrence.dry_run).is_(True)) == 1

    real = await fire_study(runtime, late=True)  # the real fire is its own occurrence, unaffected
    assert real == rehearsed
    async with any_db.session() as session:
        rows = (await session.exec(select(Outbox).where(col(Outbox.status) == "pending"))).all()
    assert len(rows) == real and all("补发" in r.body["markdown"] for r in rows)
    assert await count(any_db, Expectation, col(Expectation.next_followup_at).is_not(None)) == PEOPLE


async def test_two_instances_claim_a_big_follow_up_round_once_in_set_based_updates(
        any_db: Database, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, any_db.url)
    clock = Clock(bj(2026, 11, 3, 9, 0))
    a = await make_runtime(settings, clock, any_db)
    other = Database(any_db.url, schema=any_db.schema) if any_db.schema else Database(any_db.url)
    await other.start()
    b = await make_runtime(settings, clock, other)
    try:
        await fire_study(a)
        with statements(any_db) as sent_a, statements(other) as sent_b:
            sent = await asyncio.gather(FollowUps(a).run_once(bj(2026, 11, 4, 9, 0)),
                                        FollowUps(b).run_once(bj(2026, 11, 4, 9, 0)))
        assert sorted(sent)[0] == 0 and sorted(sent)[1] >= PEOPLE + 1  # one instance sent the round
        updates = [s for s in sent_a + sent_b if s.lstrip().upper().startswith("UPDATE")]
        assert len(updates) <= 2 * (PEOPLE // CLAIM_BATCH + 1)
        assert await count(any_db, Nudge) == PEOPLE  # each person nudged once
        assert await count(any_db, Outbox, col(Outbox.stage) == "followup:1", col(Outbox.channel_id) == "oa") == PEOPLE
        assert await count(any_db, Expectation, col(Expectation.followups) == 1) == PEOPLE
        assert await FollowUps(b).run_once(bj(2026, 11, 4, 10, 0)) == 0  # nothing more is due today
    finally:
        await other.stop()


async def test_firing_again_after_someone_joined_queues_only_their_message(any_db: Database, tmp_path: Path) -> None:
    """A second fire skips what is queued (without rendering it) but still writes what is missing."""
    runtime = await make_runtime(settings_for(tmp_path, any_db.url), Clock(bj(2026, 11, 3, 9, 0)), any_db)
    first = await fire_study(runtime)
    world = tmp_path / "schedules" / "world.yaml"
    joined = '  - {id: newcomer, name: 新书记, roles: [secretary], unit: gw, mobile: "13700000000"}\n'
    world.write_text(world.read_text(encoding="utf-8").replace("channels:", joined + "channels:", 1), encoding="utf-8")
    later = await make_runtime(settings_for_existing(tmp_path, any_db.url), Clock(bj(2026, 11, 3, 9, 5)), any_db)
    assert await fire_study(later) == 1  # the newcomer's own message in oa; the group message was queued
    assert await count(any_db, Outbox, col(Outbox.dedupe_key).contains("/oa/newcomer#")) == 1
    assert await count(any_db, Outbox) == first + 1


def settings_for_existing(folder: Path, url: str) -> Settings:
    return Settings(database_url=url, schedules_dir=folder / "schedules", var_dir=folder / "var",
                    secret_key=SECRET, base_url="https://dj.example.gov.cn")


async def test_a_big_follow_up_round_gives_each_person_their_own_name_and_link(
        any_db: Database, tmp_path: Path) -> None:
    """The follow-up template is rendered once for all the personal messages of a round; each person's
    message still names them, and its link confirms for them and no one else."""
    from bot.confirming.tokens import read_token

    runtime = await make_runtime(settings_for(tmp_path, any_db.url), Clock(bj(2026, 11, 3, 9, 0)), any_db)
    await fire_study(runtime)
    assert await FollowUps(runtime).run_once(bj(2026, 11, 4, 9, 0)) >= PEOPLE + 1
    async with any_db.session() as session:
        rows = (await session.exec(select(Outbox).where(col(Outbox.stage) == "followup:1",
                                                        col(Outbox.channel_id) == "oa"))).all()
    assert len(rows) == PEOPLE
    links = set()
    for row in rows:
        person = row.dedupe_key.split("/")[-1].split("#")[0]
        markdown = row.body["markdown"]
        assert f"- 书记{person[1:]}（市直机关工委）\n" in markdown and markdown.count("- 书记") == 1
        link = markdown.split("[点此确认](")[1].split(")")[0]
        assert link == row.body["button"]["url"]
        assert read_token(runtime.link_key, link.rsplit("/", 1)[1], 86400 * 30, now=bj(2026, 11, 4, 9, 0))[1] == person
        links.add(link)
    assert len(links) == PEOPLE
