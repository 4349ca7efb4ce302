"""Direct messages through a platform app: the outbox "channel" of an app, and the sender base.

An app's direct messages use the outbox like every other message: the row's ``channel_id`` is
``app:<app id>``, its lane (``robot``) is ``app:<platform>:<app id>`` (one lane per app, paced by
the platform's per-app limits), and the recipient's platform user id is in the stored body. The
recipient is the first mention of the platform-neutral :class:`Message`.

A sender implements the platform interface of ``base.py`` (build, oversize, prepare, read_answer)
and adds what app APIs need beyond a webhook: ``fetch_token`` (the platform's token endpoint) and
``token_invalid`` (the platform's answer that a token is invalid or expired). :meth:`AppSender.send`
gets the token from the shared :class:`~bot.platforms.tokens.TokenCache`, sends, and when the
platform says the token is invalid, drops it, fetches a new one once and sends again once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field

from bot import jsontext
from bot.platforms.apps import AppBase
from bot.platforms.base import (
    ChannelBase,
    ChartWay,
    DeliveryError,
    FailureKind,
    HttpRequest,
    Limits,
    Message,
    PublicParts,
)
from bot.platforms.tokens import TokenCache

if TYPE_CHECKING:  # imported where a request is made: the schedules' models import this module
    import aiohttp

CHANNEL_PREFIX = "app:"



def api_host(app: Any) -> str:
    """The host name of the app's API (``api``/``api_base``); never a path, query or credential."""
    base = getattr(app, "api", None) or getattr(app, "api_base", None) or ""
    return urlsplit(str(base)).hostname or "平台接口"


def network_failure(exc: BaseException, host: str) -> str:
    """What failed on the network, in plain Chinese, naming the host (never a URL, query or secret)."""
    import aiohttp  # loaded already when a request failed; not at import (the schedules' models import this)

    host = getattr(exc, "host", None) or host
    if isinstance(exc, TimeoutError):
        return f"连接 {host} 超时（请检查网络、代理或防火墙）"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"无法解析主机名 {host}（DNS 解析失败：请检查主机名、DNS 或代理设置）"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"与 {host} 建立 HTTPS 连接失败（证书或 TLS 校验未通过）"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"无法连接到 {host}（连接被拒绝或网络不通：请检查网络、代理或防火墙）"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return f"{host} 中途断开了连接（稍后重试可能成功）"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"接口地址无效（主机 {host}）：请检查 api_base"
    return f"与 {host} 通信时网络出错（请检查网络、代理或防火墙）"


class AppChannel(ChannelBase):
    """An app as an outbox channel (built by the runtime from the ``apps:`` section, never from YAML)."""

    model_config = ConfigDict(defer_build=True,  # built on first validation (bot/config/models.py: Strict)
                              extra="forbid", arbitrary_types_allowed=True)

    platform: str
    app: Any = Field(exclude=True)  # the AppConfig
    tokens: Any = Field(default=None, exclude=True)  # the runtime's TokenCache

    @classmethod
    def of(cls, app: AppBase, tokens: TokenCache | None) -> AppChannel:
        # Built, not validated: the id has a ":" that no YAML channel id can have, so they never clash.
        return cls.model_construct(id=f"{CHANNEL_PREFIX}{app.id}", name=f"{app.label}（应用私信）",
                                   platform=app.platform, app=app, tokens=tokens)  # type: ignore[attr-defined]

    @property
    def dry_run(self) -> bool:
        return False

    @property
    def lane(self) -> str:
        return f"app:{self.platform}:{self.app.id}"

    def webhook_url(self) -> str:
        return ""


def recipient(message: Message, platform: str) -> str:
    """The platform user id of the message's recipient (its first mention)."""
    for mention in message.mentions[:1]:
        user_id = mention.ids.get(platform)
        if user_id:
            return user_id
    raise ValueError(f"私信缺少接收人的 {platform} 用户标识")


