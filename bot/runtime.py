"""What the running parts share: settings, database, the current schedules and a clock.

The service owns one ``Runtime``; a schedules reload swaps ``schedules`` and ``calendar`` in
place, so every part sees the last good configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bot.platforms.appsend import CHANNEL_PREFIX, AppChannel
from bot.platforms.tokens import TokenCache

if TYPE_CHECKING:
    from bot.config.models import Schedules
    from bot.delivery.render import Renderer
    from bot.scheduling.workdays import WorkCalendar
    from bot.settings import Settings
    from storage.db import Database


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReloadState:
    """The last schedules reload: shown by /healthz and the admin pages (a failure is never only logged)."""

    ok: bool = True
    since: datetime | None = None  # aware UTC: when the current state (good or failing) began
    errors: list[str] = field(default_factory=list)  # the validation errors, as an admin reads them
    # aware UTC: when the check that produced the running schedules passed, the time the folder's last
    # good entry names (``bot.config.snapshot.last_good_checked_at``): the same time the log, the
    # commands' notes and ``validate`` say; when the service loaded them where there is no entry (no cache)
    last_good_at: datetime | None = None
    # the running schedules' warnings (a role one typo from a used one, a file left unread…), as an
    # admin reads them (secrets masked); logged by the check that found them. Not those of today's
    # date (a one-off date past): :meth:`Runtime.dated_warnings` works them out whenever shown
    warnings: list[str] = field(default_factory=list)
    # what the last applied reload removed (reminders, channels, files emptied, people or units in
    # bulk), as an admin reads it, and when: the admin pages show it until the next applied reload
    removed: list[str] = field(default_factory=list)
    removed_at: datetime | None = None


@dataclass
class Runtime:
    settings: Settings
    db: Database
    schedules: Schedules
    calendar: WorkCalendar
    renderer: Renderer
    clock: Callable[[], datetime] = system_clock  # aware UTC "now"; tests pass their own
    wake_dispatcher: Callable[[], None] = field(default=lambda: None)
    link_secret: str = ""  # signs confirmation links; set by open_runtime (key + database nonce)
    # Each background loop ("scheduler", "dispatcher", "followups", ...) stamps its last tick here
    # (aware UTC), so /healthz can tell a live loop from a stuck one.
    ticks: dict[str, datetime] = field(default_factory=dict)
    reload: ReloadState = field(default_factory=ReloadState)
    # What the service warns of at start and after each reload (a local-only base URL in links sent
    # for real, the schedules' own warnings): logged, shown on every admin page until the cause is
    # gone, and counted by kind (remindbot_config_warnings); bot.service.refresh_warnings. The admin
    # pages add :meth:`dated_warnings`, of the day they are shown on.
    warnings: list[str] = field(default_factory=list)
    # App access tokens, shared by every sender of this process (bot/platforms/tokens.py).
    tokens: TokenCache = field(default_factory=TokenCache)
    _app_channels: dict[str, Any] = field(default_factory=dict)
    # Opens ``db`` when the runtime was opened without it (``open_runtime(database=False)``); then None.
    opener: Callable[[], Awaitable[None]] | None = None
    # A command running on the last good schedules (``open_runtime(last_good=True)`` with errors in the
    # folder): the errors and that entry, for the note it prints (``bot.config.snapshot.Refused``).
    refused: Any = None
    # A command's ``storage.writes.SqliteWriter`` on a SQLite file (``fire``): the firing path writes
    # through it, without SQLAlchemy; None: through a session of ``db``.
    writer: Any = None

    async def ensure_database(self) -> None:
        """Open the database now if this runtime was opened without it (a no-op otherwise)."""
        opener, self.opener = self.opener, None
        if opener is not None:
            await opener()

    def dated_warnings(self) -> list[str]:
        """The running schedules' one-offs that will not fire as of :attr:`clock` (their day past, or
        skipped by ``holiday: skip``), as an admin reads them (paths as ``validate`` shows them, secrets
        masked): worked out whenever they are shown, so a date that passes while the folder stays
        unchanged is warned of that day (bot/config/dated.py)."""
        from bot.config.dated import unsent_once
        from bot.config.issues import group_repeats
        from bot.config.yamlsource import shown_issues
        from bot.platforms.markup import redact

        found = group_repeats(unsent_once(self.schedules.dated, self.clock(), lambda: self.calendar))
        if not found:
            return []
        s = self.settings
        return [redact(str(i)) for i in shown_issues(found, s.schedules_dir, absolute=s.schedules_dir_absolute)]

    @property
    def link_key(self) -> str:
        if self.opener is not None and not self.link_secret:  # signed with the database's nonce, never without
            raise RuntimeError("数据库尚未打开：确认链接的签名需要数据库，先调用 Runtime.ensure_database()")
        return self.link_secret or self.settings.signing_key

    def channel(self, channel_id: str):  # type: ignore[no-untyped-def]
        """A group channel by id, or an app's direct-message channel (``app:<app id>``)."""
        if channel_id.startswith(CHANNEL_PREFIX):
            app = self.schedules.apps.get(channel_id[len(CHANNEL_PREFIX):])
            return self.app_channel(app) if app is not None and app.can_send else None
        return self.schedules.channels.get(channel_id)

    def app_channel(self, app: Any) -> AppChannel:
        """The outbox channel of an app (the same object while the app's config is unchanged)."""
        known = self._app_channels.get(app.id)
        if known is None or known.app is not app:
            known = self._app_channels[app.id] = AppChannel.of(app, self.tokens)
        return known


