"""What every ``apps:`` entry has: each platform app the bot talks to besides its group robots.

Each platform's own app model (``bot/platforms/<name>/config.py``) subclasses :class:`AppBase`; the
``AppConfig`` union of them is in the registry. Receiving needs the callback credentials; sending
direct messages (bot/platforms/appsend.py) needs the app's API credentials (``secret``,
``app_secret``, ``bot_token``…) and an API host (``api_base``, changeable for 政务微信, 专有钉钉 or
Lark). ``can_send`` says whether an app has what sending needs. Every secret is a ``SecretStr`` and
usually written as ``${VAR}`` (substituted at load like every other value).

The callback URL of an app is ``<REMINDBOT_BASE_URL>/callback/<platform>/<id>``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

ID_PATTERN = r"^[A-Za-z0-9_.-]+$"


class AppBase(BaseModel):
    model_config = ConfigDict(defer_build=True,  # built on first validation (bot/config/models.py: Strict)
                              extra="forbid", populate_by_name=True)

    # What sending direct messages needs, as ``remindbot apps check`` names it (Chinese).
    send_needs: ClassVar[str] = "凭证"

    id: str = Field(pattern=ID_PATTERN, description="应用标识，回调地址中使用")
    name: str | None = Field(default=None, description="名称，仅供显示")
    answer_channel: str | None = Field(
        default=None,
        description="平台不支持直接回复时，用哪个频道（群机器人）回复确认结果（频道标识）",
    )

    @field_validator("api_base", "oapi_base", mode="after", check_fields=False)
    @classmethod
    def _api_base(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not value.startswith(("https://", "http://")) or any(c.isspace() for c in value)):
            raise ValueError(f"{info.field_name} 应为以 https:// 开头、不含空白的接口地址")
        return value.rstrip("/") if value else value

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def can_send(self) -> bool:
        """Whether this app has the credentials direct messages need."""
        return False

    @property
    def needs_callback(self) -> bool:
        """Whether the platform calls the service back (a callback URL it must reach); DingTalk's
        Stream mode connects out instead."""
        return True

    def callback_text(self, base_url: str) -> str:
        """What ``remindbot apps check`` says to paste as this app's callback (Chinese): the URL."""
        return callback_url(base_url, self)

    def secrets(self) -> list[str]:
        """Every secret value, for log masking."""
        out = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


def callback_url(base_url: str, app: AppBase) -> str:
    """The URL to paste into the platform's console for this app."""
    return f"{base_url.rstrip('/')}/callback/{app.platform}/{app.id}"  # type: ignore[attr-defined]
