"""The range of the tables' ids, and reading an id that came from outside (a URL, a form, a button).

No imports: the command line's fire path and the platforms' callbacks read it without the ORM.
"""

from __future__ import annotations

ID_MAX = 2**31 - 1  # the id columns are INTEGER: int4 on PostgreSQL (SQLite's are 64-bit)
_DIGITS = len(str(ID_MAX))


def row_id(raw: object) -> int:
    """``raw`` (an int, or ASCII decimal digits) as an id in 1..:data:`ID_MAX`; else 0.

    0 names no row (ids start at 1), so a caller looks it up as it would any id and gives its own
    "not found" answer: a number too large for the column (``99999999999999999999``) or of
    another shape never reaches the database driver, which would raise (SQLite: OverflowError;
    PostgreSQL: out of range for type integer).
    """
    if isinstance(raw, bool):
        return 0
    if isinstance(raw, int):
        return raw if 0 < raw <= ID_MAX else 0
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw.lstrip("0")) <= _DIGITS:
        value = int(raw)
        return value if 0 < value <= ID_MAX else 0
    return 0
