"""WeCom (企业微信) group robot, which 政务微信 speaks too: text and markdown, @ by mobile or user id."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.platforms.base import ChannelBase


class WeComChannel(ChannelBase):
    platform: Literal["wecom"] = Field(description="企业微信或政务微信群机器人")
    format: Literal["text", "markdown"] = Field(
        default="markdown", description="text（支持@成员）或 markdown（@写在正文中）"
    )
