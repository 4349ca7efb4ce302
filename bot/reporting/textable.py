"""Plain-text tables that line up with Chinese text (wide characters count twice)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from wcwidth import wcswidth


def width(text: str) -> int:
    """Columns the text takes in a terminal (wide characters count twice)."""
    if text.isascii():  # what wcswidth says for ASCII (control characters: its -1 falls back to len)
        return len(text)
    return _wide_width(text)


@lru_cache(maxsize=65536)  # a 20,000-row board repeats its statuses and units; each cell is measured twice
def _wide_width(text: str) -> int:
    w = wcswidth(text)
    return w if w >= 0 else len(text)


def pad(text: str, size: int) -> str:
    return text + " " * max(0, size - width(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cols = [max([width(h)] + [width(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(pad(h, cols[i]) for i, h in enumerate(headers)).rstrip(),
             "  ".join("-" * c for c in cols)]
    lines += ["  ".join(pad(str(c), cols[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)
