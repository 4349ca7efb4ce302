"""What the registry knows of the generic JSON webhook: a robot only (no app, no people's ids, any
host): see :mod:`bot.platforms.spec`."""

from __future__ import annotations

from bot.platforms.generic.config import GenericChannel
from bot.platforms.generic.robot import Generic
from bot.platforms.spec import Edition, PlatformSpec

SPEC = PlatformSpec(editions=(Edition(name="generic", title=Generic.title),), robot=Generic(),
                    channel_model=GenericChannel)
