"""The one small interface every messaging platform implements.

A platform module holds three things: its channel config model (a pydantic model with the
platform's options, unknown keys rejected), its limits, and an adapter with three steps:

* ``build(channel, message)`` turns a platform-neutral :class:`Message` into one or more request
  bodies (JSON-able dicts), converting markdown to the platform's dialect and splitting or
  shortening what exceeds the platform's size or mention caps;
* ``prepare(channel, body, now)`` turns one stored body into an HTTP request (URL, headers,
  bytes), signing it where the platform wants a signature (signatures carry a timestamp, so
  this runs at send time, not when the body is stored);
* ``oversize(body)`` says which of the platform's documented limits a body breaks, if any: the
  limits are stated once, in the platform module, and ``build`` keeps every body within them
  (mentions, names, keyword, markers, links and buttons included);
* ``read_answer(status, headers, body)`` reads the platform's answer and raises
  :class:`DeliveryError` (with its :class:`FailureKind`) when it is not a success.

Each platform also says, in ``public`` (:class:`PublicParts`), which part of its webhook URLs after
the host is public; everything else is masked wherever a webhook is shown or could be logged; and,
in ``chart`` (:data:`ChartWay`), how a report's chart goes with a message.

Adding a platform = its folder, two lines in ``registry.py`` (an import and its ``SPECS`` entry), its tests
(docs/platforms.md).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ChannelBase(BaseModel):
    """Options every channel has. Platform modules subclass it with ``platform: Literal[...]``."""

    model_config = ConfigDict(defer_build=True,  # built on first validation (bot/config/models.py: Strict)
                              extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="频道标识，在提醒中引用")
    name: str = Field(description="群名称，例如 “市直机关党务工作群”")
    webhook: SecretStr | None = Field(
        default=None,
        description="机器人 Webhook 地址；可写成 ${ENV_VAR} 从环境变量读取；留空则只记录、不发送（未配置 webhook）",
    )
    secret: SecretStr | None = Field(default=None, description="加签密钥；可写成 ${ENV_VAR} 从环境变量读取")
    personal_links: bool = Field(
        default=False,
        description="是否允许在此频道发送个人确认链接（群聊中所有人可见，默认不允许）",
    )
    format: str = Field(default="markdown", description="消息格式：text、markdown 或 card")
    rate_per_minute: int | None = Field(default=None, ge=1, description="每分钟最多发送条数（默认取平台公布的限额）")

    @field_validator("webhook", mode="before")
    @classmethod
    def _empty_webhook_is_dry_run(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        blank = next((i for i, ch in enumerate(text) if ch.isspace()), None)
        if blank is not None:
            what = "换行" if text[blank] in "\r\n" else "空格"
            where = "开头" if blank == 0 else ("末尾" if not text[blank:].strip() else f"第 {blank + 1} 个字符处")
            raise ValueError(f"webhook 的{where}有{what}：地址中不能有空白，请从群机器人设置中重新完整复制"
                             "（若来自环境变量，检查变量值末尾的换行）")
        if not text.startswith(("https://", "http://")):
            # The value itself is a secret: say what is wrong without repeating it.
            raise ValueError("webhook 应为以 https:// 开头的机器人地址（请从群机器人设置中完整复制）")
        return value

    @property
    def dry_run(self) -> bool:
        return self.webhook is None

    def webhook_url(self) -> str:
        return self.webhook.get_secret_value() if self.webhook else ""

    def secret_value(self) -> str:
        return self.secret.get_secret_value() if self.secret else ""

    def webhook_problem(self) -> str | None:
        """What is surely wrong with the webhook's shape for this platform (Chinese, never showing the
        URL), None when nothing is; checked by bot/config/sense.py for a channel that is not a dry run."""
        return None


class FailureKind(enum.StrEnum):
    RETRY = "retry"  # rate limited, 5xx, timeout, connection error: try again later
    CONFIG = "config"  # invalid key or token, signature mismatch, keyword or IP rule
    REJECTED = "rejected"  # the platform refused this message


class DeliveryError(Exception):
    """A send that did not succeed. ``message`` is Chinese, for admins, and holds no secret."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        code: str | int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.kind is not FailureKind.RETRY


@dataclass(frozen=True)
class Mention:
    """A person to @-mention, with every id the platforms may use."""

    person_id: str
    name: str
    mobile: str | None = None
    ids: Mapping[str, str] = field(default_factory=dict)  # platform name -> user id / open_id


@dataclass(frozen=True)
class Message:
    """A platform-neutral message: title, markdown body, mentions and an optional button."""

    title: str
    markdown: str
    mentions: tuple[Mention, ...] = ()
    mention_all: bool = False
    button_text: str | None = None
    button_url: str | None = None
    confirm_occurrence: int | None = None  # app messages: a confirm button for this occurrence


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # size cap of the message text, counted in UTF-8 bytes
    per_minute: int  # published per-robot rate limit
    per_second: int | None = None
    max_body_bytes: int | None = None  # cap on the whole request body
    max_mentions: int | None = None  # @-mentions per message; more are sent in further messages


