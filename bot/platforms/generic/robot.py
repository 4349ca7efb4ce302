"""Generic JSON webhook: posts the message as JSON with an HMAC-SHA256 signature header.

Body (UTF-8 JSON)::

    {"title": "…", "markdown": "…", "text": "…",
     "mentions": [{"person_id": "…", "name": "…", "mobile": "…" | null, "ids": {"wecom": "…"}}],
     "mention_all": false, "button": {"text": "确认", "url": "https://…"} | null}

``markdown`` is the neutral markdown; ``text`` the same as plain text (links as "文字（网址）").
A message over 64 KiB of markdown is split like on the other platforms ("（续 2/3）").

When the channel has a secret, two headers are added:

* ``X-Remindbot-Timestamp``: Unix time in seconds;
* ``X-Remindbot-Signature``: ``sha256=`` + hex(HMAC_SHA256(key=secret, msg=f"{timestamp}.{raw_body}")).

A receiver verifies by reading the raw body bytes (before any JSON parsing), computing
``hmac.new(secret, timestamp.encode() + b"." + raw_body, sha256).hexdigest()``, comparing it with
the header using ``hmac.compare_digest``, and rejecting timestamps more than 5 minutes from its own
clock (which stops replays). Any 2xx answer is success; 429 and 5xx are retried (``Retry-After``
honoured), 401/403/404 mean the configuration is wrong, other statuses reject the message.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

from bot.platforms import markup
from bot.platforms.base import ChannelBase, ChartWay, HttpRequest, Limits, Message, PublicParts
from bot.platforms.describe import http_failure
from bot.platforms.generic.config import GenericChannel

TIMESTAMP_HEADER = "X-Remindbot-Timestamp"
SIGNATURE_HEADER = "X-Remindbot-Signature"
MAX_BYTES = 65536


def signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + raw_body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class Generic:
    name: ClassVar[str] = "generic"
    title: ClassVar[str] = "通用 Webhook"
    channel_model: ClassVar[type[ChannelBase]] = GenericChannel
    limits: ClassVar[Limits] = Limits(max_bytes=MAX_BYTES, per_minute=60)
    # Anyone's receiver: nothing after the host is known to be public.
    public: ClassVar[PublicParts] = PublicParts()
    chart: ClassVar[ChartWay] = "link"

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        # The body carries the title in its own field: an opening line that only repeats it is dropped.
        parts = markup.split_text(markup.without_same_title(message), MAX_BYTES, markup.utf8_len)
        return [self._body(message, part, index == 0) for index, part in enumerate(parts)]

    @staticmethod
    def _body(message: Message, markdown: str, first: bool) -> dict[str, Any]:
        button = None
        if message.button_url:
            button = {"text": markup.button_text(message), "url": message.button_url}
        mentions = [  # only the first part mentions: a group message's later parts need not build the list
            {"person_id": p.person_id, "name": p.name, "mobile": p.mobile, "ids": dict(p.ids)} for p in message.mentions
        ] if first else []
        return {
            "title": message.title,
            "markdown": markdown,
            "text": markup.plain(markdown),
            "mentions": mentions,
            "mention_all": message.mention_all and first,
            "button": button,
        }

    def oversize(self, body: dict[str, Any]) -> str | None:
        size = markup.utf8_len(body["markdown"])
        return f"markdown 为 {size} 字节，超过上限 {MAX_BYTES} 字节" if size > MAX_BYTES else None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest:
        raw = markup.json_bytes(body)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if secret := channel.secret_value():
            timestamp = int(now)
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = signature(secret, timestamp, raw)
        return HttpRequest(url=markup.require_webhook(channel), body=raw, headers=headers)

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        text = body.decode("utf-8", errors="replace")
        failure = http_failure(self.title, status, headers, text)
        if failure:
            raise failure
