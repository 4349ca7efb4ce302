"""The table of platforms, the only place that lists them: adding one is a folder under ``bot/platforms/``
(robot, config, and app/inbound if it has an app) and its lines here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.platforms.appsend import AppChannel, AppSender
from bot.platforms.base import ChannelBase, Platform
from bot.platforms.dingtalk.app import DingTalkAppSender
from bot.platforms.dingtalk.config import DingTalkApp, DingTalkChannel
from bot.platforms.dingtalk.robot import DingTalk
from bot.platforms.feishu.app import FeishuAppSender
from bot.platforms.feishu.config import FeishuApp, FeishuChannel
from bot.platforms.feishu.robot import Feishu
from bot.platforms.generic.config import GenericChannel
from bot.platforms.generic.robot import Generic
from bot.platforms.slack.app import SlackAppSender
from bot.platforms.slack.config import SlackApp, SlackChannel
from bot.platforms.slack.robot import Slack
from bot.platforms.wecom.app import WeComAppSender
from bot.platforms.wecom.config import WeComApp, WeComChannel
from bot.platforms.wecom.robot import WeCom

ChannelConfig = Annotated[
    WeComChannel | DingTalkChannel | FeishuChannel | SlackChannel | GenericChannel,
    Field(discriminator="platform"),
]

# The ``apps:`` entries, by the app's platform (each platform's config.py holds its model).
AppConfig = Annotated[WeComApp | DingTalkApp | FeishuApp | SlackApp, Field(discriminator="platform")]

_FEISHU = Feishu()  # Lark is the same protocol on another host, taken from the webhook URL

PLATFORMS: dict[str, Platform] = {
    "wecom": WeCom(),
    "dingtalk": DingTalk(),
    "feishu": _FEISHU,
    "lark": _FEISHU,
    "slack": Slack(),
    "generic": Generic(),
}


_FEISHU_APP = FeishuAppSender()

# Direct messages through an app (``apps:``), by the app's platform.
APP_SENDERS: dict[str, AppSender] = {
    "wecom": WeComAppSender(),
    "dingtalk": DingTalkAppSender(),
    "feishu": _FEISHU_APP,
    "lark": _FEISHU_APP,
    "slack": SlackAppSender(),
}


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


def platform_title(channel: ChannelBase) -> str:
    """The Chinese platform name an admin sees for this channel (see :func:`edition_title`)."""
    return edition_title(channel, platform_for(channel).title)


def shown_webhook(channel: ChannelBase) -> str:
    """The channel's webhook as an admin may see it: only what its platform says is public."""
    return platform_for(channel).public.mask(channel.webhook_url())


def webhook_secrets(channel: ChannelBase) -> list[str]:
    """The hidden parts of the channel's webhook (whole and piece by piece), for log masking."""
    url = channel.webhook_url()
    return platform_for(channel).public.secrets(url) if url else []
