"""The table of platforms: adding one is a module and a line here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.platforms.appsend import AppChannel, AppSender
from bot.platforms.base import ChannelBase, Platform
from bot.platforms.dingtalk import DingTalk, DingTalkChannel
from bot.platforms.dingtalk_app import DingTalkAppSender
from bot.platforms.feishu import Feishu, FeishuChannel
from bot.platforms.feishu_app import FeishuAppSender
from bot.platforms.generic import Generic, GenericChannel
from bot.platforms.slack import Slack, SlackChannel
from bot.platforms.slack_app import SlackAppSender
from bot.platforms.wecom import WeCom, WeComChannel
from bot.platforms.wecom_app import WeComAppSender

ChannelConfig = Annotated[
    WeComChannel | DingTalkChannel | FeishuChannel | SlackChannel | GenericChannel,
    Field(discriminator="platform"),
]

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
