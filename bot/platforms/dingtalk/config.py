"""DingTalk (钉钉) configuration: the custom robot channel (``channels:``) and the enterprise-internal
app robot (``apps:``: HTTP callback or Stream mode, one-to-one messages, interactive cards)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.platforms.apps import AppBase
from bot.platforms.base import ChannelBase


class DingTalkChannel(ChannelBase):
    platform: Literal["dingtalk"] = Field(description="钉钉自定义机器人")
    format: Literal["text", "markdown", "card"] = Field(
        default="markdown", description="text、markdown 或 card（actionCard，带确认按钮）"
    )
    keyword: str | None = Field(default=None, description="机器人安全设置中的自定义关键词；设置后每条消息都会带上它")


class DingTalkApp(AppBase):
    """A DingTalk enterprise-internal app robot: HTTP callback or Stream mode."""

    send_needs: ClassVar[str] = "app_key、app_secret，以及 robot_code（机器人单聊）或 agent_id（工作通知）"

    platform: Literal["dingtalk"]
    mode: Literal["http", "stream"] = Field(
        default="http", description="http（回调地址）或 stream（长连接，无需公网地址）")
    app_key: str | None = Field(default=None, description="AppKey（Client ID）；stream 模式必填")
    app_secret: SecretStr = Field(description="AppSecret（Client Secret）")
    robot_code: str | None = Field(default=None, description="机器人 robotCode；填写后可发单聊消息（私信）")
    api_base: str = Field(default="https://api.dingtalk.com", description="钉钉开放平台地址（专有钉钉可改）")
    card_template_id: str | None = Field(
        default=None, description="互动卡片模板 ID（含 actionId 为 confirm 的按钮）；填写后私信带确认按钮")
    agent_id: str | None = Field(
        default=None, pattern=r"^\d{1,20}$", description="应用 AgentId（数字）；填写后私信以工作通知发送")
    oapi_base: str = Field(default="https://oapi.dingtalk.com",
                           description="钉钉旧版服务端接口地址（工作通知；专有钉钉可改）")

    @property
    def needs_callback(self) -> bool:
        return self.mode != "stream"

    def callback_text(self, base_url: str) -> str:
        if self.mode == "stream":
            return "无需填写（Stream 模式，由本服务主动连接钉钉）"
        return super().callback_text(base_url)

    @property
    def can_send(self) -> bool:
        return bool(self.app_key and (self.robot_code or self.agent_id))

    @property
    def work_notices(self) -> bool:
        """Whether direct messages go as work notifications (工作通知, ``agent_id`` set)."""
        return bool(self.app_key and self.agent_id)

    @field_validator("agent_id", mode="before")
    @classmethod
    def _agent_number(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value  # YAML: agent_id: 123

    @model_validator(mode="after")
    def _stream_key(self) -> DingTalkApp:
        if self.mode == "stream" and not self.app_key:
            raise ValueError("stream 模式需要填写 app_key（Client ID）")
        if self.robot_code and not self.app_key:
            raise ValueError("填写了 robot_code（发单聊消息）时还需要填写 app_key（Client ID）")
        if self.agent_id and not self.app_key:
            raise ValueError("填写了 agent_id（发工作通知）时还需要填写 app_key（Client ID）")
        return self
