"""The membership index (channel, unit, role, leaders) gives exactly what scanning every person gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.loader import load_schedules
from bot.config.models import Person, Schedules, Selector
from bot.delivery.compose import members

ROOT = Path(__file__).resolve().parent.parent


def scan_select(s: Schedules, sel: Selector) -> list[Person]:
    """The old way: every person checked against the selector."""
    units = s.subtree(set(sel.units)) if sel.units else None
    out = []
    for p in s.people.values():
        listed = p.id in sel.people
        matched = (sel.roles or sel.units) and (not sel.roles or set(sel.roles) & set(p.roles)) \
            and (units is None or p.unit in units)
        if listed or matched:
            out.append(p)
    return out


def scan_leaders(s: Schedules, person: Person) -> list[Person]:
    for unit in s.unit_chain(person.unit):
        if unit.leaders:
            return [s.people[p] for p in unit.leaders if p in s.people]
    return []


def scan_overseen(s: Schedules, person_id: str) -> list[str]:
    direct = {u.id for u in s.units.values() if person_id in u.leaders}
    return [u.id for u in s.units.values() if any(c.id in direct for c in s.unit_chain(u.id))]


def selectors(s: Schedules) -> list[Selector]:
    found = []
    for r in s.reminders.values():
        found.append(r.recipients.mention)
        if r.confirm and r.confirm.who:
            found.append(r.confirm.who)
    roles = sorted({role for p in s.people.values() for role in p.roles})
    found += [Selector(units=[u]) for u in s.units] + [Selector(roles=[r]) for r in roles]
    found += [Selector(roles=[r], units=[u]) for r in roles for u in s.units]
    return found


def big_province() -> Schedules:
    """Enough people that the index path (not the short-list scan) is taken; some in every group."""
    s = Schedules()
    from bot.config.models import Unit

    s.units["root"] = Unit(id="root", name="工委", leaders=["p0"])
    for b in range(5):
        s.units[f"b{b}"] = Unit(id=f"b{b}", name=f"支部{b}", parent="root", leaders=[f"p{b + 1}"] if b % 2 else [])
    for i in range(400):
        channels = None if i % 7 == 0 else [f"c{i % 3}", f"c{(i + 1) % 3}"] if i % 5 == 0 else [f"c{i % 3}"]
        s.people[f"p{i}"] = Person(id=f"p{i}", name=f"人{i}", unit="root" if i < 6 else f"b{i % 5}",
                                   roles=["secretary"] if i % 2 else ["member", "worker"], channels=channels)
    return s


@pytest.fixture(params=["shipped", "generated"])
def schedules(request: pytest.FixtureRequest) -> Schedules:
    if request.param == "shipped":
        return load_schedules(ROOT / "schedules", env={})
    return big_province()


def test_selection_through_the_indexes_equals_scanning_every_person(schedules: Schedules) -> None:
    for sel in selectors(schedules):
        assert [p.id for p in schedules.select(sel)] == [p.id for p in scan_select(schedules, sel)], sel


def test_channel_members_through_the_index_equal_scanning_every_person(schedules: Schedules) -> None:
    channels = set(schedules.channels) | {c for p in schedules.people.values() for c in p.channels or []}
    for sel in selectors(schedules):
        chosen = schedules.select(sel)
        for channel in sorted(channels):
            expected = [p.id for p in chosen if p.channels is None or channel in p.channels]
            assert [p.id for p in members(schedules, chosen, channel)] == expected, (sel, channel)
            assert [p.id for p in members(schedules, list(chosen), channel)] == expected  # a plain list too


def test_leaders_and_overseen_units_through_the_index_equal_the_scan(schedules: Schedules) -> None:
    for person in schedules.people.values():
        assert schedules.leaders_of(person) == scan_leaders(schedules, person)
        assert [u.id for u in schedules.units_overseen_by(person.id)] == scan_overseen(schedules, person.id)


def test_a_channel_listed_twice_by_one_person_mentions_them_once() -> None:
    s = big_province()
    s.people["p1"].channels = ["c0", "c0"]
    chosen = s.select(Selector(roles=["secretary"]))
    assert [p.id for p in members(s, chosen, "c0")].count("p1") == 1


def test_follow_ups_split_people_by_channel_as_the_scan_did(schedules: Schedules) -> None:
    from bot.delivery.compose import split_by_channel

    people: list[Person | None] = [*schedules.people.values(), None]  # None: someone since removed
    channels = sorted(set(schedules.channels) | {"c0", "c1", "c2"})
    groups = split_by_channel(people, channels)
    for channel in channels:
        expected = [i for i, p in enumerate(people) if p is None or members(schedules, [p], channel)]
        assert groups[channel] == expected


def test_unit_facts_give_what_unit_name_and_leaders_of_give(schedules: Schedules) -> None:
    import pickle

    from bot.config.models import Unit

    s = schedules
    s.units["lost"] = Unit(id="lost", name="无上级", parent="nowhere")  # a parent that is no unit
    s.units["loop1"] = Unit(id="loop1", name="环1", parent="loop2")  # a loop of parents (the loader refuses it)
    s.units["loop2"] = Unit(id="loop2", name="环2", parent="loop1")
    s.units["ghost"] = Unit(id="ghost", name="空领导", leaders=["nobody"])  # a leader who is no person
    s.units["under"] = Unit(id="under", name="下级", parent="ghost")
    s._fresh_indexes()  # the indexes and memos are made once per snapshot: changed here, made again
    asked = [p.unit for p in s.people.values()] + [None, "", "no-such-unit", *s.units]
    for each in (s, pickle.loads(pickle.dumps(s))):  # as built, and from a snapshot's rows
        facts = each.unit_facts(asked)
        assert list(facts) == list(dict.fromkeys(asked))
        for unit_id in asked:
            someone = Person(id="x", name="某人", unit=unit_id or None)
            expected = (each.unit_name(unit_id), [p.id for p in each.leaders_of(someone)])
            assert facts[unit_id] == expected, unit_id


@pytest.mark.parametrize("kinds", [3, 300])  # distinct role lists: an index of a byte each, or of 4 bytes
def test_people_holding_a_role_in_a_snapshots_rows_are_those_the_scan_finds(kinds: int) -> None:
    """Read from the roles column as written (no list per person made), before and after models are
    built and changed, and once people are added and removed: the same positions as scanning."""
    import pickle

    s = Schedules()
    for i in range(1000):
        roles = [f"r{i % kinds}", *(["secretary"] if i % 3 == 0 else []), *(["leader"] if i % kinds == 7 else [])]
        s.people[f"p{i}"] = Person(id=f"p{i}", name=f"人{i}", roles=roles)
    expected = {role: [i for i, p in enumerate(s.people.values()) if role in p.roles]
                for role in ("secretary", "leader", "r1", "nobody")}
    fresh = pickle.loads(pickle.dumps(s))
    assert [fresh._indexes().with_role(role) for role in expected] == list(expected.values())
    changed = pickle.loads(pickle.dumps(s))
    changed.people["p3"].roles.remove("secretary")  # a model built and changed: its own list counts
    changed.people["p4"].roles.append("secretary")
    assert changed._indexes().with_role("secretary") == sorted({*expected["secretary"], 4} - {3})
    grown = pickle.loads(pickle.dumps(s))
    del grown.people["p0"]
    grown.people["new"] = Person(id="new", name="新人", roles=["secretary"])
    assert [grown.people[grown._indexes().ids[i]].id for i in grown._indexes().with_role("secretary")] == \
        [p.id for p in grown.people.values() if "secretary" in p.roles]
