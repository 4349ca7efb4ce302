"""The running service: one owner for every resource, opened and closed in order.

``serve()`` starts the database, the shared HTTP client session, the dispatcher, the scheduler,
the follow-up loop, the schedules watcher and the web server; a SIGTERM or SIGINT stops them in
reverse order within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.config.issues import ProblemKey
from bot.config.models import Schedules
from bot.config.snapshot import last_good_checked_at
from bot.confirming.followup import FollowUps
from bot.delivery.compose import when_text
from bot.delivery.dispatch import Dispatcher
from bot.links import base_url_warning, names_shown
from bot.logs import channel_secrets, set_secrets
from bot.metrics import CONFIG_WARNINGS
from bot.platforms.dingtalk.config import DingTalkApp
from bot.platforms.dingtalk.stream import StreamPool
from bot.runtime import Runtime, open_runtime
from bot.scheduling.datewords import ahead_line
from bot.scheduling.scheduler import ReminderScheduler
from bot.scheduling.stages import stage_words
from bot.scheduling.timing import Fire, fires
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings
from bot.startup import bind_problem
from bot.watch import Reloader, admin_notifier, applied_notifier, tell_fixed_while_down, watch_schedules
from bot.web.app import RedactingAccessLogger, SafeAppRunner, make_app

log = logging.getLogger(__name__)
STOP_TIMEOUT = 5.0


def apply_schedules(runtime: Runtime, schedules: Schedules) -> None:
    set_secrets([*channel_secrets(schedules.channels.values()), runtime.settings.signing_key,
                 *(s for app in schedules.apps.values() for s in app.secrets())])
    runtime.schedules = schedules
    runtime.calendar = WorkCalendar(schedules.calendar)
    from bot.delivery.render import Renderer  # on a reload only: Jinja2 is not needed to be ready

    runtime.renderer = Renderer(runtime.settings.templates_dir)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None,
                schedules: Schedules | None = None, listen: socket.socket | None = None,
                on_listening: Callable[[], None] | None = None, warnings: Sequence[str] = (),
                refused: tuple[list[str], datetime, ProblemKey] | None = None) -> None:
    """Run until SIGTERM/SIGINT; ``schedules``: already loaded (``remindbot serve`` checks them first),
    with ``warnings``, their check's warnings as an admin reads them (logged already).

    ``refused``: the schedules folder had these errors (as an admin reads them, logged already),
    ``schedules`` are the last good ones, checked at that time (aware UTC), and what is wrong
    (:func:`bot.config.issues.problem_key`, the admin notice's key): shown as a refused reload
    (/healthz, the admin pages' banner, the metric, the admin channel told once) until a fix applies.

    ``listen``: the listening socket, already bound (``bot/startup.py``: the command binds it first
    and answers "starting" on it until here the web site takes it over, then calls ``on_listening``).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(open_runtime(settings, schedules=schedules, serving=True))
        runtime.reload.warnings = list(warnings)
        if refused is None:  # unchanged schedules reuse an earlier check: its time, as every command says it
            runtime.reload.last_good_at = last_good_checked_at(settings) or runtime.reload.last_good_at
        http = await stack.enter_async_context(aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.send_timeout_seconds)))
        # The web site first: a port in use must stop the start before any loop runs.
        await _start_web(runtime, stack, listen)
        if on_listening is not None:
            on_listening()
        dispatcher = Dispatcher(runtime.db, settings, runtime.channel, http, clock=runtime.clock,
                                base_url=settings.base_url,
                                admin_channel=lambda: runtime.schedules.service.admin_channel,
                                ticks=runtime.ticks)
        if settings.dry_run:
            # A rehearsal's messages are never sendable; real ones waiting from an earlier run
            # must not be marked as rehearsed either: they wait for the next real run.
            log.info("演练模式：不发送任何消息，此前待发送的正式消息留待正式运行时发送")
        else:
            runtime.wake_dispatcher = dispatcher.wake
            await dispatcher.start()
            stack.push_async_callback(dispatcher.stop, STOP_TIMEOUT)

        scheduler = ReminderScheduler(runtime)
        stack.push_async_callback(scheduler.stop)
        followups = FollowUps(runtime)
        await followups.start()
        stack.push_async_callback(followups.stop)

        streams = stream_pool(runtime, http)
        streams.apply(runtime.schedules.apps.values())
        stack.push_async_callback(streams.stop)

        def reloaded(schedules: Schedules) -> None:
            apply_schedules(runtime, schedules)
            refresh_warnings(runtime)
            scheduler.apply(schedules, runtime.calendar)
            streams.apply(schedules.apps.values())

        reloader = Reloader(settings, reloaded, current=lambda: runtime.schedules, state=runtime.reload,
                            tell_admin=admin_notifier(runtime), clock=runtime.clock,
                            tell_applied=applied_notifier(runtime))
        if refused is not None:
            runtime.reload.last_good_at = refused[1]
            await reloader.refused(refused[0], refused[2], logged=True)  # serve logged the count
        else:
            await tell_fixed_while_down(runtime)
        watcher = asyncio.create_task(watch_schedules(reloader, settings), name="watch-schedules")
        stack.push_async_callback(_cancel, watcher)

        first = await scheduler.start()
        caught = f"补发 {first.late} 项，错过 {first.missed} 项" if first else "首次调度检查失败，稍后重试"
        log.info("remindbot 已启动：监听 %s:%d，访问地址 %s（%d 个提醒，%s）", settings.host,
                 settings.port, settings.base_url, len(runtime.schedules.reminders), caught)
        log_admin_area(settings)
        refresh_warnings(runtime)
        await log_coming(runtime)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("正在停止……")
    log.info("已停止")


