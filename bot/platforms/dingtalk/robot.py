"""DingTalk (钉钉) custom robot: signed when the channel has a secret; text, markdown, actionCard.

Signing ("加签"): ``timestamp`` (ms) and ``sign = base64(HMAC_SHA256(key=secret,
msg=f"{timestamp}\\n{secret}"))`` go in the query string, percent-encoded exactly once (``%3D``,
never ``%253D``, which DingTalk answers with 310000 "sign not match"). The timestamp must be
within an hour of DingTalk's clock, so signing happens in ``prepare``, at send time.

Mentions: a mobile goes in ``at.atMobiles`` (preferred, it works in every group), otherwise the
DingTalk userid in ``at.atUserIds``; the matching "@mobile"/"@userid" text is also written into the
content, since DingTalk only highlights mentions whose text appears there. actionCard has no
``at``, so a card is followed by a short text message that carries the mentions.

Limits: the whole body ≤ 20000 bytes; 20 messages a minute per robot (exceeding blocks the robot
for 10 minutes). The mention cap is not documented; we assume 50 per message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote_plus, urlsplit, urlunsplit

from bot.platforms import markup
from bot.platforms.base import ChannelBase, ChartWay, HttpRequest, Limits, Mention, Message, PublicParts
from bot.platforms.describe import DINGTALK, DINGTALK_310000, failure_description, read_coded_answer
from bot.platforms.dingtalk.config import DingTalkChannel

MAX_BODY_BYTES = 20000
# render(message, people, keyword, at_line, text budget) -> bodies
Render = Callable[[Message, Sequence[Mention], str | None, str, int], list[dict[str, Any]]]
SKELETON_BYTES = 400  # msgtype, field names, button, at lists are added on top of this estimate


def sign(secret: str, timestamp_ms: int) -> str:
    """The base64 signature (not yet URL-encoded) for ``timestamp_ms``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, now: float) -> str:
    """``url`` with a fresh ``timestamp`` and once-encoded ``sign``, replacing any pasted ones."""
    timestamp = round(now * 1000)
    parts = urlsplit(url)
    kept = [item for item in parts.query.split("&") if item and item.split("=", 1)[0] not in ("timestamp", "sign")]
    kept += [f"timestamp={timestamp}", f"sign={quote_plus(sign(secret, timestamp))}"]
    return urlunsplit(parts._replace(query="&".join(kept)))


def _at_token(person: Mention) -> str:
    return person.mobile or person.ids.get("dingtalk") or person.name


def _at(people: Sequence[Mention], mention_all: bool) -> dict[str, Any]:
    return {
        "atMobiles": [p.mobile for p in people if p.mobile],
        "atUserIds": [uid for p in people if not p.mobile and (uid := p.ids.get("dingtalk"))],
        "isAtAll": mention_all,
    }


def _at_line(people: Sequence[Mention]) -> str:
    return " ".join(f"@{_at_token(p)}" for p in people)


def _hard_breaks(text: str) -> str:
    """DingTalk joins single newlines; two trailing spaces keep each line on its own."""
    return re.sub(r"(?<=[^\n])\n(?=[^\n])", "  \n", text)


