"""How a command that reads or records opens the runtime, runs its work and reports a problem.

Without SQLAlchemy: ``report`` and ``status`` on a SQLite file open no engine (:func:`reading`), so
neither this module nor the commands' own import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from typing import TypeVar

import click

from bot.config import gcpause
from bot.runtime import Runtime
from bot.sentences import sentence
from bot.settings import Settings
from storage import reads

T = TypeVar("T")


class CliError(Exception):
    """A problem the admin must fix; the message is Chinese, printed as one :func:`bot.sentences.sentence`."""


@asynccontextmanager
async def open_runtime(settings: Settings, *, database: bool = True) -> AsyncIterator[Runtime]:
    """The service's runtime (schedules, calendar, renderer, database) for one command; when the
    schedules have errors, the last good ones, said first on stderr (an admin records a confirmation
    given by phone while a broken edit waits to be fixed). ``database=False``: opened on first
    :meth:`Runtime.ensure_database` (a command that may read a SQLite file without it).

    These commands read or record in an existing database: a SQLite file that does not exist is
    ``storage.db.DatabaseMissing`` (which file, how to make it), never an empty file made here."""
    from bot.runtime import open_runtime as service_runtime

    try:
        async with service_runtime(settings, last_good=True, database=database, create=False) as runtime:
            if runtime.refused is not None:
                from bot.cli.schedule import say_last_good

                say_last_good(runtime.refused)
            yield runtime
    except Exception as exc:
        from bot.config.issues import ConfigError, bounded

        if not isinstance(exc, ConfigError):
            raise
        from bot.config.yamlsource import shown_issue  # paths as validate prints them

        shown, more = bounded(exc.issues)
        lines = [str(shown_issue(issue, settings.schedules_dir, absolute=settings.schedules_dir_absolute))
                 for issue in shown] + ([more] if more else [])
        raise CliError("\n".join([*lines, f"日程配置有 {len(exc.issues)} 处错误，请修改后再试。"])) from None


def run(work: Callable[[Runtime], Awaitable[T]], *, database: bool = True) -> T:
    """Open the runtime, do the work, print a CliError and exit 1 (``database``: as :func:`open_runtime`)."""

    async def main() -> T:
        async with open_runtime(Settings(), database=database) as runtime:
            return await work(runtime)

    try:
        # A command that runs once and exits (gcpause.FREEZE) keeps the collector paused for its
        # work, as while its schedules load: a province's report or board is 20,000 rows of tuples,
        # lists and strings and no cycles worth a pass (its passes cost ``report`` ~0.1 s of ~1.2 s).
        with gcpause.no_gc() if gcpause.FREEZE else nullcontext():
            return asyncio.run(main())
    except CliError as exc:
        click.echo(sentence(str(exc)), err=True)
        raise SystemExit(1) from None


@asynccontextmanager
async def reading(runtime: Runtime) -> AsyncIterator[reads.Reader]:
    """A reader of the runtime's database (``storage.reads``): ``sqlite3``, read-only, on a SQLite file
    already at the newest schema when the runtime was opened without its database; else the database
    opened (upgraded first, as every command does; never created: see :func:`open_runtime`) and read
    through SQLAlchemy."""
    path = reads.sqlite_file(runtime.settings.database_url)
    if path is not None and runtime.opener is not None and reads.at_head(path):
        async with reads.sqlite_reader(path) as reader:
            yield reader
        return
    await runtime.ensure_database()
    async with reads.engine_reader(runtime.db.engine) as reader:
        yield reader
