"""Short codes naming an occurrence in a reply (``确认 A7K3``): made and read without the database.

Kept apart from ``bot.confirming.inbound`` (which handles the replies and needs the database) so that
planning a message (``remindbot preview``) does not import SQLAlchemy to print a code or its absence.
"""

from __future__ import annotations

from typing import Any

# Short codes: 4 characters from 31 unambiguous ones (no 0/O, 1/I/L). A code is an affine
# permutation of the occurrence id modulo 31**4, so it is stable, unique for the first
# 923,521 occurrences, and decodes back to the id without a lookup table.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LEN = 4
_N = len(CODE_ALPHABET) ** CODE_LEN
_A, _B = 387_403, 271_828  # _A is coprime with 31**4
_A_INV = pow(_A, -1, _N)


def short_code(occurrence_id: int) -> str:
    """The code shown in a reminder (``回复 确认 A7K3``) for an occurrence id."""
    n = (_A * occurrence_id + _B) % _N
    out = []
    for _ in range(CODE_LEN):
        n, r = divmod(n, len(CODE_ALPHABET))
        out.append(CODE_ALPHABET[r])
    return "".join(reversed(out))


def reply_code(schedules: Any, channel: Any, occurrence_id: int | None) -> str | None:
    """The code to show in a message to ``channel``: only where replies reach the bot (an app of
    the channel's platform is configured) and for a real occurrence; else None."""
    if occurrence_id is None:
        return None
    platform = getattr(channel, "platform", None)
    if not any(app.platform == platform for app in schedules.apps.values()):
        return None
    return short_code(occurrence_id)


def occurrence_of_code(code: str) -> int | None:
    """The occurrence id a code names, or None when it is not a well-formed code."""
    code = code.upper()
    if len(code) != CODE_LEN or any(c not in CODE_ALPHABET for c in code):
        return None
    n = 0
    for c in code:
        n = n * len(CODE_ALPHABET) + CODE_ALPHABET.index(c)
    return ((n - _B) * _A_INV) % _N