class DingTalk:
    name: ClassVar[str] = "dingtalk"
    title: ClassVar[str] = "钉钉"
    channel_model: ClassVar[type[ChannelBase]] = DingTalkChannel
    public: ClassVar[PublicParts] = PublicParts(paths=("/robot/send",), query_names=True)
    chart: ClassVar[ChartWay] = "inline"  # markdown shows an image by URL: the chart under the table
    limits: ClassVar[Limits] = Limits(
        max_bytes=MAX_BODY_BYTES, per_minute=20, max_body_bytes=MAX_BODY_BYTES, max_mentions=50
    )

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        keyword = getattr(channel, "keyword", None)
        batches = markup.mention_batches(message, self.limits.max_mentions)
        bodies = self._main(channel.format, message, batches[0], keyword)
        for batch in batches[1:]:
            bodies.append(self._mentions(message, batch, False, keyword))
        return bodies

    def _main(self, fmt: str, message: Message, people: Sequence[Mention], keyword: str | None) -> list[dict[str, Any]]:
        if fmt == "text":
            return self._fit(message, people, keyword, self._text_bodies)
        if fmt == "card" and message.button_url:
            bodies = self._fit(message, (), keyword, self._card_bodies)
            if people or message.mention_all:
                bodies.append(self._mentions(message, people, message.mention_all, keyword))
            return bodies
        return self._fit(message, people, keyword, self._markdown_bodies)

    def _fit(
        self, message: Message, people: Sequence[Mention], keyword: str | None, render: Render
    ) -> list[dict[str, Any]]:
        at_line = _at_line(people)
        fixed = markup.json_len(message.title) + markup.json_len(at_line) + 40 * len(people)
        fixed += markup.json_len(keyword or "") + len(message.button_url or "") + SKELETON_BYTES

        def make(budget: int) -> list[dict[str, Any]]:
            return render(message, people, keyword, at_line, budget)

        return markup.fit_bodies(make, MAX_BODY_BYTES - fixed, MAX_BODY_BYTES)

    def _split(self, text: str, budget: int, keyword: str | None) -> list[str]:
        parts = markup.split_text(text, budget, markup.json_len)
        return [markup.with_keyword(part, keyword) for part in parts]

    def _text_bodies(
        self, message: Message, people: Sequence[Mention], keyword: str | None, at_line: str, budget: int
    ) -> list[dict[str, Any]]:
        lines = [markup.plain(markup.with_title(message))]
        if message.button_url:
            lines.append(f"{markup.button_text(message)}：{message.button_url}")
        parts = self._split("\n\n".join(lines), budget, keyword)
        parts[0] = f"{parts[0]}\n\n{at_line}" if at_line else parts[0]
        return [
            {
                "msgtype": "text",
                "text": {"content": part},
                "at": _at(people if i == 0 else (), message.mention_all and i == 0),
            }
            for i, part in enumerate(parts)
        ]

    def _markdown_parts(self, message: Message, budget: int, keyword: str | None, with_link: bool) -> list[str]:
        lines = [_hard_breaks(markup.with_title(message))]
        if with_link and message.button_url:
            lines.append(f"[{markup.button_text(message)}]({message.button_url})")
        return self._split("\n\n".join(lines), budget, keyword)

    def _markdown_bodies(
        self, message: Message, people: Sequence[Mention], keyword: str | None, at_line: str, budget: int
    ) -> list[dict[str, Any]]:
        parts = self._markdown_parts(message, budget, keyword, with_link=True)
        parts[0] = f"{parts[0]}\n\n{at_line}" if at_line else parts[0]
        return [
            {
                "msgtype": "markdown",
                "markdown": {"title": message.title, "text": part},
                "at": _at(people if i == 0 else (), message.mention_all and i == 0),
            }
            for i, part in enumerate(parts)
        ]

    def _card_bodies(
        self, message: Message, people: Sequence[Mention], keyword: str | None, at_line: str, budget: int
    ) -> list[dict[str, Any]]:
        parts = self._markdown_parts(message, budget, keyword, with_link=False)
        bodies: list[dict[str, Any]] = [
            {"msgtype": "markdown", "markdown": {"title": message.title, "text": part}} for part in parts[:-1]
        ]
        bodies.append(
            {
                "msgtype": "actionCard",
                "actionCard": {
                    "title": message.title,
                    "text": parts[-1],
                    "btnOrientation": 0,
                    "singleTitle": markup.button_text(message),
                    "singleURL": message.button_url,
                },
            }
        )
        return bodies

    def _mentions(
        self, message: Message, people: Sequence[Mention], mention_all: bool, keyword: str | None
    ) -> dict[str, Any]:
        """A short text carrying mentions the card could not, or those over the cap."""
        content = f"请查收提醒：{markup.shorten(message.title, 300)}"
        if line := _at_line(people):
            content += f"\n{line}"
        content = markup.with_keyword(content, keyword)
        return {"msgtype": "text", "text": {"content": content}, "at": _at(people, mention_all)}

    def oversize(self, body: dict[str, Any]) -> str | None:
        size = len(markup.json_bytes(body))
        return f"请求体为 {size} 字节，超过钉钉上限 {MAX_BODY_BYTES} 字节" if size > MAX_BODY_BYTES else None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest:
        url = markup.require_webhook(channel)
        if secret := channel.secret_value():
            url = signed_url(url, secret, now)
        return HttpRequest(url=url, body=markup.json_bytes(body))

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        read_coded_answer(self.title, DINGTALK, status, headers, body, explain=_explain)


def _explain(code: int, errmsg: str) -> str | None:
    """Which of DingTalk's security checks failed, read from the 310000 message's description."""
    if code != 310000:
        return None
    description = failure_description(errmsg)
    for pattern, explanation in DINGTALK_310000:
        if pattern.search(description):
            return explanation
    return "机器人安全设置校验失败：请检查加签密钥、自定义关键词和 IP 白名单"
