"""The table of platforms: adding one is a module and a line here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.platforms.dingtalk import DingTalkChannel
from bot.platforms.feishu import FeishuChannel
from bot.platforms.generic import GenericChannel
from bot.platforms.slack import SlackChannel
from bot.platforms.wecom import WeComChannel

ChannelConfig = Annotated[
    WeComChannel | DingTalkChannel | FeishuChannel | SlackChannel | GenericChannel,
    Field(discriminator="platform"),
]
