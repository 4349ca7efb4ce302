"""The ``apps:`` YAML section: each platform app the bot talks to besides its group robots.

This half holds what receiving needs (callback credentials); the app half (access tokens, direct
messages) extends these models with its own fields. Every secret is a ``SecretStr`` and usually
written as ``${VAR}`` (substituted at load like every other value).

The callback URL of an app is ``<REMINDBOT_BASE_URL>/callback/<platform>/<id>``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ID_PATTERN = r"^[A-Za-z0-9_.-]+$"


class AppBase(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN, description="应用标识，回调地址中使用")
    name: str | None = Field(default=None, description="名称，仅供显示")
    answer_channel: str | None = Field(
        default=None,
        description="平台不支持直接回复时，用哪个频道（群机器人）回复确认结果（频道标识）",
    )

    @property
    def label(self) -> str:
        return self.name or self.id

    def secrets(self) -> list[str]:
        """Every secret value, for log masking."""
        out = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


class WeComApp(AppBase):
    """A WeCom / 政务微信 self-built app callback, or a group robot's callback (``kind: robot``)."""

    platform: Literal["wecom"]
    kind: Literal["app", "robot"] = Field(default="app", description="app（自建应用）或 robot（群机器人回调）")
    corp_id: str | None = Field(default=None, description="企业 ID（CorpID）；自建应用必填，群机器人回调不填")
    agent_id: str | None = Field(default=None, description="应用 AgentId")
    token: SecretStr = Field(description="接收消息的 Token")
    encoding_aes_key: SecretStr = Field(description="EncodingAESKey（43 个字符）")

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
        return self


class DingTalkApp(AppBase):
    """A DingTalk enterprise-internal app robot: HTTP callback or Stream mode."""

    platform: Literal["dingtalk"]
    mode: Literal["http", "stream"] = Field(
        default="http", description="http（回调地址）或 stream（长连接，无需公网地址）")
    app_key: str | None = Field(default=None, description="AppKey（Client ID）；stream 模式必填")
    app_secret: SecretStr = Field(description="AppSecret（Client Secret）")
    robot_code: str | None = Field(default=None, description="机器人 robotCode")
    api_base: str = Field(default="https://api.dingtalk.com", description="钉钉开放平台地址（专有钉钉可改）")

    @model_validator(mode="after")
    def _stream_key(self) -> DingTalkApp:
        if self.mode == "stream" and not self.app_key:
            raise ValueError("stream 模式需要填写 app_key（Client ID）")
        return self


class FeishuApp(AppBase):
    """A Feishu / Lark app's event subscription and card callbacks."""

    platform: Literal["feishu", "lark"]
    app_id: str | None = Field(default=None, description="App ID（cli_ 开头）")
    verification_token: SecretStr = Field(description="Verification Token")
    encrypt_key: SecretStr | None = Field(default=None, description="Encrypt Key（设置后事件加密并校验签名）")


class SlackApp(AppBase):
    """A Slack app's Events API and interactivity endpoints."""

    platform: Literal["slack"]
    signing_secret: SecretStr = Field(description="Signing Secret")


AppConfig = Annotated[WeComApp | DingTalkApp | FeishuApp | SlackApp, Field(discriminator="platform")]
APP_PLATFORMS = ("wecom", "dingtalk", "feishu", "lark", "slack")


def callback_url(base_url: str, app: AppBase) -> str:
    """The URL to paste into the platform's console for this app."""
    return f"{base_url.rstrip('/')}/callback/{app.platform}/{app.id}"  # type: ignore[attr-defined]
