"""Slack incoming webhook: mrkdwn text."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bot.platforms.base import ChannelBase


class SlackChannel(ChannelBase):
    platform: Literal["slack"] = Field(description="Slack Incoming Webhook")
    format: Literal["markdown", "text"] = Field(default="markdown")
