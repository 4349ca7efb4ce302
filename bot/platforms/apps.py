"""The ``apps:`` YAML section: each platform app the bot talks to besides its group robots.

Receiving needs the callback credentials; sending direct messages (bot/platforms/appsend.py) needs
the app's API credentials (``secret``, ``app_secret``, ``bot_token``…) and an API host (``api_base``,
changeable for 政务微信, 专有钉钉 or Lark). ``can_send`` says whether an app has what sending needs.
Every secret is a ``SecretStr`` and usually
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

    @field_validator("api_base", mode="after", check_fields=False)
    @classmethod
    def _api_base(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("https://", "http://")) or any(c.isspace() for c in value)):
            raise ValueError("api_base 应为以 https:// 开头、不含空白的接口地址")
        return value.rstrip("/") if value else value

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def can_send(self) -> bool:
        """Whether this app has the credentials direct messages need."""
        return False

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
    secret: SecretStr | None = Field(default=None, description="应用 Secret；填写后可发应用消息（私信）")
    api_base: str = Field(default="https://qyapi.weixin.qq.com",
                          description="接口地址（政务微信等私有部署填其地址）")

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


class DingTalkApp(AppBase):
    """A DingTalk enterprise-internal app robot: HTTP callback or Stream mode."""

    platform: Literal["dingtalk"]
    mode: Literal["http", "stream"] = Field(
        default="http", description="http（回调地址）或 stream（长连接，无需公网地址）")
    app_key: str | None = Field(default=None, description="AppKey（Client ID）；stream 模式必填")
    app_secret: SecretStr = Field(description="AppSecret（Client Secret）")
    robot_code: str | None = Field(default=None, description="机器人 robotCode；填写后可发单聊消息（私信）")
    api_base: str = Field(default="https://api.dingtalk.com", description="钉钉开放平台地址（专有钉钉可改）")
    card_template_id: str | None = Field(
        default=None, description="互动卡片模板 ID（含 actionId 为 confirm 的按钮）；填写后私信带确认按钮")

    @property
    def can_send(self) -> bool:
        return bool(self.app_key and self.robot_code)

    @model_validator(mode="after")
    def _stream_key(self) -> DingTalkApp:
        if self.mode == "stream" and not self.app_key:
            raise ValueError("stream 模式需要填写 app_key（Client ID）")
        if self.robot_code and not self.app_key:
            raise ValueError("填写了 robot_code（发单聊消息）时还需要填写 app_key（Client ID）")
        return self


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


class SlackApp(AppBase):
    """A Slack app's Events API and interactivity endpoints."""

    platform: Literal["slack"]
    signing_secret: SecretStr = Field(description="Signing Secret")
    bot_token: SecretStr | None = Field(default=None, description="Bot User OAuth Token（xoxb- 开头）；填写后可发私信")
    api_base: str = Field(default="https://slack.com", description="接口地址")

    @property
    def can_send(self) -> bool:
        return self.bot_token is not None


AppConfig = Annotated[WeComApp | DingTalkApp | FeishuApp | SlackApp, Field(discriminator="platform")]
APP_PLATFORMS = ("wecom", "dingtalk", "feishu", "lark", "slack")


def callback_url(base_url: str, app: AppBase) -> str:
    """The URL to paste into the platform's console for this app."""
    return f"{base_url.rstrip('/')}/callback/{app.platform}/{app.id}"  # type: ignore[attr-defined]
