"""Feishu (飞书) and Lark custom bots: same protocol on two hosts; text, post and interactive card.

The webhook is the whole URL, ``https://open.feishu.cn/open-apis/bot/v2/hook/<token>`` or
``https://open.larksuite.com/...``, so one adapter serves both; the host comes from the URL.

Signing: ``timestamp`` (seconds, a string) and ``sign = base64(HMAC_SHA256(key=f"{timestamp}\\n
{secret}", msg=b""))`` go in the JSON body (the string is the *key*, unlike DingTalk). They are
added in ``prepare``; the signed window is one hour.

Mentions work only with an open_id (``ou_...``, from the person's ``feishu``/``lark`` id) or "all";
people without one are named as plain "@姓名". Text uses ``<at user_id="ou_x">姓名</at>``, post an
``at`` tag, the card ``<at id=ou_x></at>`` in ``lark_md``. ``markdown`` format means the card.

Limits: the whole JSON body ≤ 20 KB (we aim under 20000 bytes, signature fields included);
100 requests a minute and 5 a second per bot. The mention cap is not documented; we assume 50.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from bot.platforms import markup
from bot.platforms.base import ChannelBase, ChartWay, HttpRequest, Limits, Mention, Message, PublicParts
from bot.platforms.describe import FEISHU, read_coded_answer
from bot.platforms.feishu.config import FeishuChannel

MAX_BODY_BYTES = 20000  # documented as 20 KB; the signature fields fit in the reserve below
SIGN_RESERVE = 120
SKELETON_BYTES = 500
Render = Callable[[Message, Sequence[Mention], str, str | None, int], list[dict[str, Any]]]


def sign(secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class LarkMarkdown(markup.Dialect):
    """Card ``lark_md``: bold and links, but no headings, lists or quotes."""

    def heading(self, level: int, inline: str) -> str:
        return f"**{inline}**"

    def item(self, indent: str, marker: str, inline: str) -> str:
        return f"{indent}{'•' if marker in '-*+' else marker} {inline}"

    def quote(self, inline: str) -> str:
        return f"｜{inline}"

    def code(self, text: str) -> str:
        return text


def _post_measure(text: str) -> int:
    """Estimated post size of source text: each line and link becomes a JSON tag object."""
    return markup.json_len(text) + 32 * text.count("\n") + 40 * text.count("](")


def _post_line(line: str) -> list[dict[str, Any]]:
    """One post paragraph (a list of tags) from one neutral markdown line."""
    stripped = line.lstrip()
    if stripped.startswith("#"):
        line = "**" + stripped.lstrip("#").strip() + "**"
    elif stripped.startswith(("- ", "* ", "+ ")):
        line = line[: len(line) - len(stripped)] + "• " + stripped[2:]
    elif stripped.startswith(">"):
        line = "｜" + stripped[1:].lstrip()
    tags: list[dict[str, Any]] = []
    for span in markup.spans(line):
        if span.kind == "link":
            tags.append({"tag": "a", "text": span.text, "href": span.url})
        elif span.kind == "bold":
            tags.append({"tag": "text", "text": span.text, "style": ["bold"]})
        else:
            tags.append({"tag": "text", "text": span.text})
    return tags or [{"tag": "text", "text": ""}]


class Feishu:
    name: ClassVar[str] = "feishu"
    title: ClassVar[str] = "飞书"
    channel_model: ClassVar[type[ChannelBase]] = FeishuChannel
    public: ClassVar[PublicParts] = PublicParts(paths=("/open-apis/bot/v2/hook/",))
    chart: ClassVar[ChartWay] = "link"  # an image needs an uploaded image_key, which a robot cannot get
    limits: ClassVar[Limits] = Limits(
        max_bytes=MAX_BODY_BYTES,
        per_minute=100,
        per_second=5,
        max_body_bytes=MAX_BODY_BYTES,
        max_mentions=50,
    )

    def build(self, channel: ChannelBase, message: Message) -> list[dict[str, Any]]:
        keyword = getattr(channel, "keyword", None)
        render: Render = {"text": self._text, "post": self._post}.get(channel.format, self._card)
        bodies: list[dict[str, Any]] = []
        for index, batch in enumerate(markup.mention_batches(message, self.limits.max_mentions)):
            if index == 0:
                bodies += self._fit(message, batch, channel.platform, keyword, render)
            else:
                bodies += self._text(self._follow_up(message), batch, channel.platform, keyword, 4000)
        return bodies

    @staticmethod
    def _follow_up(message: Message) -> Message:
        title = markup.shorten(message.title, 300)
        return Message(title=title, markdown="（续）请查收以上提醒")

    def _fit(
        self,
        message: Message,
        people: Sequence[Mention],
        platform: str,
        keyword: str | None,
        render: Render,
    ) -> list[dict[str, Any]]:
        fixed = SKELETON_BYTES + markup.json_len(message.title) + 80 * len(people)
        fixed += markup.json_len(keyword or "") + len(message.button_url or "")

        def make(budget: int) -> list[dict[str, Any]]:
            return render(message, people, platform, keyword, budget)

        limit = MAX_BODY_BYTES - SIGN_RESERVE
        return markup.fit_bodies(make, limit - fixed, limit)

    def _text(
        self,
        message: Message,
        people: Sequence[Mention],
        platform: str,
        keyword: str | None,
        budget: int,
    ) -> list[dict[str, Any]]:
        lines = [markup.plain(markup.with_title(message))]
        if message.button_url:
            lines.append(f"{markup.button_text(message)}：{message.button_url}")
        parts = _split("\n\n".join(lines), budget, markup.json_len, keyword)
        tags = [f'<at user_id="{oid}">{p.name}</at>' for p in people if (oid := _open_id(p, platform))]
        tags += [f"@{p.name}" for p in people if not _open_id(p, platform)]
        if message.mention_all:
            tags.append('<at user_id="all">所有人</at>')
        if tags:
            parts[0] = f"{parts[0]}\n\n{' '.join(tags)}"
        return [{"msg_type": "text", "content": {"text": part}} for part in parts]

    def _post(
        self,
        message: Message,
        people: Sequence[Mention],
        platform: str,
        keyword: str | None,
        budget: int,
    ) -> list[dict[str, Any]]:
        source = markup.without_title(message)
        if message.button_url:
            source += f"\n\n[{markup.button_text(message)}]({message.button_url})"
        parts = _split(source, budget, _post_measure, keyword)
        at_tags: list[dict[str, Any]] = []
        for person in people:
            if oid := _open_id(person, platform):
                at_tags.append({"tag": "at", "user_id": oid, "user_name": person.name})
            else:
                at_tags.append({"tag": "text", "text": f"@{person.name} "})
        if message.mention_all:
            at_tags.append({"tag": "at", "user_id": "all", "user_name": "所有人"})
        bodies = []
        for index, part in enumerate(parts):
            content = [_post_line(line) for line in part.split("\n")]
            if index == 0 and at_tags:
                content.append(at_tags)
            post = {"zh_cn": {"title": message.title, "content": content}}
            bodies.append({"msg_type": "post", "content": {"post": post}})
        return bodies

    def _card(
        self,
        message: Message,
        people: Sequence[Mention],
        platform: str,
        keyword: str | None,
        budget: int,
    ) -> list[dict[str, Any]]:
        parts = _split(LarkMarkdown().convert(markup.without_title(message)), budget, markup.json_len, keyword)
        tags = [f"<at id={oid}></at>" for p in people if (oid := _open_id(p, platform))]
        tags += [f"@{p.name}" for p in people if not _open_id(p, platform)]
        if message.mention_all:
            tags.append("<at id=all></at>")
        if tags:
            parts[0] = f"{parts[0]}\n\n{' '.join(tags)}"
        bodies = []
        for index, part in enumerate(parts):
            elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "lark_md", "content": part}}]
            if message.button_url and index == len(parts) - 1:
                elements.append(_button(markup.button_text(message), message.button_url))
            card = {
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": message.title}},
                "elements": elements,
            }
            bodies.append({"msg_type": "interactive", "card": card})
        return bodies

    def oversize(self, body: dict[str, Any]) -> str | None:
        size = len(markup.json_bytes(body)) + SIGN_RESERVE  # the signature fields join it at send time
        return f"请求体（含签名）为 {size} 字节，超过飞书上限 {MAX_BODY_BYTES} 字节" if size > MAX_BODY_BYTES else None

    def prepare(self, channel: ChannelBase, body: dict[str, Any], now: float) -> HttpRequest:
        url = markup.require_webhook(channel)
        if secret := channel.secret_value():
            timestamp = int(now)
            body = {"timestamp": str(timestamp), "sign": sign(secret, timestamp), **body}
        return HttpRequest(url=url, body=markup.json_bytes(body))

    def read_answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        read_coded_answer(
            self.title,
            FEISHU,
            status,
            headers,
            body,
            code_keys=("code", "StatusCode"),
            msg_keys=("msg", "StatusMessage"),
        )


def _open_id(person: Mention, platform: str) -> str | None:
    other = "lark" if platform == "feishu" else "feishu"
    return person.ids.get(platform) or person.ids.get(other)


def _split(text: str, budget: int, measure: markup.Measure, keyword: str | None) -> list[str]:
    parts = markup.split_text(text, budget, measure)
    return [markup.with_keyword(part, keyword) for part in parts]


def _button(text: str, url: str) -> dict[str, Any]:
    return {
        "tag": "action",
        "actions": [
            {
                "tag": "button",
                "text": {"tag": "plain_text", "content": text},
                "url": url,
                "type": "primary",
            }
        ],
    }
