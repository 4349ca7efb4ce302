"""The schedules snapshot: parsed once, a changed file alone parsed again, a bad cache never trusted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import snapshot
from bot.config.loader import check_schedules
from bot.config.snapshot import STATS, check_cached

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "message_templates"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "schedules"
    shutil.copytree(ROOT / "schedules", target)
    return target


def check(folder: Path, cache: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    STATS.parsed.clear()
    STATS.reused.clear()
    return check_cached(folder, cache_dir=cache, env=env or {}, templates_dir=TEMPLATES)


def test_unchanged_schedules_come_from_the_snapshot_and_a_changed_file_alone_is_parsed_again(
        folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = check(folder, cache)
    assert first is not None and len(STATS.parsed) == 7  # every YAML file, once
    hits = STATS.snapshot_hits
    again, _ = check(folder, cache)
    assert STATS.snapshot_hits == hits + 1 and STATS.parsed == []
    assert again is not None and again.model_dump() == first.model_dump()

    study = folder / "study.yaml"
    study.write_text(study.read_text(encoding="utf-8").replace("title: 每月学习日", "title: 每月集中学习日"),
                     encoding="utf-8")
    changed, issues = check(folder, cache)
    assert STATS.parsed == ["schedules/study.yaml"] and len(STATS.reused) == 6
    assert changed is not None and changed.reminders["study-day"].title == "每月集中学习日"
    fresh, fresh_issues = check_schedules(folder, env={}, templates_dir=TEMPLATES)
    assert fresh is not None and changed.model_dump() == fresh.model_dump() and issues == fresh_issues


def test_an_error_in_a_changed_file_is_reported_as_without_the_cache(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    check(folder, cache)
    org = folder / "organization.yaml"
    org.write_text(org.read_text(encoding="utf-8").replace("parent: fgw", "parent: fgw_typo", 1), encoding="utf-8")
    cached, issues = check(folder, cache)
    assert STATS.parsed == ["schedules/organization.yaml"]
    fresh, fresh_issues = check_schedules(folder, env={}, templates_dir=TEMPLATES)
    assert cached is None and fresh is None
    assert [str(i) for i in issues] == [str(i) for i in fresh_issues]
    assert any("fgw_typo" in i.message for i in issues)


def test_a_corrupt_or_foreign_cache_is_ignored_and_replaced(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good, _ = check(folder, cache)
    # (not the folder's last good entry: a link to the snapshot, read only when the folder has errors)
    entries = sorted(e for e in cache.glob("*.pickle") if not e.name.startswith("last-good-"))
    assert entries
    for i, entry in enumerate(entries):  # truncated, garbage, or written by other code
        raw = entry.read_bytes()
        entry.write_bytes(raw[: len(raw) // 2] if i % 3 == 0 else b"not a pickle" if i % 3 == 1
                          else b"other-version\n" + raw.partition(b"\n")[2])
    ignored = STATS.ignored
    again, _ = check(folder, cache)
    assert again is not None and good is not None and again.model_dump() == good.model_dump()
    assert STATS.ignored == ignored + len(entries)  # each one deleted, and the folder checked afresh
    assert len(STATS.parsed) == 7
    check(folder, cache)
    assert STATS.parsed == []  # and the rewritten snapshot is used again


def test_a_changed_environment_value_is_not_served_from_the_snapshot(folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="
    first, _ = check(folder, cache, {"REMINDBOT_GW_WECOM_WEBHOOK": url + "one"})
    second, _ = check(folder, cache, {"REMINDBOT_GW_WECOM_WEBHOOK": url + "two"})
    assert first is not None and second is not None
    assert first.channels["gw_wecom"].webhook.get_secret_value().endswith("one")
    assert second.channels["gw_wecom"].webhook.get_secret_value().endswith("two")
    assert STATS.parsed == ["schedules/channels.yaml"]


def test_a_command_reuses_the_snapshot_written_by_the_one_before(folder: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REMINDBOT_SCHEDULES_DIR": str(folder),
           "REMINDBOT_VAR_DIR": str(tmp_path / "var"), "REMINDBOT_TEMPLATES_DIR": str(TEMPLATES)}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "bot", "validate"], env=env, capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "配置无误：14 个提醒" in done.stdout
    snapshots = list((tmp_path / "var" / "cache").glob("snapshot-*.pickle"))
    assert len(snapshots) == 1
    assert snapshots[0].stat().st_mode & 0o777 == 0o600  # it holds the webhooks as substituted


def test_the_snapshot_key_follows_the_code() -> None:
    assert snapshot.code_version() == snapshot.code_version() and len(snapshot.code_version()) == 24


def test_a_change_in_a_platform_folder_invalidates_the_snapshot(tmp_path: Path) -> None:
    """Channel and app models live in bot/platforms/<name>/config.py: editing one must change the key."""
    package = tmp_path / "bot"
    shutil.copytree(ROOT / "bot", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = snapshot.code_digest(package)
    assert before == snapshot.code_version()
    model = package / "platforms" / "wecom" / "config.py"
    model.write_text(model.read_text().replace("企业微信或政务微信群机器人", "企业微信群机器人"))
    assert snapshot.code_digest(package) != before


def test_a_snapshot_opens_people_units_and_sources_only_when_read_and_they_equal_a_fresh_check(
        folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    check(folder, cache)
    warm, _ = check(folder, cache)
    assert warm is not None
    # remindbot upcoming reads reminders and calendar: the 100,000 people of a province stay pickled
    assert {"people", "units", "sources"}.isdisjoint(warm.__dict__) and warm.reminders
    fresh, _ = check_schedules(folder, env={}, templates_dir=TEMPLATES)
    assert fresh is not None
    assert warm.people == fresh.people and "people" in warm.__dict__ and "units" not in warm.__dict__
    assert warm.select(fresh.reminders["study-day"].recipients.mention) == \
        fresh.select(fresh.reminders["study-day"].recipients.mention)
    assert warm == fresh and warm.model_dump() == fresh.model_dump()  # reads every section
    # the same again through a second pickling (the reload worker sends its result this way)
    import pickle

    again = pickle.loads(pickle.dumps(warm))
    assert "people" not in again.__dict__ and again == fresh


def test_a_snapshot_builds_only_the_people_a_command_reads_and_keeps_changes_through_pickling(
        folder: Path, tmp_path: Path) -> None:
    import pickle

    from bot.config.models import PlatformIds
    from bot.config.rows import Rows

    cache = tmp_path / "cache"
    check(folder, cache)
    warm, _ = check(folder, cache)
    fresh, _ = check_schedules(folder, env={}, templates_dir=TEMPLATES)
    assert warm is not None and fresh is not None
    people = warm.people
    assert isinstance(people, Rows) and list(people) == list(fresh.people)
    # a reminder to the secretaries builds the secretaries (and no one else) as models
    chosen = warm.select(fresh.reminders["study-day"].recipients.mention)
    assert chosen and len(people.built) == len(chosen) < len(fresh.people)
    first = chosen[0]
    assert first == fresh.people[first.id] and first.model_dump() == fresh.people[first.id].model_dump()
    assert first.model_fields_set == fresh.people[first.id].model_fields_set
    # a changed person and a new one survive the next pickling (the reload worker's way)
    people[first.id] = first.model_copy(update={"ids": PlatformIds(dingtalk="staff-x")})
    people["zz-new"] = fresh.people[first.id].model_copy(update={"id": "zz-new"})
    again = pickle.loads(pickle.dumps(warm))
    assert again.people[first.id].ids.dingtalk == "staff-x" and list(again.people)[-1] == "zz-new"
    del again.people["zz-new"]
    assert "zz-new" not in again.people and len(again.people) == len(fresh.people)
    assert dict(again.people.items()) == {k: v for k, v in people.items() if k != "zz-new"}


def test_a_file_hashed_a_block_at_a_time_keys_as_read_whole(tmp_path: Path) -> None:
    env = {"HOOK": "https://example.com/a", "OTHER": "x"}
    bodies = [b"", b"plain", b"a" * (snapshot.BLOCK * 2 + 17), b"x" * snapshot.BLOCK + b"url: ${HOOK}\n",
              b"price $5, no variable", "人员 ${OTHER:-默认}".encode()]
    for i, body in enumerate(bodies):
        file = tmp_path / f"f{i}.yaml"
        file.write_bytes(body)
        assert snapshot._file_key(file, env, bytearray(snapshot.BLOCK)) == snapshot._content_key(body, env), i
    assert snapshot._content_key(bodies[3], env) != snapshot._content_key(bodies[3], {**env, "HOOK": "other"})


def test_some_people_built_from_their_rows_equal_the_people_written() -> None:
    # A text column (names, mobiles, platform ids) gives a few entries by slicing, the rest never made.
    import pickle

    from bot.config.models import Person, PlatformIds
    from bot.config.rows import Rows

    people = {f"p{i}": Person(id=f"p{i}", name=f"人员{i}" * (i % 3 + 1), mobile=None if i % 4 else f"138{i:08d}",
                              ids=PlatformIds(wecom=f"u{i}" if i % 5 else None), roles=["secretary"])
              for i in range(300)}
    rows = pickle.loads(pickle.dumps(Rows(Person, *Rows.encode(Person, people.items())[1:])))
    chosen = [0, 1, 4, 5, 150, 299]
    keys = list(people)
    assert rows.at(chosen, keys) == [people[keys[i]] for i in chosen]
    assert rows["p7"] == people["p7"] and dict(rows.items()) == people  # the rest as read whole


def test_an_unchanged_folder_warns_of_a_one_off_date_once_it_has_passed_without_being_parsed_again(
        folder: Path, tmp_path: Path) -> None:
    # The warning came with the check and an unchanged folder reused it: a date passing later was warned
    # of only after the next edit of the folder.
    cache = tmp_path / "cache"
    before, after = datetime(2027, 3, 7, 12, tzinfo=UTC), datetime(2027, 3, 10, 1, tzinfo=UTC)  # once: 2027-03-08
    checked, issues = check_cached(folder, cache_dir=cache, env={}, templates_dir=TEMPLATES, now=before)
    assert checked is not None and not [i for i in issues if "已过" in i.message]
    STATS.parsed.clear()
    hits = STATS.snapshot_hits
    again, issues = check_cached(folder, cache_dir=cache, env={}, templates_dir=TEMPLATES, now=after)
    assert again is not None and STATS.snapshot_hits == hits + 1 and STATS.parsed == []
    past = [i for i in issues if "已过" in i.message]
    assert [(i.file, i.line, i.field, i.warning) for i in past] == [
        ("schedules/duties.yaml", 86, "reminders[6].when.once", True)]
    assert "日期 2027-03-08 已过（今天是 2027-03-10）" in past[0].message
    assert issues == check_schedules(folder, env={}, templates_dir=TEMPLATES, now=after)[1]  # as a fresh check
    kept = snapshot.last_good(cache, folder, now=after)  # what serve starts on when the folder breaks
    assert kept is not None and [str(i) for i in kept.warnings] == [str(i) for i in issues]
    back, issues = check_cached(folder, cache_dir=cache, env={}, templates_dir=TEMPLATES, now=before)
    assert back is not None and not [i for i in issues if "已过" in i.message]
