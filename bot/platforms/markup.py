"""Shared helpers for the adapters: markdown dialects, size splitting, JSON bodies, URL masking.

Every template renders to one neutral, CommonMark-ish markdown (``Message.markdown``): headings
``#``, ``**bold**``, lists ``- ``/``1. ``, links ``[t](u)``, inline code and ``> `` quotes. Each
adapter converts it line by line with a :class:`Dialect` (one neutral line gives one line in the
dialect, so a converted text can still be split at the same line and paragraph boundaries).

Splitting (:func:`split_text`) packs whole paragraphs into parts, falls back to whole lines for a
paragraph that does not fit, and shortens a single line that does not fit alone with
"…（已截断）". Parts carry visible markers: the first ends with "（1/3，未完）", the others start
with "（续 2/3）". A ``measure`` counts what the platform counts (UTF-8 bytes, characters, or bytes
of the JSON-escaped string); measures must be additive over concatenation, which all three are.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from bot.platforms.base import ChannelBase, DeliveryError, FailureKind, Mention, Message

Measure = Callable[[str], int]

MAX_PARTS = 10  # a longer message is cut after this many parts: nobody reads an 11th screen
TRUNCATED = "…（已截断）"
DEFAULT_BUTTON_TEXT = "确认"


# ---------------------------------------------------------------- measures and JSON


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def char_len(text: str) -> int:
    return len(text)


def json_len(text: str) -> int:
    """Bytes the string adds inside a compact UTF-8 JSON body (escapes counted, quotes not)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# json's own C encoder for these settings, made once: ``json.dumps`` with arguments builds an encoder
# (and ``JSONEncoder.encode`` a C one) at every call, most of the cost of a short body. Same output
# (circular references are not looked for: a body is plain data). None where Python has no C encoder.
_C_COMPACT = (json.encoder.c_make_encoder(None, _COMPACT.default, json.encoder.encode_basestring, None, ":", ",",
                                          False, False, True)
              if json.encoder.c_make_encoder is not None else None)


def json_bytes(body: Any) -> bytes:
    """The one serialisation of a body: compact, UTF-8 (Chinese stays 3 bytes, not 6)."""
    if _C_COMPACT is not None and isinstance(body, dict):
        return "".join(_C_COMPACT(body, 0)).encode("utf-8")
    return _COMPACT.encode(body).encode("utf-8")


# ---------------------------------------------------------------- URL masking in free text

