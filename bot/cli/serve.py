"""serve: the port bound and answering first, then the service's stack and schedules (bot/startup.py).

This module imports only what binding the port needs, so ``/healthz`` answers "starting" within a
fraction of a second of the command's start, whatever the size of the schedules.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

import click

from bot.config import gcpause
from bot.settings import Settings
from bot.startup import CannotBind, EarlyHealth, bind

if TYPE_CHECKING:
    from datetime import datetime

    from bot.config.issues import ConfigIssue, ProblemKey
    from bot.config.models import Schedules


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), help="HTTP 端口（默认读 PORT 环境变量，再默认 8080）")
@click.option("--dry-run", is_flag=True, help="演练模式：只记录和打印消息，不真正发送")
def serve(port: int | None, dry_run: bool) -> None:
    """启动服务：定时发送提醒、确认页面和管理后台（/healthz 健康检查）。"""
    # Until the event loop takes SIGTERM/SIGINT over (bot/service.py), a stop asked during the
    # start (imports, opening the schedules) must end the start with a line in the log and exit
    # code 0, not kill the process silently (SIGTERM's default) or print a traceback (SIGINT's).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_during_start)
    try:
        _command(port, dry_run)
    except StoppedDuringStart as stopped:
        said = f"启动尚未完成时收到停止信号（{stopped.name}），已停止"
        if logging.getLogger().handlers:  # the service's log is set up: the line goes where it goes
            logging.getLogger("bot.service").info(said)
        else:
            click.echo(said, err=True)
        sys.exit(0)


class StoppedDuringStart(BaseException):
    """SIGTERM/SIGINT before the service's loop handles them (a BaseException: no ``except
    Exception`` on the way, e.g. a schedules check reporting a crash, may take it for an error)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.name = signal.Signals(signum).name


def _stop_during_start(signum: int, _frame: FrameType | None) -> None:
    raise StoppedDuringStart(signum)


def _command(port: int | None, dry_run: bool) -> None:
    overrides: dict[str, object] = {}
    if port is not None:
        overrides["port"] = port
    if dry_run:
        overrides["dry_run"] = True
    s = Settings(**overrides)  # type: ignore[arg-type]
    from bot.logs import setup_logging

    # The log first: a stop asked at any moment of the start is said in it, with its time.
    setup_logging(s.log_format, s.log_level)
    if problem := s.admin_password_problem():
        click.echo(problem, err=True)
        sys.exit(1)
    # The port first: in use, the start ends here; free, /healthz answers "starting" (503) from now
    # on, while the service's stack is imported and the schedules are opened (bot/startup.py).
    try:
        sock = bind(s.host, s.port)
    except CannotBind as exc:
        click.echo(f"错误：{exc}", err=True)
        sys.exit(1)
    early = EarlyHealth(sock).start() if sock is not None else None
    try:
        if warning := s.exposure_warning():
            logging.getLogger("bot.service").warning(warning)
        _serve(s, sock, early)
    finally:
        if early is not None:
            early.stop()


def _serve(s: Settings, sock: socket.socket | None, early: EarlyHealth | None) -> None:
    """Import the service's stack, open the schedules and run (``early`` answers meanwhile).

    The cyclic garbage collector stays paused (``bot/config/gcpause.py``) until the service is ready
    (its first scheduling pass done, ``/healthz`` able to say 200), or ends before that: the start
    imports SQLAlchemy, aiohttp and the models and opens the schedules, hundreds of thousands of
    objects and almost no cycles, which the collector would otherwise walk again and again as the
    heap grows, and once more in full when the start is over (about 0.1 s of CPU at a province's
    scale). When ready, what exists is frozen (never scanned again) and the collector enabled.
    """
    gcpause.pause()  # already paused by the CLI; not when called otherwise
    try:
        from bot.cli.schedule import start_or_exit
        from bot.config.issues import bounded, problem_key
        from bot.config.snapshot import checked_text
        from bot.logs import channel_secrets, set_secrets
        from bot.platforms.markup import redact
        from bot.service import CannotStart

        schedules, warnings, refused = start_or_exit(s)
        set_secrets([*channel_secrets(schedules.channels.values()), s.signing_key,
                     *(v for app in schedules.apps.values() for v in app.secrets())])
        service_log = logging.getLogger("bot.service")
        refusal: tuple[list[str], datetime, ProblemKey] | None = None
        if refused is not None:  # logged as a refused reload logs them; the service shows the refusal
            from bot.config.yamlsource import shown_issues

            issues = shown_issues(refused.errors, s.schedules_dir, absolute=s.schedules_dir_absolute)
            errors = [redact(str(e)) for e in issues]
            shown, more = bounded(issues)
            for line in [*map(str, shown), *([more] if more else [])]:
                service_log.warning("%s", line)
            checked = checked_text(refused.last.checked_at)
            service_log.error("日程配置有 %d 处错误，按上一次有效的配置（%s 检查通过）启动", len(errors), checked)
            # what is wrong, not how it is worded nor on which line: the admin notice's key
            refusal = (errors, refused.last.checked_at, problem_key(refused.errors))
        warnings = _as_validate_shows(warnings, s)
        shown, more = bounded(warnings)  # logged as a reload logs them; shown on the admin pages
        for line in [*map(str, shown), *([more] if more else [])]:
            service_log.warning("%s", line)
        try:
            # Those of today's date are worked out whenever shown (Runtime.dated_warnings), not kept.
            asyncio.run(_run(s, schedules, sock, early, [redact(str(w)) for w in warnings if not w.dated],
                             refused=refusal))
        except CannotStart as exc:
            click.echo(f"错误：{exc}", err=True)
            sys.exit(1)
    finally:
        gcpause.release()


def _as_validate_shows(warnings: list[ConfigIssue], s: Settings) -> list[ConfigIssue]:
    """The start's warnings with their paths as ``validate`` prints them (absolute when the schedules
    folder is configured so), as the errors above and a reload's warnings are: the check names files
    relative to the folder's parent, which is not where an admin starting the service runs from."""
    if not warnings:
        return warnings  # PyYAML (yamlsource) only when there is something to show
    from bot.config.yamlsource import shown_issues

    return shown_issues(warnings, s.schedules_dir, absolute=s.schedules_dir_absolute)


async def _run(s: Settings, schedules: Schedules, sock: socket.socket | None, early: EarlyHealth | None,
               warnings: Sequence[str] = (), *,
               refused: tuple[list[str], datetime, ProblemKey] | None = None) -> None:
    """The service (``warnings``: the schedules' check's, as an admin reads them); the collector released
    (what the start made frozen) once it is ready. ``refused``: the folder's errors (as an admin reads
    them), when ``schedules``, the last good ones, were checked, and what is wrong (``problem_key``)."""
    from bot.service import serve as run

    ready = asyncio.Event()

    async def collect_when_ready() -> None:
        await ready.wait()
        gcpause.release(freeze=True)

    waiter = asyncio.create_task(collect_when_ready(), name="gc-after-start")
    try:
        await run(s, ready=ready, schedules=schedules, listen=sock, on_listening=early.stop if early else None,
                  warnings=warnings, refused=refused)
    finally:
        waiter.cancel()