def answer_json(body: bytes) -> dict[str, Any]:
    try:
        data = jsontext.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def token_answer(resp: aiohttp.ClientResponse, platform: str,
                       field: str = "api_base") -> tuple[int, dict[str, Any]]:
    """Read a token endpoint's answer: ``(HTTP status, JSON object)``.

    Raises :class:`DeliveryError` (``CONFIG``) when the address is not the platform's API: an
    HTTP 404, or (below 500, not 429) an answer that is not a JSON object, such as an HTML page of
    a wrong private-deployment host. A 5xx answer that is not a JSON object stays ``RETRY`` (a
    real gateway's 502/503 page is temporary) but names the host and, should it persist, the
    setting to check. The messages name the host and the setting (``field``), never the path,
    query or a credential; the credentials are not blamed.
    """
    status, body = resp.status, await resp.read()
    try:
        data = jsontext.loads(body or b"null")
    except ValueError:
        data = None
    host = resp.url.host or "平台接口"
    if status == 404 or (status < 500 and status != 429 and not isinstance(data, dict)):
        what = "找不到该地址" if status == 404 else "返回的不是接口数据"
        raise DeliveryError(FailureKind.CONFIG, f"{host} {what}（HTTP {status}）：这不是{platform}开放平台的接口地址，"
                            f"请检查 {field}（私有部署请填写其接口主机）", code=str(status))
    if status >= 500 and not isinstance(data, dict):
        raise DeliveryError(FailureKind.RETRY, f"{host} 返回了服务器错误（HTTP {status}），答复不是接口数据；"
                            f"如果一直如此，请检查 {field} 是否为{platform}开放平台的接口地址", code=str(status))
    return status, data if isinstance(data, dict) else {}


class AppSender(ABC):
    """Base of the app senders: the shared token handling and the send-with-one-refresh."""

    name: ClassVar[str]
    title: ClassVar[str]
    platform: ClassVar[str]
    channel_model: ClassVar[type[ChannelBase]] = AppChannel
    limits: ClassVar[Limits]
    public: ClassVar[PublicParts] = PublicParts()
    chart: ClassVar[ChartWay] = "link"
    # What a fetched token means, as ``remindbot apps check`` says it (Chinese).
    token_granted: ClassVar[str] = "平台已发放访问令牌"

    def title_for(self, app: Any) -> str:
        """What direct messages through ``app`` are called on the platform, for admins (Chinese)."""
        return self.title

    # ---- what each platform provides

    @abstractmethod
    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        ...

    def oversize(self, body: dict[str, Any]) -> str | None:
        return None

    @abstractmethod
    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float, token: str = "") -> HttpRequest:
        ...

    @abstractmethod
    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        ...

    def token_invalid(self, status: int, body: bytes) -> bool:
        return False

    @abstractmethod
    async def fetch_token(self, http: aiohttp.ClientSession, app: Any,
                          deadline: aiohttp.ClientTimeout | None = None) -> tuple[str, float]:
        """(token, lifetime in seconds) from the platform; raises DeliveryError (Chinese, no secret)."""
        ...

    @abstractmethod
    def credentials(self, app: Any) -> tuple[str, ...]:
        ...

    # ---- shared

    def token_key(self, app: Any) -> str:
        return TokenCache.key(app.platform, app.id, *self.credentials(app))

    async def token(self, http: aiohttp.ClientSession, channel: AppChannel,
                    deadline: aiohttp.ClientTimeout | None = None) -> str:
        app, cache = channel.app, channel.tokens
        if cache is None:
            raise DeliveryError(FailureKind.CONFIG, "内部错误：应用通道没有令牌缓存")

        async def fetch() -> tuple[str, float]:
            import aiohttp

            from bot.metrics import TOKEN_FETCHES  # not at import: the schedules' models import this module

            try:
                got = await self.fetch_token(http, app, deadline)
            except DeliveryError as err:
                TOKEN_FETCHES.labels(self.platform, "refused" if err.permanent else "failed").inc()
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                TOKEN_FETCHES.labels(self.platform, "failed").inc()
                why = network_failure(exc, api_host(app))
                raise DeliveryError(FailureKind.RETRY, f"获取应用访问令牌失败：{why}") from None
            TOKEN_FETCHES.labels(self.platform, "ok").inc()
            return got

        return str(await cache.get(self.token_key(app), fetch))

    async def send(self, http: aiohttp.ClientSession, channel: ChannelBase, body: dict[str, Any], now: float,
                   deadline: aiohttp.ClientTimeout | None = None) -> tuple[int, Mapping[str, str], bytes]:
        """Send one stored body with the app's token; on "token invalid", refresh once and send again once."""
        assert isinstance(channel, AppChannel)
        answer: tuple[int, Mapping[str, str], bytes] = (0, {}, b"")
        for attempt in range(2):
            token = await self.token(http, channel, deadline)
            request = self.prepare(channel, body, now, token)
            async with http.post(request.url, data=request.body, headers=dict(request.headers),
                                 timeout=deadline) as response:
                answer = response.status, response.headers, await response.read()
            if attempt == 0 and self.token_invalid(answer[0], answer[2]):
                channel.tokens.invalidate(self.token_key(channel.app), token)
                continue
            break
        return answer