# Free text (a stored error, a log line) may hold any URL, not only a configured webhook (those are
# masked exactly, see ``PublicParts``): every query value and fragment is hidden, whatever its name,
# and so are the path secrets of the known robot URL shapes, on any host, and key-like segments.
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*=)[^&#\s]+")
_FRAGMENT = re.compile(r"#[^\s]+")
_PATH_SECRETS = [
    re.compile(r"(/open-apis/bot/v2/hook/)[^/?#\s]+"),  # Feishu / Lark
    re.compile(r"(://[^/?#\s]+/(?:services|workflows|triggers)/)[^?#\s]+"),  # Slack, or a proxy of it
]
_KEYLIKE_SEGMENT = re.compile(r"(?<=/)(?=[A-Za-z0-9_%.~-]*\d)[A-Za-z0-9_%.~-]{16,}(?=[/?#\s]|$)")
_USERINFO = re.compile(r"(?i)(^[a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """Mask user info, every query value, the fragment, robot path secrets and key-like path segments."""
    url = _USERINFO.sub(r"\1***@", url)
    url = _QUERY_VALUE.sub(r"\1***", url)
    url = _FRAGMENT.sub("#***", url)
    for pattern in _PATH_SECRETS:
        url = pattern.sub(r"\1***", url)
    head, sep, tail = url.partition("://")
    return head + sep + _KEYLIKE_SEGMENT.sub("***", tail) if sep else url


_ANY_URL = re.compile(r"https?://[^\s\"'<>)\]）\\]+")
# A confirmation link's token, however it was cut (aiohttp logs the first 100 bytes of a bad line),
# and a token on its own: three dot-separated URL-safe base64 parts, the last a signature.
_CONFIRM_LINK = re.compile(r"(/(?:c|l|ical|chart)/)[A-Za-z0-9._%~-]+")
_TOKEN_SHAPE = re.compile(r"\.?[A-Za-z0-9_-]{2,200}\.[A-Za-z0-9_-]{4,12}\.[A-Za-z0-9_-]{32,100}")
_CREDENTIAL_HEADER = re.compile(r"(?i)\b(authorization|cookie|proxy-authorization)(\s*[:=]\s*)[^\r\n'\"]+")


def mask_links(text: str) -> str:
    """Confirmation links are credentials: logs and pages show their shape, never the token."""
    text = _CONFIRM_LINK.sub(r"\1***", text)
    text = _TOKEN_SHAPE.sub("***", text)
    return _CREDENTIAL_HEADER.sub(r"\1\2***", text)


def redact(text: str | None) -> str:
    """Every URL in free text (logs, stored errors, pages) with keys, tokens and links masked."""
    if not text:
        return ""
    return mask_links(_ANY_URL.sub(lambda m: redact_url(m.group(0)), text))


# ---------------------------------------------------------------- markdown dialects

_INLINE = re.compile(r"\*\*(?P<bold>.+?)\*\*|\[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\)|`(?P<code>[^`]+)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$")
_QUOTE = re.compile(r"^>\s?(.*)$")


class Span(NamedTuple):  # a tuple: made five times a line with a link, a dataclass costs twice as much
    kind: str  # "text", "bold", "link" or "code"
    text: str
    url: str = ""


def spans(line: str) -> Iterator[Span]:
    """Inline pieces of one neutral markdown line."""
    pos = 0
    for match in _INLINE.finditer(line):
        if match.start() > pos:
            yield Span("text", line[pos : match.start()])
        if match["bold"] is not None:
            yield Span("bold", match["bold"])
        elif match["url"] is not None:
            yield Span("link", match["text"], match["url"])
        else:
            yield Span("code", match["code"])
        pos = match.end()
    if pos < len(line):
        yield Span("text", line[pos:])


class Dialect:
    """Neutral markdown in, the same markdown out; subclasses override what their platform lacks."""

    def text(self, text: str) -> str:
        return text

    def bold(self, text: str) -> str:
        return f"**{self.text(text)}**"

    def link(self, text: str, url: str) -> str:
        return f"[{self.text(text)}]({url})"

    def code(self, text: str) -> str:
        return f"`{text}`"

    def heading(self, level: int, inline: str) -> str:
        return f"{'#' * level} {inline}"

    def item(self, indent: str, marker: str, inline: str) -> str:
        return f"{indent}{marker} {inline}"

    def quote(self, inline: str) -> str:
        return f"> {inline}"

    def inline(self, line: str) -> str:
        if "*" not in line and "[" not in line and "`" not in line:  # no markup (most lines): one text span
            return self.text(line) if line else ""
        if type(self).text is Dialect.text:  # text stays as it is: only the marked-up pieces change, in one pass
            return _INLINE.sub(self._piece, line)
        out = []
        for span in spans(line):
            if span.kind == "bold":
                out.append(self.bold(span.text))
            elif span.kind == "link":
                out.append(self.link(span.text, span.url))
            elif span.kind == "code":
                out.append(self.code(span.text))
            else:
                out.append(self.text(span.text))
        return "".join(out)

    def _piece(self, match: re.Match[str]) -> str:
        """One marked-up piece of a line (a match of ``_INLINE``), as :meth:`inline` converts it."""
        if match["bold"] is not None:
            return self.bold(match["bold"])
        if match["url"] is not None:
            return self.link(match["text"], match["url"])
        return self.code(match["code"])

    def line(self, line: str) -> str:
        first = line[:1]
        if not ((first and first in "#>-*+") or first.isspace() or first.isdecimal()):
            return self.inline(line)  # no heading, list item or quote can start with this character
        if match := _HEADING.match(line):
            return self.heading(len(match[1]), self.inline(match[2]))
        if match := _ITEM.match(line):
            return self.item(match[1], match[2], self.inline(match[3]))
        if match := _QUOTE.match(line):
            return self.quote(self.inline(match[1]))
        return self.inline(line)

    def convert(self, markdown: str) -> str:
        return "\n".join(self.line(line.rstrip()) for line in markdown.strip("\n").splitlines())


class PlainText(Dialect):
    """For text formats: no markup left; links become "文字（网址）"."""

    def bold(self, text: str) -> str:
        return text

    def link(self, text: str, url: str) -> str:
        return text if text == url else f"{text}（{url}）"

    def code(self, text: str) -> str:
        return text

    def heading(self, level: int, inline: str) -> str:
        return inline if inline.startswith("【") else f"【{inline}】"

    def item(self, indent: str, marker: str, inline: str) -> str:
        bullet = "•" if marker in "-*+" else marker
        return f"{indent}{bullet} {inline}"

    def quote(self, inline: str) -> str:
        return f"｜{inline}"


_PLAIN = PlainText()


@functools.lru_cache(maxsize=4096)
def _plain_line(line: str) -> str:
    return _PLAIN.line(line)


def plain(markdown: str) -> str:
    """The markdown as plain text (:class:`PlainText`). Lines are converted once each and kept: a fire's
    20,000 personal messages share most of their lines (only the name and the link differ)."""
    return "\n".join(_plain_line(line.rstrip()) for line in markdown.strip("\n").splitlines())


# Templates usually open with their own heading ("### 【提醒】…"); the title is added only when
# they do not, so formats without a title field still show it, and never twice.


def _first_line(markdown: str) -> str:
    return next((line for line in markdown.splitlines() if line.strip()), "")


def _rest(body: str, first: str) -> str:
    return body.split(first, 1)[1].strip("\n")


def with_title(message: Message) -> str:
    """The markdown with ``### title`` on top, unless it already opens with a heading; an opening
    line that is just the title in bold becomes that heading rather than a second one."""
    body = message.markdown.strip("\n")
    first = _first_line(body)
    if _HEADING.match(first):
        return body
    if first.strip() == f"**{message.title}**":
        body = _rest(body, first)
    return f"### {message.title}\n\n{body}" if body else f"### {message.title}"


def without_same_title(message: Message) -> str:
    """For a body sent beside its title field as is (generic JSON): drop an opening heading or bold line
    that is exactly the title, and nothing else (a ``### 【催办】…`` heading says more than the title)."""
    body = message.markdown.strip("\n")
    first = _first_line(body).strip()
    match = _HEADING.match(first)
    if (match and match[2].strip() == message.title) or first == f"**{message.title}**":
        return _rest(body, first) or body
    return body


def without_title(message: Message) -> str:
    """For formats with a title field: drop an opening heading (or bold line) that repeats the title."""
    body = message.markdown.strip("\n")
    first = _first_line(body)
    if ((match := _HEADING.match(first)) and message.title in match[2]) or first.strip() == f"**{message.title}**":
        return _rest(body, first) or body
    return body


# ---------------------------------------------------------------- splitting


def first_marker(index: int, total: int) -> str:
    return f"\n\n（{index}/{total}，未完）"


def next_marker(index: int, total: int) -> str:
    return f"（续 {index}/{total}）\n\n"


def shorten(line: str, cap: int, measure: Measure = utf8_len) -> str:
    """The longest prefix of ``line`` that fits ``cap`` together with "…（已截断）"."""
    if measure(line) <= cap:
        return line
    room = cap - measure(TRUNCATED)
    used, cut = 0, 0
    while cut < len(line) and used + measure(line[cut]) <= room:
        used += measure(line[cut])
        cut += 1
    return line[:cut] + TRUNCATED


def _pieces(text: str) -> list[tuple[str, bool]]:
    """(line, starts_paragraph) for every non-blank line."""
    out: list[tuple[str, bool]] = []
    new_paragraph = True
    for line in text.strip("\n").splitlines():
        if not line.strip():
            new_paragraph = True
            continue
        out.append((line, new_paragraph))
        new_paragraph = False
    return out


def _paragraphs(text: str) -> list[list[str]]:
    paragraphs: list[list[str]] = []
    for line, starts in _pieces(text):
        if starts or not paragraphs:
            paragraphs.append([])
        paragraphs[-1].append(line)
    return paragraphs


class _Packer:
    """Greedy packing of paragraphs (then lines) into parts that fit their caps."""

    def __init__(self, caps: Callable[[int], int], measure: Measure) -> None:
        self.caps, self.measure = caps, measure
        self.parts: list[str] = []
        self.current, self.used = "", 0

    def _cap(self) -> int:
        return self.caps(len(self.parts))

    def _close(self) -> None:
        if self.current:
            self.parts.append(self.current)
        self.current, self.used = "", 0

    def add(self, piece: str, separator: str) -> bool:
        cost = self.measure(piece) + (self.measure(separator) if self.current else 0)
        if self.used + cost > self._cap():
            return False
        self.current = f"{self.current}{separator}{piece}" if self.current else piece
        self.used += cost
        return True

    def add_paragraph(self, lines: list[str]) -> None:
        paragraph = "\n".join(lines)
        if self.add(paragraph, "\n\n"):
            return
        self._close()
        if self.add(paragraph, "\n\n"):
            return
        separator = "\n\n"
        for line in lines:
            if not self.add(line, separator):
                self._close()
                self.add(shorten(line, self._cap(), self.measure), separator)
            separator = "\n"

    def finish(self) -> list[str]:
        self._close()
        return self.parts


def split_text(
    text: str,
    budget: int,
    measure: Measure = utf8_len,
    *,
    first_budget: int | None = None,
    max_parts: int = MAX_PARTS,
) -> list[str]:
    """Split ``text`` so each part (markers included) measures at most its budget.

    ``first_budget`` applies to the first part only (it often also carries the mentions).
    """
    first = budget if first_budget is None else first_budget
    if measure(text) <= first:
        return [text]
    reserve = max(measure(first_marker(99, 99)), measure(next_marker(99, 99)) + measure("\n" + TRUNCATED))
    packer = _Packer(lambda index: (first if index == 0 else budget) - reserve, measure)
    for paragraph in _paragraphs(text):
        packer.add_paragraph(paragraph)
    parts = packer.finish() or [""]
    if len(parts) > max_parts:
        parts = parts[:max_parts]
        parts[-1] += "\n" + TRUNCATED
    total = len(parts)
    if total == 1:
        return parts
    return [
        part + first_marker(1, total) if index == 0 else next_marker(index + 1, total) + part
        for index, part in enumerate(parts)
    ]


def fit_bodies(make: Callable[[int], list[dict[str, Any]]], budget: int, max_body_bytes: int) -> list[dict[str, Any]]:
    """Build with ``make(budget)`` and shrink the budget until every JSON body fits.

    The text budget is computed from an estimate of the body's fixed parts; this loop makes the
    whole-body cap (DingTalk 20000 bytes, Feishu 20 KB) hold exactly, whatever the estimate missed.
    """
    for _ in range(8):
        bodies = make(budget)
        overflow = max(len(json_bytes(body)) for body in bodies) - max_body_bytes
        if overflow <= 0:
            return bodies
        budget -= overflow + 64
    return bodies


# ---------------------------------------------------------------- mentions and buttons


def mention_batches(message: Message, cap: int | None) -> list[tuple[Mention, ...]]:
    """The message's mentions in groups of at most ``cap`` (one group when there is no cap)."""
    people = message.mentions
    if cap is None or len(people) <= cap:
        return [people]
    return [people[start : start + cap] for start in range(0, len(people), cap)]


def fit_tokens(tokens: Sequence[str], budget: int, measure: Measure = utf8_len, sep: str = " ") -> int:
    """How many leading ``tokens``, joined by ``sep``, fit within ``budget``."""
    used, gap = 0, measure(sep)
    for index, token in enumerate(tokens):
        used += measure(token) + (gap if index else 0)
        if used > budget:
            return index
    return len(tokens)


def pack_tokens(tokens: Sequence[str], budget: int, measure: Measure = utf8_len, sep: str = " ") -> list[str]:
    """``tokens`` joined by ``sep`` into lines each within ``budget``; a token too long alone is shortened."""
    lines: list[str] = []
    rest = list(tokens)
    while rest:
        count = fit_tokens(rest, budget, measure, sep)
        if count == 0:
            lines.append(shorten(rest[0], budget, measure))
            count = 1
        else:
            lines.append(sep.join(rest[:count]))
        rest = rest[count:]
    return lines


def button_text(message: Message) -> str:
    return message.button_text or DEFAULT_BUTTON_TEXT


def with_keyword(text: str, keyword: str | None) -> str:
    """Make sure the robot's security keyword appears, so the platform accepts the message."""
    if not keyword or keyword in text:
        return text
    return f"{text}\n\n{keyword}"


def require_webhook(channel: ChannelBase) -> str:
    """The webhook URL; a dry-run channel (no webhook) must not reach ``prepare``."""
    url = channel.webhook_url()
    if not url:
        raise DeliveryError(FailureKind.CONFIG, f"频道 {channel.id} 未配置 Webhook 地址（只记录、不发送）")
    return url
