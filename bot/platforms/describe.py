"""Platform answers in plain Chinese for admins, each with whether retrying makes sense.

Adapters call :func:`http_failure` first (429 and 5xx are worth retrying whatever the body says),
then :func:`code_failure` with the platform's own code table. Wording follows the pattern
"what is wrong and what to do（平台返回 代码：platform text）". The platform text passes through
:func:`scrub` because WeCom's errmsg carries links and hints; no message ever holds a webhook URL,
key, token or signing secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from bot import jsontext
from bot.platforms.base import DeliveryError, FailureKind

RETRY, CONFIG, REJECTED = FailureKind.RETRY, FailureKind.CONFIG, FailureKind.REJECTED

# code -> (kind, what the admin should know, default wait in seconds when no Retry-After)
CodeTable = Mapping[int, tuple[FailureKind, str, float | None]]

_URL = re.compile(r"(?i)\b(?:https?|wss?)://[^\s\]]+")
_KEYED = re.compile(r"(?i)\b(key|access_token|token|sign|secret|signature)\s*[=:]\s*[^\s,;&]+")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
_HINT = re.compile(r"(?i)[,;]?\s*hint:\s*\[[^\]]*\]")
_LEFTOVER = re.compile(r"(?i)\[\s*\]|[,;]?\s*more(\s+info\s+at)?\s*:?\s*$")

SAME_MINUTE_HINT = "；请勿让多条提醒在同一时刻集中发送"

WECOM: CodeTable = {
    -1: (RETRY, "企业微信系统繁忙，稍后重试", 5.0),
    45009: (RETRY, "发送太频繁，超过每个机器人每分钟20条的限制，被企业微信限流", 60.0),
    45033: (RETRY, "并发请求过多，被企业微信限流", 5.0),
    93000: (CONFIG, "Webhook 地址无效：key 填错了，或机器人已被移出群聊，请重新复制机器人的 Webhook 地址", None),
    40058: (REJECTED, "企业微信认为消息参数不合法（常见原因是内容超长）", None),
    40008: (REJECTED, "消息类型不被企业微信接受", None),
    44004: (REJECTED, "消息内容为空", None),
    45002: (REJECTED, "消息内容超过企业微信的长度限制", None),
}

DINGTALK: CodeTable = {
    130101: (RETRY, "发送太频繁，超过每分钟20条的限制，钉钉会限流10分钟", 600.0),
    660026: (RETRY, "发送太频繁，被钉钉限流", 60.0),
    310000: (CONFIG, "机器人安全设置校验失败", None),
    300001: (CONFIG, "Webhook 地址中的 access_token 无效：机器人可能已被移除，或地址复制不完整", None),
    300005: (CONFIG, "access_token 无效（外部群的机器人常见），请重新复制机器人的 Webhook 地址", None),
    460101: (REJECTED, "消息超过钉钉的 20000 字节上限", None),
    101002: (REJECTED, "消息超过钉钉的长度上限", None),
    40035: (REJECTED, "钉钉认为消息缺少必填参数", None),
}

# DingTalk puts four different security failures under 310000. Older servers answer in English
# ("sign not match", "invalid timestamp", "keywords not in content"); newer ones in Chinese as
# "description:机器人发送签名不匹配;solution:请确认签名和生成签名的时间戳…;link:…". Only the
# description names the failure (the solution text of a wrong secret mentions the timestamp),
# so it alone is read, most specific phrase first: a mismatched signature is a wrong secret, an
# expired one (签名过期, invalid timestamp) a clock off by more than an hour.
DINGTALK_310000 = [
    (re.compile(r"(?i)keyword|关键词"), "消息中没有机器人安全设置里的自定义关键词，请在频道配置中填写 keyword"),
    (re.compile(r"(?i)\bip\b|白名单"), "本服务器的出口 IP 不在机器人安全设置的 IP 白名单中"),
    (re.compile(r"(?i)timestamp|时间戳|过期|expired"), "签名已过期：服务器时钟与钉钉相差超过1小时，请校准服务器时间"),
    (re.compile(r"(?i)sign|签名"),
     "签名错误：加签密钥不匹配，请从机器人安全设置重新复制以 SEC 开头的密钥，填入频道的 secret"),
]
_DESCRIPTION = re.compile(r"(?i)(?:description|错误描述)\s*[:：]\s*([^;；]*)")


def failure_description(errmsg: str) -> str:
    """The part of a platform's message that names the failure (its "description:"), else all of it."""
    found = _DESCRIPTION.search(errmsg)
    return found[1] if found else errmsg


FEISHU: CodeTable = {
    11232: (RETRY, "发送太频繁（每分钟100条、每秒5条），被飞书限流" + SAME_MINUTE_HINT, 10.0),
    19001: (CONFIG, "Webhook 地址无效：机器人可能已被移除，或地址复制不完整", None),
    19021: (CONFIG, "签名校验失败：加签密钥不匹配，或服务器时钟与飞书相差超过1小时", None),
    19022: (CONFIG, "本服务器的出口 IP 不在机器人安全设置的 IP 白名单中", None),
    19024: (CONFIG, "消息中没有机器人安全设置里的自定义关键词，请在频道配置中填写 keyword", None),
    9499: (REJECTED, "飞书认为请求格式有误，或消息超过 20KB", None),
}