def load_runtime_parts(settings: Settings, schedules: Schedules | None = None
                       ) -> tuple[Schedules, WorkCalendar, Renderer]:
    """The schedules (``schedules`` when given, else from the snapshot cache), calendar and renderer."""
    from bot.config.snapshot import load_for
    from bot.scheduling.workdays import WorkCalendar

    schedules = schedules if schedules is not None else load_for(settings)
    return schedules, WorkCalendar(schedules.calendar), cast("Renderer", LazyRenderer(settings.templates_dir))


class LazyRenderer:
    """A ``bot.delivery.render.Renderer`` made on first use: ``status`` and ``report`` render no template,
    and need not import Jinja2. Every attribute is the real renderer's."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._real: Renderer | None = None

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            from bot.delivery.render import Renderer

            self._real = Renderer(self.folder)
        return getattr(self._real, name)


class _NotOpened:
    """``Runtime.db`` of a runtime opened without its database (``open_runtime(database=False)``) until
    :meth:`Runtime.ensure_database`: any use before that fails loudly instead of reading nothing."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("数据库尚未打开（open_runtime(database=False)）：先调用 Runtime.ensure_database()")


@asynccontextmanager
async def started_database(settings: Settings, *, create: bool = True,
                           serving: bool = False) -> AsyncIterator[tuple[Database, str]]:
    """The database, started (waiting up to ``settings.db_start_timeout_seconds``), and the key that
    signs links (secret key + the database's nonce); stopped on leaving. ``create``: as
    :class:`storage.db.Database` (false: a SQLite file that does not exist is an error, never made);
    ``serving``: as there (the service is starting: a refusal says “放弃启动”).

    Errors: ``storage.db.DatabaseUnavailable`` (one Chinese sentence) when it cannot be used."""
    from storage.db import Database

    db = Database(settings.database_url, schema=settings.database_schema or None, create=create, serving=serving)
    try:
        await db.start(wait_seconds=settings.db_start_timeout_seconds)
    except BaseException:
        await db.stop()
        raise
    try:
        yield db, f"{settings.signing_key}:{await db.instance_nonce()}"
    finally:
        await db.stop()


@asynccontextmanager
async def open_runtime(settings: Settings, *, clock: Callable[[], datetime] | None = None,
                       schedules: Schedules | None = None, database: bool = True,
                       last_good: bool = False, create: bool = True, serving: bool = False) -> AsyncIterator[Runtime]:
    """Schedules (``schedules`` when already loaded), calendar, renderer and a started database;
    for the CLI and the service (``bot.service`` re-exports it).

    Imports only what a command needs (the database and the schedules), not the web stack, the
    scheduler or the dispatcher: ``remindbot status`` at a province's scale was mostly imports.
    ``database=False`` (``remindbot preview``, which writes nothing): the database is neither imported
    nor opened until :meth:`Runtime.ensure_database` asks for it (figures for a report or a leader).

    ``last_good`` (the read/record commands): when the folder has errors, the last schedules that
    passed a check run instead, and ``runtime.reload`` says so (not ok: the errors, and when the
    schedules in use were checked); without a last good entry, ConfigError as always.

    ``create`` false (the commands that only read or record): a SQLite file that does not exist is
    ``storage.db.DatabaseMissing`` when the database is opened, and no file is made; so is an existing
    file without remindbot's tables, or a PostgreSQL database or schema without them, and none are
    made (nor the schema). ``serving``: the service's own start.

    Errors: ``storage.db.DatabaseUnavailable`` (one Chinese sentence) when the database cannot be
    used within ``settings.db_start_timeout_seconds``.
    """
    refused = None
    if schedules is None and last_good:
        from bot.config.snapshot import load_or_last_good

        schedules, refused = load_or_last_good(settings)
    schedules, calendar, renderer = load_runtime_parts(settings, schedules)
    clock = clock or system_clock
    async with AsyncExitStack() as stack:
        runtime = Runtime(settings=settings, db=cast("Database", _NotOpened()), schedules=schedules,
                          calendar=calendar, renderer=renderer, clock=clock)

        async def attach() -> None:
            opened = started_database(settings, create=create, serving=serving)
            runtime.db, runtime.link_secret = await stack.enter_async_context(opened)

        runtime.opener = attach
        if database:
            await runtime.ensure_database()
        loaded = clock()
        runtime.reload = ReloadState(ok=True, since=loaded, last_good_at=loaded)
        if refused is not None:
            from bot.config.yamlsource import shown_issues  # the admin banner's paths as validate shows them

            shown = shown_issues(refused.errors, settings.schedules_dir, absolute=settings.schedules_dir_absolute)
            runtime.reload = ReloadState(ok=False, since=loaded, errors=[str(i) for i in shown],
                                         last_good_at=refused.last.checked_at)
            runtime.refused = refused
        yield runtime