# The usual request headers, one read-only object for every send: aiohttp takes a multidict as it
# is, where a plain dict made per request was converted into one at every send.
JSON_HEADERS: Mapping[str, str] = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))


@dataclass(frozen=True)
class HttpRequest:
    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=lambda: JSON_HEADERS)  # shared, read-only


HIDDEN = "***"


@dataclass(frozen=True)
class PublicParts:
    """What a platform publishes of its webhook URLs after the host; everything else is a credential.

    ``paths``: path prefixes that are the same for every robot of the platform
    (``/cgi-bin/webhook/send``), shown when the webhook's path starts with one; ``query_names``:
    whether query parameter names are shown (their values never are). The default shows nothing
    after the host, so a platform that says nothing, and any webhook it does not recognise, is
    masked whole: no list of secret-sounding names decides what is shown.
    """

    paths: tuple[str, ...] = ()
    query_names: bool = False

    def _split(self, url: str) -> tuple[str, str, str, str, str]:
        """(scheme://host[:port], public path, hidden path, query, fragment); user info dropped."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return "", "", url, "", ""
        host = parts.netloc.rpartition("@")[2]
        origin = f"{parts.scheme}://{HIDDEN + '@' if '@' in parts.netloc else ''}{host}"
        public = next((p for p in self.paths if parts.path.startswith(p)), "")
        return origin, public, parts.path[len(public):], parts.query, parts.fragment

    def mask(self, url: str) -> str:
        """The webhook as admins may see it: host and public parts, ``***`` for the rest."""
        origin, public, hidden, query, fragment = self._split(url)
        if not origin:
            return HIDDEN
        if not public and not self.query_names:  # nothing public: one mask for all after the host
            return origin + ("/" + HIDDEN if hidden.strip("/") or query or fragment else hidden)
        shown = origin + public
        if hidden.strip("/"):
            shown += HIDDEN if shown.endswith("/") else "/" + HIDDEN
        else:
            shown += hidden
        if query:
            names = _query_names(query) if self.query_names else []
            shown += "?" + ("&".join(f"{name}={HIDDEN}" for name in names) if names else HIDDEN)
        if fragment:
            shown += "#" + HIDDEN
        return shown

    def secrets(self, url: str) -> list[str]:
        """Every hidden part of the webhook, as written and percent-decoded, for log masking.

        Path segments are listed on their own only when they look like keys (8+ characters with a
        digit, or 16+), so a word such as ``webhook`` in a path does not vanish from every log line.
        """
        origin, public, hidden, query, fragment = self._split(url)
        netloc = url.split("://", 1)[-1].split("/", 1)[0]
        userinfo = netloc.rpartition("@")[0]
        rest = url[len(origin) + len(public):] if origin and url.startswith(origin + public) else url
        found = [url, rest, hidden, query, fragment, userinfo, *userinfo.split(":")]
        found += [value for _, value in parse_qsl(query, keep_blank_values=True)]
        found += [seg for seg in hidden.split("/") if (len(seg) >= 8 and any(c.isdigit() for c in seg))
                  or len(seg) >= 16]
        found += [unquote(item) for item in found]
        return [item for item in dict.fromkeys(found) if item.strip("/")]


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def _query_names(query: str) -> list[str]:
    """The parameter names of ``a=1&b=2``; none when any part is not ``name=value`` with a plain name."""
    pairs = [part.partition("=") for part in query.split("&") if part]
    if not pairs or any(not sep or not _NAME.fullmatch(name) for name, sep, _ in pairs):
        return []
    return [name for name, _, _ in pairs]


# How a report's chart (a PNG, also served under a signed URL) goes with the message's text table:
# "image": as an image message of its own after the text (the platform's ``chart_body``, see
# :class:`ImageChart`); "inline": the URL as an image in the markdown; "link": a link to the URL.
ChartWay = Literal["image", "inline", "link"]


class Platform(Protocol):
    name: ClassVar[str]
    title: ClassVar[str]  # Chinese name shown to admins
    channel_model: ClassVar[type[ChannelBase]]
    limits: ClassVar[Limits]
    public: ClassVar[PublicParts]  # what of a webhook URL after the host may be shown
    chart: ClassVar[ChartWay]  # how a report's chart goes with the message ("link" where nothing better)

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]: ...

    def oversize(self, body: dict[str, Any]) -> str | None:
        """Which documented limit ``body`` breaks (Chinese, for admins), or None when it fits."""
        ...

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest: ...

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...


class ImageChart(Protocol):
    """A platform whose ``chart`` is ``"image"``: it sends the chart as a message of its own."""

    def chart_body(self, picture: Any) -> dict[str, Any]:
        """The request body of an image message of ``picture`` (bot.reporting.chart.Picture: PNG,
        its base64 and MD5), sent after the text table."""
        ...
