"""The ``remindbot`` command. Output meant for admins is in Chinese.

Each command's module is imported only when that command runs (``remindbot status`` does not
import the web stack, ``remindbot upcoming`` not even the database): at a province's scale the
imports were most of a command's time. ``--help`` and ``main.commands`` import them all.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
from typing import Any

import click

from bot.cli import zh
from bot.config import gcpause

zh.install()  # before the group below is built: its --version help is translated when made

# command name -> "module:attribute", in the order --help lists them
LAZY: dict[str, str] = {
    "validate": "bot.cli.schedule:validate",
    "upcoming": "bot.cli.schedule:upcoming",
    "serve": "bot.cli.serve:serve",
    "schema": "bot.cli.schedule:schema",
    "preview": "bot.cli.delivery:preview",
    "fire": "bot.cli.delivery:fire_command",
    "send-test": "bot.cli.delivery:send_test",
    "status": "bot.cli.status:status",
    "confirm": "bot.cli.confirmations:confirm",
    "link": "bot.cli.confirmations:link",
    "report": "bot.cli.report:report",
    "leader-link": "bot.cli.confirmations:leader_link",
    "db": "bot.cli.database:db",
    "apps": "bot.cli.apps:apps",
    "excuse": "bot.cli.actions:excuse",
    "resend": "bot.cli.actions:resend",
    "admin": "bot.cli.actions:admin",
}


class _Main(click.Group):
    """Commands loaded on first use; a database that cannot be used ends in one Chinese line and exit code 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, click.Command] = {}
        self.ran: str | None = None  # the command resolved last (``entry`` ends a process at once after most)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        """Every command (imports them all: for help and tests, not for running one)."""
        return {name: self._load(name) for name in LAZY} | self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        self._loaded[name or cmd.name or ""] = cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*LAZY, *(n for n in self._loaded if n not in LAZY)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._loaded or cmd_name not in LAZY:
            return self._loaded.get(cmd_name)
        return self._load(cmd_name)

    def _load(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attribute = LAZY[name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            zh.chinese_command(command)
            self._loaded[name] = command
        return self._loaded[name]

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        # Load once, exit soon: what was loaded is never scanned again. The command's module is
        # imported with the collector paused (its passes over a growing heap of classes cost
        # `report` about 0.05 s) and frozen after it, like the schedules.
        gcpause.FREEZE = not args or args[0] != "serve"
        if not gcpause.FREEZE:  # serve: paused until the service is ready (bot/cli/serve.py)
            gcpause.pause()
        with gcpause.no_gc():
            name, command, rest = super().resolve_command(ctx, args)
        gcpause.FREEZE = name != "serve"
        self.ran = name
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            problem = _settings_problem(exc)
            if problem is not None:  # Settings() of whichever command: a bad environment variable
                click.echo(f"错误：{problem}", err=True)
                ctx.exit(1)
            db = sys.modules.get("storage.db")  # not imported: no command opened a database
            if db is None or not isinstance(exc, db.DatabaseUnavailable):
                raise
            click.echo(f"错误：{exc}", err=True)
            ctx.exit(1)
        finally:
            gcpause.release()  # serve's pause, when it ended before the service was ready
            if gcpause.FREEZE:  # run in-process (tests, scripts): the collector as it was
                gcpause.FREEZE = False
                gc.unfreeze()


def _settings_problem(exc: Exception) -> str | None:
    """The Chinese account of a bad environment when ``exc`` is the settings' validation error, else None."""
    pydantic_core = sys.modules.get("pydantic_core")  # not imported: no settings were read
    if pydantic_core is None or not isinstance(exc, pydantic_core.ValidationError) or exc.title != "Settings":
        return None
    from bot.settings import settings_problem

    return settings_problem(exc)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="remindbot")
def main() -> None:
    """remindbot：党建工作定期提醒机器人。"""


zh.chinese_metavars(main)


def entry() -> None:
    """``remindbot`` as a process of its own (``python -m bot``, the console script).

    A command other than ``serve`` ends with ``os._exit`` once its output is flushed: tearing the
    interpreter down (every module of SQLAlchemy and pydantic, the schedules loaded) cost ``report``
    a quarter of a second at a province's scale, a third of its time, for a process that is gone
    anyway. Everything a command writes is committed and closed before it returns; with another
    thread still running (a non-daemon one is waited for), multiprocessing in use, an exit code
    that is not a number, or output that cannot be flushed, the process ends the ordinary way.
    """
    try:
        main()
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
        if isinstance(code, int) and _may_end_at_once() and _flushed():
            os._exit(code)
        raise


def _may_end_at_once() -> bool:
    if main.ran in (None, "serve") or "multiprocessing" in sys.modules:
        return False
    return all(t.daemon or t is threading.main_thread() for t in threading.enumerate())


def _flushed() -> bool:
    """Log handlers, then standard output and error, flushed (as the interpreter's exit would)."""
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe: the ordinary exit reports it as it always did
        return False
    return True
