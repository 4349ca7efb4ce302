"""Feishu (飞书) and Lark custom bots: same protocol on two hosts; text, post and interactive card."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.platforms.base import ChannelBase


class FeishuChannel(ChannelBase):
    platform: Literal["feishu", "lark"] = Field(description="飞书（feishu）或 Lark 自定义机器人")
    format: Literal["text", "post", "card", "markdown"] = Field(
        default="card", description="text、post（富文本）或 card（消息卡片，带确认按钮）"
    )
    keyword: str | None = Field(default=None, description="机器人安全设置中的自定义关键词")
