"""Feishu / Lark (飞书) configuration: the custom robot channel (``channels:``) and the app (``apps:``:
event subscription, card callbacks, app messages). Lark is the same protocol on another host."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from bot.platforms.apps import AppBase
from bot.platforms.base import ChannelBase


class FeishuChannel(ChannelBase):
    platform: Literal["feishu", "lark"] = Field(description="飞书（feishu）或 Lark 自定义机器人")
    format: Literal["text", "post", "card", "markdown"] = Field(
        default="card", description="text、post（富文本）或 card（消息卡片，带确认按钮）"
    )
    keyword: str | None = Field(default=None, description="机器人安全设置中的自定义关键词")


class FeishuApp(AppBase):
    """A Feishu / Lark app's event subscription and card callbacks."""

    platform: Literal["feishu", "lark"]
    app_id: str | None = Field(default=None, description="App ID（cli_ 开头）")
    verification_token: SecretStr = Field(description="Verification Token")
    encrypt_key: SecretStr | None = Field(default=None, description="Encrypt Key（设置后事件加密并校验签名）")
    app_secret: SecretStr | None = Field(default=None, description="App Secret；填写后可发应用消息（私信）")
    api_base: str | None = Field(default=None, description="接口地址；默认飞书 https://open.feishu.cn，"
                                 "Lark https://open.larksuite.com")

    @property
    def can_send(self) -> bool:
        return bool(self.app_id and self.app_secret)

    @property
    def api(self) -> str:
        default = "https://open.larksuite.com" if self.platform == "lark" else "https://open.feishu.cn"
        return (self.api_base or default).rstrip("/")

    @model_validator(mode="after")
    def _app_id(self) -> FeishuApp:
        if self.app_secret and not self.app_id:
            raise ValueError("填写了 app_secret（发应用消息）时还需要填写 app_id（cli_ 开头）")
        return self
