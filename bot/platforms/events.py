"""What a platform's inbound side hands to :mod:`bot.confirming.inbound`, and gets back: refusals, events, answers.

These types live below both the platform modules (which build them from verified requests) and
``bot.confirming.inbound`` (which applies the confirmation rules), so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class CallbackError(Exception):
    """An inbound request that is refused. ``status`` is the HTTP status; the message is Chinese."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Said:
    """A chat message, after the platform checked its signature. ``user_id`` is the platform's."""

    platform: str  # a key of Person.ids: wecom, dingtalk, feishu, lark, slack
    app_id: str
    user_id: str
    text: str  # mentions of the bot already removed
    message_id: str
    display_name: str | None = None  # for logs only: it never identifies anyone


@dataclass(frozen=True)
class Pressed:
    """A confirm button press on a card for ``occurrence_id``."""

    platform: str
    app_id: str
    user_id: str
    occurrence_id: int
    message_id: str
    display_name: str | None = None


def stamp_of(text: str) -> int | None:
    """A request's timestamp header or parameter (seconds or milliseconds, ASCII digits) as an int;
    None for anything else. ``str.isdigit`` takes ``²`` (a Latin-1 header byte) and 5,000 digits,
    on which ``int()`` raises: a 500 before the signature was checked (Slack)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def stamp_refusal(at: float | None, now: float, window: float) -> str | None:
    """Why a callback's timestamp is refused (None: it is within ``window`` of ``now``); all in seconds,
    ``at`` None when it could not be read. An old one is 已过期; one ahead of the server's clock is said
    to be in the future (a wrong clock on either side, not a replay), never 已过期."""
    if at is None:
        return "时间戳无法识别"
    if abs(now - at) <= window:
        return None
    span = f"，超出允许的 {window:.0f} 秒"
    if at > now:
        return f"时间戳不在允许范围内：比服务器时间晚 {at - now:.0f} 秒{span}（请核对服务器时钟）"
    return f"时间戳已过期：比服务器时间早 {now - at:.0f} 秒{span}"


def button_number(raw: object) -> int:
    """A button's occurrence number as a card sends it back: an int, or its ASCII decimal digits.

    Raises ValueError for anything else (``1.5``, ``1e400``, ``true``, ``"١"``), which the platform
    refuses as bad button data. A number of any size is returned as it is (a run of more than 30
    digits as 0): :func:`bot.confirming.inbound.handle` answers one beyond the id columns as
    "not on your list", as for any number that names no record of the person's.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw) if len(raw) <= 30 else 0
    raise ValueError(f"not a record number: {raw!r:.40}")


Outcome = Literal["recorded", "already", "replay", "unknown_sender", "owes_nothing", "bad_code",
                  "refused", "ignored"]


@dataclass
class Answer:
    """What happened and what to say back (``text`` None: say nothing, e.g. a replay)."""

    outcome: Outcome
    text: str | None
    occurrence_id: int | None = None
    person_id: str | None = None
    person_name: str | None = None
    title: str | None = None

    @property
    def recorded(self) -> bool:
        return self.outcome == "recorded"