def refresh_warnings(runtime: Runtime) -> None:
    """Work out what the service warns of for the schedules in use: its own warnings (links under a
    local-only base URL, :func:`bot.links.base_url_warning`; every address listened on without https,
    ``Settings.exposure_warning``; holidays only provisional in the year ahead, :func:`holiday_warning`;
    a new one is logged here) and the schedules' (kept by the check that loaded them, which logged them:
    ``runtime.reload.warnings``). Every current one is shown on the admin pages (``runtime.warnings``)
    and counted by kind (``remindbot_config_warnings``)."""
    own = {"base_url": base_url_warning(runtime.settings, runtime.schedules),
           "host": runtime.settings.exposure_warning(), "holidays": holiday_warning(runtime)}
    for kind, warning in own.items():
        # The exposure is logged by ``serve`` as soon as the port is bound, before the stack loads.
        if warning and warning not in runtime.warnings and kind != "host":
            log.warning("%s", warning)
    runtime.warnings = [*(w for w in own.values() if w), *runtime.reload.warnings]
    for kind, warning in own.items():
        CONFIG_WARNINGS.labels(kind).set(1 if warning else 0)
    CONFIG_WARNINGS.labels("schedules").set(len(runtime.reload.warnings) + len(runtime.dated_warnings()))


HOLIDAYS_AHEAD = timedelta(days=400)  # the years ahead whose holidays must be known (as `validate` looks)


def holiday_warning(runtime: Runtime) -> str | None:
    """The years ahead whose holidays are only provisional (rule-based until the State Council announces
    them), in one sentence; None when every one is known."""
    now = runtime.clock()
    years = runtime.calendar.uncovered_years(now.date(), (now + HOLIDAYS_AHEAD).date())
    return runtime.calendar.coverage_note(*years) if years else None


class CannotStart(Exception):
    """The service cannot start; ``str()`` is one Chinese sentence for the admin (no traceback needed)."""


