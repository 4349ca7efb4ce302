"""WeCom (企业微信 / 政务微信) configuration: the group robot channel (``channels:``) and the app
(``apps:``: self-built app callback and application messages, or a group robot's callback)."""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.platforms.apps import AppBase
from bot.platforms.base import ChannelBase


class WeComChannel(ChannelBase):
    platform: Literal["wecom"] = Field(description="企业微信或政务微信群机器人")
    format: Literal["text", "markdown"] = Field(
        default="markdown", description="text（支持@成员）或 markdown（@写在正文中）"
    )

    def webhook_problem(self) -> str | None:
        if parse_qs(urlsplit(self.webhook_url()).query).get("key"):
            return None
        return (f"{self.edition()}机器人的 webhook 应含 key=…（形如 …/cgi-bin/webhook/send?key=…），"
                "现在没有：请从群机器人设置中完整复制")

    def edition(self) -> str:
        """政务微信 when the webhook is on a government host (``.gov.`` in it, ``.gov.cn``) or the
        channel's name says 政务微信; else 企业微信."""
        host = (urlsplit(self.webhook_url()).hostname or "").lower()
        government = ".gov." in f"{host}." or "政务微信" in self.name
        return "政务微信" if government else "企业微信"


class WeComApp(AppBase):
    """A WeCom / 政务微信 self-built app callback, or a group robot's callback (``kind: robot``)."""

    send_needs: ClassVar[str] = "corp_id、agent_id、secret"

    platform: Literal["wecom"]
    kind: Literal["app", "robot"] = Field(default="app", description="app（自建应用）或 robot（群机器人回调）")
    corp_id: str | None = Field(default=None, description="企业 ID（CorpID）；自建应用必填，群机器人回调不填")
    agent_id: str | None = Field(default=None, description="应用 AgentId")
    token: SecretStr = Field(description="接收消息的 Token")
    encoding_aes_key: SecretStr = Field(description="EncodingAESKey（43 个字符）")
    secret: SecretStr | None = Field(default=None, description="应用 Secret；填写后可发应用消息（私信）")
    api_base: str = Field(default="https://qyapi.weixin.qq.com",
                          description="接口地址（政务微信等私有部署填其地址）")

    def callback_text(self, base_url: str) -> str:
        url = super().callback_text(base_url)
        return f"{url}（填到群机器人的“接收消息”配置）" if self.kind == "robot" else url

    @property
    def can_send(self) -> bool:
        return self.kind == "app" and bool(self.secret and self.agent_id and self.corp_id)

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if len(text) != 43:
            raise ValueError(f"EncodingAESKey 应为 43 个字符，现在是 {len(text)} 个")
        return value

    @model_validator(mode="after")
    def _corp(self) -> WeComApp:
        if self.kind == "app" and not self.corp_id:
            raise ValueError("自建应用（kind: app）需要填写 corp_id（企业 ID）")
        if self.secret and not self.agent_id:
            raise ValueError("填写了 secret（发应用消息）时还需要填写 agent_id（应用 AgentId）")
        return self
