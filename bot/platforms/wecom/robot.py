"""WeCom (企业微信) group robot, which 政务微信 speaks too: text and markdown, @ by mobile or user id.

The webhook is the whole URL (``.../cgi-bin/webhook/send?key=...``), so a 政务微信 deployment on
its own host works unchanged. No signature: the key in the URL is the credential.

Mentions. ``text`` carries ``mentioned_list`` (userids), ``mentioned_mobile_list`` (mobiles) and
"@all". ``markdown`` can only @ by ``<@userid>`` in the content, so people known only by mobile
and "@all" are @-mentioned in a short text message sent right after the markdown one ("请查收上一
条提醒：…"): the markdown keeps its formatting and everyone is still notified. People with neither
a userid nor a mobile are named as plain "@姓名". Those names and tags are content and are
counted before the split: they take at most half of the first message, and whoever does not fit
is @-mentioned in short follow-up texts, each within the limit too.

Image messages (a report's chart: ``chart = "image"``, the body from :meth:`WeCom.chart_body`): base64 and
MD5 of a PNG of at most 2 MB.

Limits: text 2048 bytes, markdown 4096 bytes (UTF-8), 20 messages a minute per robot. The mention
cap per message is not documented; we assume 50 and send further people in extra messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bot.platforms import markup
from bot.platforms.base import ChannelBase, ChartWay, HttpRequest, Limits, Mention, Message, PublicParts
from bot.platforms.describe import WECOM, read_coded_answer
from bot.platforms.wecom.config import WeComChannel

TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 4096
TITLE_MAX_BYTES = 300
IMAGE_MAX_BYTES = 2 * 1024 * 1024  # image messages: the PNG/JPG before base64
AT_SHARE = 2  # names and <@userid> tags take at most 1/AT_SHARE of the first message; the rest follow


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
    chart: ClassVar[ChartWay] = "image"  # an image message of its own after the text (chart_body)

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        batches = markup.mention_batches(message, self.limits.max_mentions)
        as_text = channel.format == "text"
        bodies = (self._text if as_text else self._markdown)(message, batches[0])
        for batch in batches[1:]:
            bodies += self._follow_up(message, batch, mention_all=False)
        return bodies

    def _text(self, message: Message, people: Sequence[Mention]) -> list[dict[str, Any]]:
        lines = [markup.plain(markup.with_title(message))]
        if message.button_url:
            lines.append(f"{markup.button_text(message)}：{message.button_url}")
        # People with ids ride in mentioned_list; names of the others are content and count.
        unreachable = _unreachable(people)
        inline = markup.fit_tokens([f"@{p.name}" for p in unreachable], TEXT_MAX_BYTES // AT_SHARE)
        at_line = _at_names(unreachable[:inline])
        first_budget = TEXT_MAX_BYTES - (markup.utf8_len(at_line) + 2 if at_line else 0)
        parts = markup.split_text("\n\n".join(lines), TEXT_MAX_BYTES, markup.utf8_len, first_budget=first_budget)
        if at_line:
            parts[0] = f"{parts[0]}\n\n{at_line}"
        bodies = [
            _text_body(part, people if i == 0 else (), message.mention_all and i == 0) for i, part in enumerate(parts)
        ]
        if unreachable[inline:]:
            bodies += self._follow_up(message, unreachable[inline:], mention_all=False)
        return bodies

    def _markdown(self, message: Message, people: Sequence[Mention]) -> list[dict[str, Any]]:
        lines = [markup.Dialect().convert(markup.with_title(message))]
        if message.button_url:
            lines.append(f"[{markup.button_text(message)}]({message.button_url})")
        uids = [_userid(p) for p in people]
        in_content = [p for p, uid in zip(people, uids, strict=True) if uid or not p.mobile]  # <@userid>, @names
        tokens = [f"<@{uid}>" if uid else f"@{p.name}" for p, uid in zip(people, uids, strict=True)
                  if uid or not p.mobile]
        inline = markup.fit_tokens(tokens, MARKDOWN_MAX_BYTES // AT_SHARE)
        at_line = " ".join(tokens[:inline])
        first_budget = MARKDOWN_MAX_BYTES - (markup.utf8_len(at_line) + 2 if at_line else 0)
        parts = markup.split_text("\n\n".join(lines), MARKDOWN_MAX_BYTES, markup.utf8_len, first_budget=first_budget)
        if at_line:
            parts[0] = f"{parts[0]}\n\n{at_line}"
        bodies: list[dict[str, Any]] = [{"msgtype": "markdown", "markdown": {"content": part}} for part in parts]
        rest = [p for p, uid in zip(people, uids, strict=True) if not uid and p.mobile] + in_content[inline:]
        if rest or message.mention_all:
            bodies += self._follow_up(message, rest, message.mention_all)
        return bodies

    def _follow_up(self, message: Message, people: Sequence[Mention], mention_all: bool) -> list[dict[str, Any]]:
        """Short texts that @-mention what the first could not (mobiles, @all, names over the room or cap)."""
        head = f"请查收提醒：{markup.shorten(message.title, TITLE_MAX_BYTES)}"
        reachable = [p for p in people if _userid(p) or p.mobile]
        room = TEXT_MAX_BYTES - markup.utf8_len(head) - 1
        lines = markup.pack_tokens([f"@{p.name}" for p in _unreachable(people)], room) or [""]
        return [
            _text_body(f"{head}\n{line}" if line else head, reachable if i == 0 else (), mention_all and i == 0)
            for i, line in enumerate(lines)
        ]

    def chart_body(self, picture: Any) -> dict[str, Any]:
        """An ``image`` message: the PNG as base64 with its MD5 (at most 2 MB before encoding)."""
        return {"msgtype": "image", "image": {"base64": picture.base64, "md5": picture.md5}}

    def oversize(self, body: dict[str, Any]) -> str | None:
        kind = body.get("msgtype")
        if kind == "image":  # the PNG may be 2 MB before base64
            size = len(body["image"]["base64"]) * 3 // 4
            return f"图片为 {size} 字节，超过企业微信上限 {IMAGE_MAX_BYTES} 字节" if size > IMAGE_MAX_BYTES else None
        cap = TEXT_MAX_BYTES if kind == "text" else MARKDOWN_MAX_BYTES
        size = markup.utf8_len(body[kind]["content"])
        return f"{kind}.content 为 {size} 字节，超过企业微信上限 {cap} 字节" if size > cap else None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest:
        return HttpRequest(url=markup.require_webhook(channel), body=markup.json_bytes(body))

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        read_coded_answer(self.title, WECOM, status, headers, body)
