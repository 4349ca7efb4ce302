"""The newest schema revision, read from the migration files without Alembic or SQLAlchemy.

``storage.migrate`` checks a database against it before importing Alembic; ``storage.reads`` before
reading a SQLite file with ``sqlite3`` (a file not at this revision goes the migrating way).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "migrations"

_REVISION_RE = re.compile(r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*['"]?([\w.-]+|None)['"]?\s*$""", re.M)


@cache
def cheap_head() -> str | None:
    """The newest revision, read from the migration files without Alembic (a few small files).

    The one revision no other names as its ``down_revision``; None when that is not exactly one
    (branches, a file it cannot read): the caller then asks Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for path in (SCRIPTS / "versions").glob("*.py"):
            found = dict((k, v) for k, v in _REVISION_RE.findall(path.read_text(encoding="utf-8")))
            if "revision" in found:
                revisions.add(found["revision"])
                if found.get("down_revision", "None") != "None":
                    parents.add(found["down_revision"])
    except OSError:
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
