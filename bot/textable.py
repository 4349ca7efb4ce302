"""Plain-text tables that line up with Chinese text (wide characters count twice)."""

from __future__ import annotations

from collections.abc import Sequence

from wcwidth import wcswidth


def width(text: str) -> int:
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
