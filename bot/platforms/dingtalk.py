"""DingTalk (钉钉) custom robot: signed when the channel has a secret; text, markdown, actionCard."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.platforms.base import ChannelBase


class DingTalkChannel(ChannelBase):
    platform: Literal["dingtalk"] = Field(description="钉钉自定义机器人")
    format: Literal["text", "markdown", "card"] = Field(
        default="markdown", description="text、markdown 或 card（actionCard，带确认按钮）"
    )
    keyword: str | None = Field(
        default=None, description="机器人安全设置中的自定义关键词；设置后每条消息都会带上它"
    )
