"""Generic JSON webhook configuration: the channel (``channels:``). It has no app."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.platforms.base import ChannelBase


class GenericChannel(ChannelBase):
    platform: Literal["generic"] = Field(description="通用 JSON Webhook（带 HMAC 签名头）")
    format: Literal["markdown", "text"] = Field(default="markdown")
