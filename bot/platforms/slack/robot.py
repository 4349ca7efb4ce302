"""Slack incoming webhook: mrkdwn text.

``POST https://hooks.slack.com/services/T…/B…/…`` with ``{"text": …}``; success is HTTP 200 with the
body ``ok`` (workflow webhooks answer 200 with other bodies, which also counts as success). Errors
come as non-200 with a short text body: 403/404 ``invalid_token``, ``no_team``,
``channel_not_found`` … (configuration), 400 ``invalid_payload`` (rejected), 429 with
``Retry-After`` and 5xx (retry).

mrkdwn: ``**bold**`` → ``*bold*``, ``[t](u)`` → ``<u|t>``, headings → bold lines, and ``& < >``
escaped in text. Mentions are ``<@member id>``; "all" is ``<!channel>``. The text limit is 40,000
characters (Slack counts characters, so we do too); about one message a second per webhook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bot.platforms import markup
from bot.platforms.base import ChannelBase, ChartWay, DeliveryError, HttpRequest, Limits, Mention, Message, PublicParts
from bot.platforms.describe import SLACK, http_failure, scrub
from bot.platforms.slack.config import SlackChannel

MAX_CHARS = 40000


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Mrkdwn(markup.Dialect):
    def text(self, text: str) -> str:
        return escape(text)

    def bold(self, text: str) -> str:
        return f"*{escape(text)}*"

    def link(self, text: str, url: str) -> str:
        safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
        return f"<{safe_url}|{escape(text).replace('|', '｜')}>"

    def code(self, text: str) -> str:
        return f"`{escape(text)}`"

    def heading(self, level: int, inline: str) -> str:
        return f"*{inline.replace('*', '')}*"

    def item(self, indent: str, marker: str, inline: str) -> str:
        return f"{indent}{'•' if marker in '-*+' else marker} {inline}"


def _mention_tokens(people: Sequence[Mention], mention_all: bool) -> list[str]:
    tags = [f"<@{uid}>" if (uid := p.ids.get("slack")) else f"@{escape(p.name)}" for p in people]
    if mention_all:
        tags.append("<!channel>")
    return tags


class Slack:
    name: ClassVar[str] = "slack"
    title: ClassVar[str] = "Slack"
    channel_model: ClassVar[type[ChannelBase]] = SlackChannel
    # Slack counts characters, not bytes: max_bytes holds its 40,000-character text limit
    limits: ClassVar[Limits] = Limits(max_bytes=MAX_CHARS, per_minute=60, per_second=1)
    public: ClassVar[PublicParts] = PublicParts(paths=("/services/", "/workflows/", "/triggers/"))
    chart: ClassVar[ChartWay] = "link"

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        if channel.format == "text":
            lines = [escape(markup.plain(markup.with_title(message)))]
        else:
            lines = [Mrkdwn().convert(markup.with_title(message))]
        if message.button_url:
            lines.append(Mrkdwn().link(markup.button_text(message), message.button_url))
        # Mentions are counted before the split: at most half of the first message, the rest follow.
        tokens = _mention_tokens(message.mentions, message.mention_all)
        inline = markup.fit_tokens(tokens, MAX_CHARS // 2, markup.char_len)
        at_line = " ".join(tokens[:inline])
        first = MAX_CHARS - (len(at_line) + 2 if at_line else 0)
        parts = markup.split_text("\n\n".join(lines), MAX_CHARS, markup.char_len, first_budget=first)
        if at_line:
            parts[0] = f"{parts[0]}\n\n{at_line}"
        head = "请查收以上提醒："
        rest = markup.pack_tokens(tokens[inline:], MAX_CHARS - len(head) - 1, markup.char_len)
        return [{"text": part} for part in parts] + [{"text": f"{head}\n{line}"} for line in rest]

    def oversize(self, body: dict[str, Any]) -> str | None:
        size = len(body["text"])
        return f"text 为 {size} 个字符，超过 Slack 上限 {MAX_CHARS} 个字符" if size > MAX_CHARS else None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest:
        return HttpRequest(url=markup.require_webhook(channel), body=markup.json_bytes(body))

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        text = body.decode("utf-8", errors="replace").strip()
        failure = http_failure(self.title, status, headers, text, only_retry=True)
        if failure:
            raise failure
        if text in SLACK:
            kind, explanation = SLACK[text]
            raise DeliveryError(kind, f"{explanation}（Slack 返回 {status}：{text}）", code=text)
        failure = http_failure(self.title, status, headers, scrub(text))
        if failure:
            raise failure
