"""The one place that decides whether a personal message goes as a direct message.

A personal message (a leader's "一岗双责" brief from a ``per_person`` reminder, an escalation to a
leader, a message carrying someone's own confirmation link) goes as a direct message through the
first app in the ``apps:`` section (in YAML order) that can send (its API credentials are set) and
whose platform the person has an id for under ``ids:``. Without such an app it goes where it went
before: to the reminder's group robots.
"""

from __future__ import annotations

from typing import Any

from bot.config.models import Person
from bot.platforms.appsend import AppChannel
from bot.runtime import Runtime


def direct_channel(runtime: Runtime, person: Person | None) -> AppChannel | None:
    """The app channel that reaches ``person`` directly, or None (then: group robots)."""
    if person is None:
        return None
    for app in runtime.schedules.apps.values():
        if app.can_send and _user_id(person, app) is not None:
            return runtime.app_channel(app)
    return None


def _user_id(person: Person, app: Any) -> str | None:
    return getattr(person.ids, app.platform, None) or None
