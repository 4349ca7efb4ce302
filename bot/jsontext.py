"""Parsing JSON from outside (request bodies, platform answers, stream frames) without a 500.

``json.loads`` raises :class:`RecursionError` on a deeply nested document (``[[[[...`` 30,000 deep fits
in 60 KB), which no caller catches: the callback answered HTTP 500 with a traceback. A document that
just parses (900 deep) fails the same way later, when code deeper in the stack prints or walks it.
So a document nested beyond :data:`MAX_DEPTH` is a :class:`ValueError` like any other malformed JSON,
and every caller's existing refusal applies.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # platform events and answers nest under 15 levels (a Slack payload's blocks the most)


NOT_JSON = "消息不是有效的 JSON"
TOO_DEEP = f"消息的 JSON 嵌套超过 {MAX_DEPTH} 层，不予处理"


def refusal(exc: BaseException) -> str:
    """The Chinese reason a caller answers (and logs) for a body :func:`loads` refused."""
    return TOO_DEEP if isinstance(exc, TooDeepError) else NOT_JSON


class TooDeepError(ValueError):
    """A JSON document nested deeper than :data:`MAX_DEPTH` (or than the parser's recursion limit)."""


def loads(raw: str | bytes | bytearray) -> Any:
    """``json.loads``, raising :class:`TooDeepError` (a ValueError) for a too-deep document."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeepError("JSON nested too deeply") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    """Walk the containers without recursion (the point is not to recurse on outside input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    raise TooDeepError("JSON nested too deeply")
                stack.append((child, depth + 1))