async def _start_web(runtime: Runtime, stack: AsyncExitStack, listen: socket.socket | None = None) -> None:
    """Bind (or take ``listen``, already bound) and start the web site (its cleanup pushed on ``stack``).

    Errors: ``CannotStart`` naming host:port when the address cannot be listened on (in use, not ours).
    """
    settings = runtime.settings
    # The access log would hold confirmation tokens (credentials): the class masks them.
    runner = SafeAppRunner(make_app(runtime), access_log_class=RedactingAccessLogger, shutdown_timeout=STOP_TIMEOUT)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    if listen is not None:
        await web.SockSite(runner, listen).start()
        return
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        raise CannotStart(bind_problem(settings.host, settings.port, exc)) from None


ADMIN_SETTINGS = "REMINDBOT_ADMINS（多个管理员），或 REMINDBOT_ADMIN_USER 和 REMINDBOT_ADMIN_PASSWORD"


def log_admin_area(settings: Settings) -> None:
    """Where the admin area is (a new admin opens the address and looks for it), and whether it is open."""
    if settings.admin_enabled:
        log.info("管理页面：%s/admin/", settings.base_url)
    else:
        log.info("管理页面：%s/admin/（未开启：设置 %s，重启服务后开启）", settings.base_url, ADMIN_SETTINGS)


def stream_pool(runtime: Runtime, http: aiohttp.ClientSession) -> StreamPool:
    """The DingTalk Stream clients (one per ``mode: stream`` app), to follow reloads with ``apply``."""
    from bot.web.callbacks import dingtalk_stream_callback

    async def on_message(app: DingTalkApp, topic: str, data: dict[str, Any],
                         message_id: str) -> dict[str, Any] | None:
        return await dingtalk_stream_callback(runtime, http, app, topic, data, message_id)

    return StreamPool(http, on_message)


async def log_coming(runtime: Runtime, count: int = 5) -> None:
    """Tell the operator what will happen next, so a new user knows what to wait for; a send whose
    occurrence an admin already fired ahead (``fire --date``) is marked as ``upcoming`` marks it."""
    now = runtime.clock()
    coming = sorted(
        (f for r in runtime.schedules.reminders.values() if r.enabled
         for f in fires(r, runtime.calendar, now, now + timedelta(days=31))),
        key=lambda f: f.fire_at,
    )[:count]
    dry = [c.name for c in runtime.schedules.channels.values() if c.dry_run]
    if runtime.settings.dry_run:
        log.info("演练模式：全部频道只记录、打印，不发送")
    elif dry:
        log.info("未配置 webhook 的频道（只记录、打印，不发送）：%s", names_shown(dry))
    ahead = await fired_ahead_of(runtime, coming)
    for f in coming:
        reminder = runtime.schedules.reminders[f.reminder_id]
        note = f"：{ahead_line(*ahead[id(f)], f.stage)}" if id(f) in ahead else ""
        log.info("接下来：%s %s（%s）%s", when_text(f.fire_at, reminder.zone), reminder.title,
                 stage_words(f.stage), note)


async def fired_ahead_of(runtime: Runtime, coming: Sequence[Fire]) -> dict[int, tuple[str, str | None]]:
    """``id(fire)`` -> when its occurrence went out ahead of its day, and who fired it (None: not
    recorded), through the one query the admin
    page's upcoming list uses; empty (nothing marked, the list still shown) when it cannot be read."""
    from bot.web.admin import mark_fired_early

    rows = sorted(({"reminder": runtime.schedules.reminders[f.reminder_id], "due": f.due, "fire": f} for f in coming),
                  key=lambda row: row["due"].due_at)
    try:
        await mark_fired_early(runtime.db, rows)
    except Exception as exc:  # the start goes on; only the marks are missing
        log.warning("无法读取数据库（%s），“接下来”未标出已提前发出的提醒", type(exc).__name__)
        return {}
    return {id(row["fire"]): (row["fired_early"], row["fired_early_by"]) for row in rows if row["fired_early"]}


async def _cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
