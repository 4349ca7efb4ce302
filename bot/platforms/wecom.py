"""WeCom (企业微信) group robot, which 政务微信 speaks too: text and markdown, @ by mobile or user id.

The webhook is the whole URL (``.../cgi-bin/webhook/send?key=...``), so a 政务微信 deployment on
its own host works unchanged. No signature: the key in the URL is the credential.

Mentions. ``text`` carries ``mentioned_list`` (userids), ``mentioned_mobile_list`` (mobiles) and
"@all". ``markdown`` can only @ by ``<@userid>`` in the content, so people known only by mobile
and "@all" are @-mentioned in a short text message sent right after the markdown one ("请查收上一
条提醒：…"): the markdown keeps its formatting and everyone is still notified. People with neither
a userid nor a mobile are named as plain "@姓名".

Limits: text 2048 bytes, markdown 4096 bytes (UTF-8), 20 messages a minute per robot. The mention
cap per message is not documented; we assume 50 and send further people in extra messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from bot.platforms import markup
from bot.platforms.base import ChannelBase, HttpRequest, Limits, Mention, Message, PublicParts
from bot.platforms.describe import WECOM, read_coded_answer


class WeComChannel(ChannelBase):
    platform: Literal["wecom"] = Field(description="企业微信或政务微信群机器人")
    format: Literal["text", "markdown"] = Field(
        default="markdown", description="text（支持@成员）或 markdown（@写在正文中）"
    )


TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 4096
TITLE_MAX_BYTES = 300


def _userid(person: Mention) -> str | None:
    return person.ids.get("wecom")


def _unreachable(people: Sequence[Mention]) -> list[Mention]:
    return [p for p in people if not _userid(p) and not p.mobile]


def _text_body(content: str, people: Sequence[Mention], mention_all: bool) -> dict[str, Any]:
    text: dict[str, Any] = {"content": content}
    userids = [uid for p in people if (uid := _userid(p))]
    mobiles = [p.mobile for p in people if not _userid(p) and p.mobile]
    if mention_all:
        userids.append("@all")
    if userids:
        text["mentioned_list"] = userids
    if mobiles:
        text["mentioned_mobile_list"] = mobiles
    return {"msgtype": "text", "text": text}


def _at_names(people: Sequence[Mention]) -> str:
    return " ".join(f"@{p.name}" for p in people)


class WeCom:
    name: ClassVar[str] = "wecom"
    title: ClassVar[str] = "企业微信"
    channel_model: ClassVar[type[ChannelBase]] = WeComChannel
    limits: ClassVar[Limits] = Limits(max_bytes=MARKDOWN_MAX_BYTES, per_minute=20, max_mentions=50)
    public: ClassVar[PublicParts] = PublicParts(paths=("/cgi-bin/webhook/send",), query_names=True)

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        batches = markup.mention_batches(message, self.limits.max_mentions)
        as_text = channel.format == "text"
        bodies = (self._text if as_text else self._markdown)(message, batches[0])
        for batch in batches[1:]:
            bodies.append(self._follow_up(message, batch, mention_all=False))
        return bodies

    def _text(self, message: Message, people: Sequence[Mention]) -> list[dict[str, Any]]:
        lines = [markup.plain(markup.with_title(message))]
        if message.button_url:
            lines.append(f"{markup.button_text(message)}：{message.button_url}")
        at_line = _at_names(_unreachable(people))
        first_budget = TEXT_MAX_BYTES - (markup.utf8_len(at_line) + 2 if at_line else 0)
        parts = markup.split_text("\n\n".join(lines), TEXT_MAX_BYTES, markup.utf8_len, first_budget=first_budget)
        if at_line:
            parts[0] = f"{parts[0]}\n\n{at_line}"
        return [
            _text_body(part, people if i == 0 else (), message.mention_all and i == 0) for i, part in enumerate(parts)
        ]

    def _markdown(self, message: Message, people: Sequence[Mention]) -> list[dict[str, Any]]:
        lines = [markup.Dialect().convert(markup.with_title(message))]
        if message.button_url:
            lines.append(f"[{markup.button_text(message)}]({message.button_url})")
        tags = [f"<@{uid}>" for p in people if (uid := _userid(p))]
        at_line = " ".join([*tags, _at_names(_unreachable(people))]).strip()
        first_budget = MARKDOWN_MAX_BYTES - (markup.utf8_len(at_line) + 2 if at_line else 0)
        parts = markup.split_text("\n\n".join(lines), MARKDOWN_MAX_BYTES, markup.utf8_len, first_budget=first_budget)
        if at_line:
            parts[0] = f"{parts[0]}\n\n{at_line}"
        bodies: list[dict[str, Any]] = [{"msgtype": "markdown", "markdown": {"content": part}} for part in parts]
        by_mobile = [p for p in people if not _userid(p) and p.mobile]
        if by_mobile or message.mention_all:
            bodies.append(self._follow_up(message, by_mobile, message.mention_all))
        return bodies

    def _follow_up(self, message: Message, people: Sequence[Mention], mention_all: bool) -> dict[str, Any]:
        """A short text that @-mentions what the markdown could not (mobiles, @all, over the cap)."""
        title = markup.shorten(message.title, TITLE_MAX_BYTES)
        reachable = [p for p in people if _userid(p) or p.mobile]
        content = f"请查收提醒：{title}"
        if others := _at_names(_unreachable(people)):
            content += f"\n{others}"
        return _text_body(content, reachable, mention_all)

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest:
        return HttpRequest(url=markup.require_webhook(channel), body=markup.json_bytes(body))

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        read_coded_answer(self.title, WECOM, status, headers, body)
