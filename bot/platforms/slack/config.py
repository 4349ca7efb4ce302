"""Slack configuration: the Incoming Webhook channel (``channels:``) and the app (``apps:``: Events API,
interactivity, ``chat.postMessage`` to a user)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from bot.platforms.apps import AppBase
from bot.platforms.base import ChannelBase


class SlackChannel(ChannelBase):
    platform: Literal["slack"] = Field(description="Slack Incoming Webhook")
    format: Literal["markdown", "text"] = Field(default="markdown")

    @model_validator(mode="after")
    def _no_secret(self) -> SlackChannel:
        if self.secret is not None:
            raise ValueError("Slack Incoming Webhook 没有加签设置，请去掉 secret")
        return self


class SlackApp(AppBase):
    """A Slack app's Events API and interactivity endpoints."""

    platform: Literal["slack"]
    signing_secret: SecretStr = Field(description="Signing Secret")
    bot_token: SecretStr | None = Field(default=None, description="Bot User OAuth Token（xoxb- 开头）；填写后可发私信")
    api_base: str = Field(default="https://slack.com", description="接口地址")

    @property
    def can_send(self) -> bool:
        return self.bot_token is not None
