"""A person of the schedules named on the command line by id or by name (link, confirm, excuse,
leader-link and preview all take either). Light: ``preview`` imports it and no database code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config.models import Person, Schedules


class NoSuchPerson(Exception):
    """``who`` names no one, or several people; ``str()`` is the Chinese sentence to print."""


def person_named(schedules: Schedules, who: str) -> Person:
    """The person whose id is ``who``, else the one person so named.

    Errors: ``NoSuchPerson`` when no one has that id or name, or several share the name (their ids listed)."""
    person = schedules.people.get(who)
    if person is not None:
        return person
    named = [p for p in schedules.people.values() if p.name == who]
    if len(named) > 1:
        raise NoSuchPerson(f"有多人名为 “{who}”，请改用人员标识（{'、'.join(p.id for p in named)}）")
    if not named:
        from bot.cli.unknown import unknown_person  # difflib: only when no one is so named

        raise NoSuchPerson(unknown_person(schedules.people, who))
    return named[0]