SLACK: Mapping[str, tuple[FailureKind, str]] = {
    "invalid_token": (CONFIG, "Webhook 地址无效或已被撤销，请在 Slack 中重新生成"),
    "no_team": (CONFIG, "Webhook 地址对应的 Slack 工作区不存在"),
    "no_service": (CONFIG, "Webhook 已被停用或删除"),
    "no_service_id": (CONFIG, "Webhook 地址不完整"),
    "team_disabled": (CONFIG, "Slack 工作区已停用"),
    "channel_not_found": (CONFIG, "Webhook 对应的频道不存在"),
    "channel_is_archived": (CONFIG, "Webhook 对应的频道已归档"),
    "action_prohibited": (CONFIG, "Slack 管理员禁止了此 Webhook 发送消息"),
    "posting_to_general_channel_denied": (CONFIG, "只有管理员能向该频道发消息"),
    "invalid_payload": (REJECTED, "Slack 认为消息格式有误"),
    "no_text": (REJECTED, "消息没有正文"),
    "msg_too_long": (REJECTED, "消息超过 Slack 的长度上限"),
    "rate_limited": (RETRY, "发送太频繁，被 Slack 限流"),
}


def scrub(text: str, limit: int = 120) -> str:
    """Platform text safe to show: no links, no key=value secrets, no long tokens, kept short."""
    text = _URL.sub("", text)
    text = _HINT.sub("", text)
    text = _LEFTOVER.sub("", _LEFTOVER.sub("", text.strip()).strip())
    text = _KEYED.sub(lambda match: f"{match[1]}=***", text)
    text = _LONG_TOKEN.sub("***", text)
    text = " ".join(text.split()).strip(" ,;")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (the HTTP-date form is rare here and ignored)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value.strip()))
            except ValueError:
                return None
    return None


def _with_detail(explanation: str, title: str, code: str | int, detail: str) -> str:
    detail = scrub(detail)
    return f"{explanation}（{title}返回 {code}{'：' + detail if detail else ''}）"


def http_failure(
    title: str, status: int, headers: Mapping[str, str], detail: str = "", *, only_retry: bool = False
) -> DeliveryError | None:
    """The failure an HTTP status alone shows, or None (2xx, or when ``only_retry`` and not 429/5xx)."""
    if 200 <= status < 300:  # every success passes here twice: nothing to build
        return None
    code = f"HTTP {status}"
    if status == 429:
        text = f"发送太频繁，被{title}限流"
        return DeliveryError(
            RETRY, _with_detail(text, title, code, detail), code=status, retry_after=retry_after(headers)
        )
    if status >= 500:
        text = f"{title}服务器暂时出错，稍后重试"
        return DeliveryError(
            RETRY, _with_detail(text, title, code, detail), code=status, retry_after=retry_after(headers)
        )
    if only_retry or 200 <= status < 300:
        return None
    if status in (401, 403):
        text = "Webhook 地址或密钥无效，请检查频道配置"
        return DeliveryError(CONFIG, _with_detail(text, title, code, detail), code=status)
    if status in (404, 410):
        text = "Webhook 地址不存在：机器人可能已被删除，或地址复制不完整"
        return DeliveryError(CONFIG, _with_detail(text, title, code, detail), code=status)
    text = f"{title}拒收了这条消息"
    return DeliveryError(REJECTED, _with_detail(text, title, code, detail), code=status)


def code_failure(
    title: str,
    table: CodeTable,
    code: int,
    errmsg: str,
    headers: Mapping[str, str],
    explanation: str | None = None,
) -> DeliveryError:
    """A non-zero platform code as a :class:`DeliveryError`; unknown codes count as rejected."""
    kind, text, wait = table.get(code, (REJECTED, f"{title}拒收了这条消息", None))
    message = _with_detail(explanation or text, title, code, errmsg)
    waited = retry_after(headers) if kind is RETRY else None
    return DeliveryError(kind, message, code=code, retry_after=waited if waited is not None else wait)


def unreadable(title: str, status: int) -> DeliveryError:
    """A 2xx answer that is not the platform's JSON: the message may or may not have arrived."""
    return DeliveryError(REJECTED, f"{title}的答复无法识别，消息可能未送达（HTTP {status}）", code=status)


def read_coded_answer(
    title: str,
    table: CodeTable,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    code_keys: tuple[str, ...] = ("errcode",),
    msg_keys: tuple[str, ...] = ("errmsg",),
    explain: Callable[[int, str], str | None] = lambda code, errmsg: None,
) -> None:
    """Read a ``{"errcode": 0, ...}``-style answer; raise :class:`DeliveryError` unless it is 0."""
    text = body.decode("utf-8", errors="replace")
    failure = http_failure(title, status, headers, text, only_retry=True)
    if failure:
        raise failure
    try:
        data = jsontext.loads(text)
    except ValueError:
        data = None
    code = _first(data, code_keys)
    if code is not None and code != 0:
        errmsg = str(_first(data, msg_keys) or "")
        raise code_failure(title, table, code, errmsg, headers, explain(code, errmsg))
    failure = http_failure(title, status, headers, text)
    if failure:
        raise failure
    if code is None:
        raise unreadable(title, status)


def _first(data: object, keys: tuple[str, ...]) -> Any:
    if not isinstance(data, dict):
        return None
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
    return None
