"""The table of platforms, the only place that lists them.

Adding a platform is its folder under ``bot/platforms/<name>/`` (robot, config, app and inbound if it
has an app, and ``spec.py`` declaring them: :class:`~bot.platforms.spec.PlatformSpec`), two lines
here (the import of its ``spec`` and its entry in :data:`SPECS`), and its tests (DingTalk's Stream
mode, wired in bot/service.py, is the one exception). Everything else that depends on the set of platforms reads the
tables derived below: the YAML unions (:data:`ChannelConfig`, :data:`AppConfig`), a person's ids
(:data:`EDITIONS` with an ``id_description``: ``PlatformIds`` in bot/config/models.py), the robot
adapters and app senders, the callback handlers (bot/web/callbacks.py), the spreadsheet headers
(bot/config/sheets.py), the robot hosts (bot/config/sense.py) and the words of ``remindbot apps``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Union

from pydantic import Field

from bot.platforms.appsend import AppChannel, AppSender
from bot.platforms.base import ChannelBase, Platform
from bot.platforms.dingtalk import spec as dingtalk
from bot.platforms.feishu import spec as feishu
from bot.platforms.generic import spec as generic
from bot.platforms.slack import spec as slack
from bot.platforms.spec import Callback, Edition, PlatformSpec
from bot.platforms.wecom import spec as wecom

# One entry per platform folder (imported above); the order is the order of the JSON schema's unions.
SPECS: tuple[PlatformSpec, ...] = (
    wecom.SPEC,
    dingtalk.SPEC,
    feishu.SPEC,
    slack.SPEC,
    generic.SPEC,
)

# Every value of ``platform:``, in order, with what an admin sees of it.
EDITIONS: dict[str, Edition] = {e.name: e for s in SPECS for e in s.editions}
# The keys of ``people[].ids`` (a person's user id on each platform), with their descriptions.
PERSON_ID_FIELDS: dict[str, str] = {e.name: e.id_description for e in EDITIONS.values() if e.id_description}

ChannelConfig = Annotated[
    Union[tuple(s.channel_model for s in SPECS)],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="platform"),
]

# The ``apps:`` entries, by the app's platform (each platform's config.py holds its model).
AppConfig = Annotated[
    Union[tuple(s.app_model for s in SPECS if s.app_model)],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="platform"),
]

PLATFORMS: dict[str, Platform] = {name: s.robot for s in SPECS for name in s.names}

# Direct messages through an app (``apps:``), by the app's platform.
APP_SENDERS: dict[str, AppSender] = {name: s.app_sender for s in SPECS if s.app_sender for name in s.names}

# The inbound handler of ``/callback/<platform>/<app_id>``, by the app's platform.
CALLBACKS: dict[str, Callback] = {name: s.callback for s in SPECS if s.callback for name in s.names}
CALLBACK_METHODS: dict[str, tuple[str, ...]] = {name: s.callback_methods for s in SPECS if s.callback
                                                for name in s.names}


def same_folder(a: str, b: str) -> bool:
    """Whether two ``platform:`` values are served by one folder (``feishu`` and ``lark``)."""
    return any(a in s.names and b in s.names for s in SPECS)


def platform_word(name: str) -> str:
    """The Chinese word for a ``platform:`` value (企业微信), or the value itself when unknown."""
    edition = EDITIONS.get(name)
    return edition.title if edition else name


def app_platform_title(name: str) -> str:
    """What ``remindbot apps check`` calls an app of this platform (企业微信/政务微信)."""
    edition = EDITIONS.get(name)
    return edition.shown_in_apps if edition else name


def platform_for(channel: ChannelBase) -> Platform:
    """The adapter for a channel, by its ``platform`` field (an app's sender for an app channel)."""
    if isinstance(channel, AppChannel):
        return APP_SENDERS[channel.platform]  # type: ignore[return-value]
    return PLATFORMS[channel.platform]  # type: ignore[attr-defined]


def edition_title(channel: ChannelBase, title: str) -> str:
    """The platform's name as the channel is configured (政务微信 for a WeCom channel on a government
    deployment), else ``title`` (the adapter's own)."""
    edition = getattr(channel, "edition", None)
    return edition() if callable(edition) else title


PlatformFor = Callable[[ChannelBase], Platform]  # :func:`platform_for`, or a test's stand-in for it


def platform_title(channel: ChannelBase, adapter_for: PlatformFor = platform_for) -> str:
    """The Chinese platform name an admin sees for this channel (see :func:`edition_title`);
    ``adapter_for``: how the channel's adapter is found (the dispatcher's own, in tests a fake's)."""
    return edition_title(channel, adapter_for(channel).title)


def as_configured(message: str, channel: ChannelBase | None, adapter_for: PlatformFor = platform_for) -> str:
    """``message`` (an adapter's error, which names the platform by the adapter's title: 企业微信) with the
    platform named as the channel is configured: a channel on a government deployment is 政务微信 to its
    admins, as the notices and pages call it (trials 13 and 15). The one place that renames it: the
    dispatcher's failures, the dead-letter notices and ``send-test`` (command line and admin page)."""
    if channel is None:
        return message
    own = adapter_for(channel).title
    shown = edition_title(channel, own)
    return message if shown == own else message.replace(own, shown)


def shown_webhook(channel: ChannelBase) -> str:
    """The channel's webhook as an admin may see it: only what its platform says is public."""
    return platform_for(channel).public.mask(channel.webhook_url())


def webhook_secrets(channel: ChannelBase) -> list[str]:
    """The hidden parts of the channel's webhook (whole and piece by piece), for log masking."""
    url = channel.webhook_url()
    return platform_for(channel).public.secrets(url) if url else []


