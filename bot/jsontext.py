"""Parsing JSON from outside (request bodies, platform answers, stream frames) without a 500.

``json.loads`` raises :class:`RecursionError` on a deeply nested document (``[[[[...`` 30,000 deep fits
in 60 KB), which no caller catches: the callback answered HTTP 500 with a traceback. Here it is a
:class:`ValueError` like any other malformed JSON, so every caller's existing refusal applies.
"""

from __future__ import annotations

import json
from typing import Any


class TooDeepError(ValueError):
    """A JSON document nested deeper than the parser's recursion limit."""


def loads(raw: str | bytes | bytearray) -> Any:
    """``json.loads``, with a too-deep document raised as :class:`TooDeepError` (a ValueError)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise TooDeepError("JSON nested too deeply") from None
