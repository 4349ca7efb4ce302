"""`remindbot preview` without the database unless a message needs its figures; the lean paths under it.

A preview writes nothing, so it neither imports SQLAlchemy nor opens (or creates) the database for a
plain reminder; a report or a leader's brief opens it when its figures are asked for. The snapshot's
rows give fields and selections without building models, and say the same as the models would.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from bot.config.models import Person, PlatformIds, Schedules, Unit
from bot.config.rows import Rows
from bot.delivery import outbox
from bot.runtime import open_runtime
from bot.settings import Settings
from storage.db import Database
from storage.models import Expectation, Occurrence

ROOT = Path(__file__).resolve().parent.parent
DB_MODULES = ("sqlalchemy", "sqlmodel", "storage.db", "storage.models", "aiosqlite", "bot.delivery.outbox")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDBOT_")}
    env.update({"PYTHONPATH": str(ROOT), "REMINDBOT_VAR_DIR": str(tmp_path / "var"),
                "REMINDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
                "REMINDBOT_SECRET_KEY": "preview-test-key"})
    return env


def _preview(env: dict[str, str], reminder: str) -> list[str]:
    """Run ``preview`` in a process of its own; the database modules it imported."""
    code = ("import json, sys\n"
            "from bot.cli import main\n"
            f"main(['preview', {reminder!r}], standalone_mode=False)\n"
            f"print(json.dumps(sorted(m for m in {DB_MODULES!r} if m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_preview_neither_imports_nor_creates_the_database(tmp_path: Path) -> None:
    env = _env(tmp_path)
    warm = subprocess.run([sys.executable, "-m", "bot", "validate"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert warm.returncode == 0, warm.stderr
    assert _preview(env, "study-day") == []
    assert not (tmp_path / "bot.db").exists()


def _made(env: dict[str, str]) -> None:
    """The database made as an admin makes it (a preview makes none: tests/test_missing_database.py)."""
    done = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_report_preview_opens_the_database_for_its_figures(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _made(env)
    assert "storage.db" in _preview(env, "monthly-bulletin")  # kind: report: figures from the database


async def test_a_runtime_opened_without_the_database_signs_nothing_until_it_is_opened(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", var_dir=tmp_path / "var",
                        secret_key="k")
    async with open_runtime(settings, database=False) as runtime:
        with pytest.raises(RuntimeError):
            _ = runtime.link_key  # a link signed without the database's nonce would never verify
        with pytest.raises(RuntimeError):
            runtime.db.session()
        await runtime.ensure_database()
        assert runtime.link_key.startswith("k:") and (tmp_path / "bot.db").exists()
        async with runtime.db.session() as session:
            assert (await session.exec(text("SELECT 1"))).all() == [(1,)]  # type: ignore[call-overload]


def _people() -> dict[str, Person]:
    return {f"p{i}": Person(id=f"p{i}", name=f"人员{i}", roles=["secretary" if i % 2 else "member"], unit=f"u{i % 3}",
                            ids=PlatformIds(wecom=f"user{i}"), channels=[f"c{i % 4}"])
            for i in range(12)}


def test_rows_give_fields_and_selections_as_the_models_do() -> None:
    people = _people()
    rows = pickle.loads(pickle.dumps(Rows(Person, *Rows.encode(Person, people.items())[1:])))
    keys = list(people)
    assert rows.field("p3", "name") == "人员3" and rows.field("nobody", "name", "-") == "-"
    assert rows.at([1, 3, 5], keys) == [people["p1"], people["p3"], people["p5"]]
    assert rows.at([3], keys)[0] is rows["p3"]  # built once, kept
    rows["p3"].name = "改名"
    assert rows.field("p3", "name") == "改名"  # a built (and changed) entry answers for itself
    # Equal strings are shared in the pickle, lists never: changing one person's roles changes only theirs.
    fresh = pickle.loads(pickle.dumps(Rows(Person, *Rows.encode(Person, people.items())[1:])))
    fresh["p1"].roles.append("leader")
    assert fresh["p3"].roles == ["secretary"] and fresh["p1"].roles == ["secretary", "leader"]


def test_rows_keep_every_kind_of_value_through_their_columns() -> None:
    """Each column form (one shared value, joined text, a table of distinct values, a plain list)
    gives back exactly the models written: None beside values, separators inside names, a nested
    model absent for some, and changes, additions and removals through a second pickling."""
    people = {f"p{i}": Person(id=f"p{i}", name=f"人员{i}",
                              roles=[] if i % 3 == 0 else ["secretary", "member"][: 1 + i % 2],
                              unit=None if i % 5 == 0 else f"u{i % 2}",
                              title=None if i % 7 == 0 else f"书\x1f记\x1e{i}\x1d\x1c\x00",
                              mobile=None if i % 2 else f"138{i:08d}",
                              ids=PlatformIds(wecom=f"w{i}") if i % 4 else PlatformIds(),
                              channels=None if i % 3 == 1 else [f"c{i % 2}", "c9"])
              for i in range(40)}
    units = {"u0": Unit(id="u0", name="工委"), "u1": Unit(id="u1", name="支部", parent="u0", leaders=["p1"])}
    for section, model in ((people, Person), (units, Unit)):
        written = pickle.dumps(Rows(model, *Rows.encode(model, section.items())[1:]))
        one_by_one = pickle.loads(written)  # each model built alone, as a lookup by id does
        assert all(one_by_one[k] == v and repr(one_by_one[k]) == repr(v) for k, v in section.items())
        rows = pickle.loads(written)
        assert rows == section and list(rows) == list(section)  # all built in one pass
        for name in model.model_fields:
            if name != "ids":
                assert rows.column(name) == [getattr(v, name) for v in section.values()]
        assert all(rows[k].model_fields_set == v.model_fields_set and repr(rows[k]) == repr(v)  # fields in order
                   for k, v in section.items())
    rows = pickle.loads(pickle.dumps(Rows(Person, *Rows.encode(Person, people.items())[1:])))
    assert rows.__reduce__()[1] is rows.written  # nothing built: written again as read, not encoded afresh
    assert pickle.loads(pickle.dumps(rows)) == people
    rows["p2"].channels.append("c7")  # its own list: no one else's changes
    assert rows["p8"].channels == ["c0", "c9"] and rows.field("p2", "channels") == ["c0", "c9", "c7"]
    del rows["p0"]
    rows["new"] = people["p3"].model_copy(update={"id": "new"})
    again = pickle.loads(pickle.dumps(rows))
    expected = {k: v for k, v in people.items() if k != "p0"} | {"new": rows["new"]}
    expected["p2"] = rows["p2"]
    assert again == expected and list(again) == list(expected)
    assert again.column("mobile") == [v.mobile for v in expected.values()]
    empty = pickle.loads(pickle.dumps(Rows(Unit, *Rows.encode(Unit, [])[1:])))
    assert len(empty) == 0 and empty.column("name") == []


def test_a_mention_is_the_one_its_dataclass_makes() -> None:
    from dataclasses import fields

    from bot.delivery.compose import mention_for
    from bot.platforms.base import Mention

    person = _people()["p3"]
    made = mention_for(person)
    expected = Mention(person_id="p3", name="人员3", mobile=None, ids={"wecom": "user3"})
    assert made == expected
    assert {f.name: getattr(made, f.name) for f in fields(Mention)} == vars(expected)
    with pytest.raises(AttributeError):
        made.name = "x"  # type: ignore[misc]  # frozen all the same


def test_a_snapshot_selects_names_units_and_leaders_as_a_fresh_check() -> None:
    s = Schedules(people=_people(), units={"u0": Unit(id="u0", name="工委", leaders=["p0"]),
                                           "u1": Unit(id="u1", name="支部1", parent="u0"),
                                           "u2": Unit(id="u2", name="支部2", parent="u0", leaders=["p2"])})
    copy = pickle.loads(pickle.dumps(s))
    for schedules in (s, copy):
        from bot.config.models import Selector

        assert [p.id for p in schedules.select(Selector(roles=["secretary"]))] == ["p1", "p3", "p5", "p7", "p9", "p11"]
        assert schedules.unit_name("u1") == "支部1" and schedules.unit_name("nowhere") is None
        assert schedules.unit_name(None) is None
        assert schedules.leaders_in_charge() == {"p0", "p2"}
        assert [p.id for p in schedules.leaders_of(schedules.people["p4"])] == ["p0"]  # u1 → its parent's leader
        assert [p.id for p in schedules.leaders_of(schedules.people["p5"])] == ["p2"]


async def test_sqlite_bulk_rows_are_stored_as_sqlalchemy_stores_them(db: Database) -> None:
    """The column-at-a-time SQLite insert writes the very text SQLAlchemy's own statement writes
    (times in SQLite's format, JSON lists), for shared and per-row values alike."""
    at = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    async with db.session() as session:
        session.add_all([Occurrence(reminder_id="r", due_at=at, title="t", kind="reminder"),
                         Occurrence(reminder_id="r", due_at=at.replace(day=6), title="t", kind="reminder")])
        await session.commit()

    def rows(occurrence: int) -> list[dict[str, object]]:
        return [{"occurrence_id": occurrence, "person_id": f"p{i}", "person_name": f"人员{i}",
                 "unit_id": "u1" if i else None, "unit_name": "支部" if i else None, "leader_ids": [f"l{i}"] * i,
                 "next_followup_at": at, "next_escalation_at": at.replace(hour=i), "followups": 0, "escalations": 0}
                for i in range(3)]

    table = Expectation.__table__  # type: ignore[attr-defined]
    async with db.session() as session:
        conflict = ["occurrence_id", "person_id"]
        assert len(await outbox.insert_ignoring(session, table, rows(1), conflict, table.c.id)) == 3
        assert await outbox.insert_ignoring(session, table, rows(1), conflict, table.c.id) == set()
        await (await session.connection()).execute(insert(table), rows(2))  # SQLAlchemy's own statement
        await session.commit()
    async with db.engine.connect() as conn:
        stored = (await conn.exec_driver_sql(
            "SELECT occurrence_id, person_id, person_name, unit_id, unit_name, leader_ids, next_followup_at,"
            " next_escalation_at, followups, escalations, typeof(next_followup_at) FROM expectation"
            " ORDER BY occurrence_id, person_id")).all()
    ours, theirs = stored[:3], stored[3:]
    assert [row[1:] for row in ours] == [row[1:] for row in theirs]


def _preview_text(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bot", "preview", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_preview_with_figures_says_they_are_as_of_now_not_as_of_the_send(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _made(env)
    note = "以上统计数字是截至现在的数字；真正发送时按发送那一刻的数字统计"
    assert note in _preview_text(env, "monthly-bulletin", "--date", "2027-01-05").splitlines()[-1]
    assert note not in _preview_text(env, "study-day")  # no figures, no note
