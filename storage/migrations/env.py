"""Alembic environment: runs on the connection ``storage.migrate`` hands over (async engines included).

``storage.migrate`` opens the connection (under a PostgreSQL advisory lock, or SQLite's write lock)
and passes it in ``config.attributes["connection"]``; a PostgreSQL schema is that connection's
search_path. SQLite runs in batch mode, so a later migration can alter columns.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.sql.elements import False_, True_
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

import storage.models  # noqa: F401  (registers every table on SQLModel.metadata)

config = context.config


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write SQLModel's column types as plain SQLAlchemy ones, so migrations do not depend on SQLModel."""
    if kind == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    # false()/true() as such: compiled for SQLite they would become '0', which PostgreSQL refuses.
    if kind == "server_default":
        arg = getattr(obj, "arg", None)
        if isinstance(arg, False_ | True_):
            return "sa.true()" if isinstance(arg, True_) else "sa.false()"
    return False



def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `remindbot db upgrade` (storage.migrate), not the alembic command")
    # A PostgreSQL schema (REMINDBOT_DATABASE_SCHEMA) is the connection's search_path: the tables and
    # alembic_version go there without naming it, so the same migrations serve every schema.
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) mode is not supported")
run_migrations_online()
