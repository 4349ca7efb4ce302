"""Watch schedules/ and message_templates/ while serving: a valid change takes effect at once;
an invalid one is refused with the same messages as ``remindbot validate`` and the last good
schedules keep running.

The folder is checked in a child process (:mod:`bot.config.worker`) within the limits of
:class:`bot.config.limits.Limits`, so no file can stall the service. A refusal is never only logged:
it is counted (``remindbot_reload_failures_total``), kept in :class:`bot.runtime.ReloadState` for
``/healthz`` and the admin pages' banner, and told once to the admin channel per distinct failure.
A change that empties a file or removes reminders (channels, or people or units in bulk) is
named in the log, told to the admin channel, shown on the admin pages until the next applied
reload and counted (``remindbot_reload_removals_total``), so a truncation is noticed; a reload that
applies after a refused one tells the admin channel 日程配置已恢复生效. Each reload says how many
reminders, people, units and channels run now, and how that changed.
A batch of file events that leaves every file as it was when last applied (a long copy's last
events arriving while the check of its first ran) reloads nothing, so it is not logged twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from stat import S_ISDIR
from typing import TYPE_CHECKING

from watchfiles import awatch

from bot.config.issues import ProblemKey, bounded, problem_key
from bot.config.limits import Limits
from bot.config.models import Schedules
from bot.config.snapshot import cache_dir_for, last_good_checked_at
from bot.config.worker import check_in_worker
from bot.metrics import RELOAD_FAILURES, RELOAD_REMOVALS
from bot.platforms.markup import redact
from bot.runtime import ReloadState, system_clock
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
# a refusal's errors (as an admin reads them) and what is wrong (bot.config.issues.problem_key)
TellAdmin = Callable[[list[str], ProblemKey], Awaitable[None]]
# an applied reload's removals (lines, as an admin reads them) and whether it ended a refusal
TellApplied = Callable[[list[str], bool], Awaitable[None]]
NOTICE_ERRORS = 10  # errors quoted in the admin-channel notice (the rest are counted)
BULK_SHARE = 0.1  # people or units fewer by at least this share (or any when fewer than 10) are a removal told


@dataclass
class Reloader:
    """One reload: check the folder off the event loop, apply it when valid, make a refusal visible.

    ``apply`` receives valid schedules; ``current`` gives the running ones (to log what a change
    removes); ``state`` is updated on every attempt; ``tell_admin`` receives the errors of each
    new, distinct failure; ``tell_applied`` what an applied reload removed and whether it ended a
    refusal, when either.
    """

    settings: Settings
    apply: Callable[[Schedules], None]
    current: Callable[[], Schedules | None] = lambda: None
    state: ReloadState = field(default_factory=ReloadState)
    tell_admin: TellAdmin | None = None
    clock: Callable[[], datetime] = system_clock
    tell_applied: TellApplied | None = None
    _told: tuple[str, ...] | None = field(default=None, init=False, repr=False)

    async def __call__(self) -> bool:
        """Returns whether the folder was applied."""
        s = self.settings
        before = set(folder_state(s))  # the files the check is about to read
        schedules, issues = await check_in_worker(s.schedules_dir, templates_dir=s.templates_dir,
                                                  limits=Limits.from_settings(s), timeout=s.reload_timeout_seconds,
                                                  cache_dir=cache_dir_for(s.var_dir, s.schedules_cache))
        from bot.config.yamlsource import shown_issues  # paths as validate shows them (one rule)

        wrong = problem_key(i for i in issues if not i.warning)  # the check's own labels, however shown
        issues = shown_issues(issues, s.schedules_dir, absolute=s.schedules_dir_absolute)
        shown, more = bounded(issues)
        for issue in shown:
            (log.warning if issue.warning or schedules is None else log.info)("%s", issue)
        if more:
            log.warning("%s", more)
        if schedules is None:
            await self.refused([redact(str(i)) for i in issues if not i.warning], wrong)
            return False
        absent = before ^ set(folder_state(s)) | {f for f in before if not (s.schedules_dir / f).exists()}
        old = self.current()
        removed = [redact(line) for line in removals(old, schedules, s.schedules_dir, gone=absent)]
        for line in removed:
            log.warning("%s", line)
        # Before apply: it shows them. Those of today's date are worked out when shown (Runtime.dated_warnings).
        self.state.warnings = [redact(str(i)) for i in issues if i.warning and not i.dated]
        self.apply(schedules)
        now = self.clock()
        recovered = not self.state.ok
        if recovered:
            self.state.since = now
        # The check's time as the last good entry keeps it (an unchanged folder keeps its first check's):
        # the banner then names the time ``validate`` and a restart on a broken edit name.
        self.state.ok, self.state.errors = True, []
        self.state.last_good_at = last_good_checked_at(s) or now
        self.state.removed, self.state.removed_at = removed, now if removed else None
        self._told = None
        log.info("日程配置已重新加载：%s", counts_text(old, schedules))
        if removed:
            RELOAD_REMOVALS.inc()
        if (removed or recovered) and self.tell_applied is not None:
            await self.tell_applied(removed, recovered)
        return True

    async def refused(self, errors: list[str], wrong: ProblemKey, *, logged: bool = False) -> None:
        """A check found ``errors`` (as an admin reads them; the service's start on the last good
        schedules too), ``wrong`` naming them (:func:`bot.config.issues.problem_key`): counted, kept in
        ``state``, told to the admin channel once per distinct failure. ``logged``: the caller already
        logged the count (``serve``'s start), so it is not said twice."""
        RELOAD_FAILURES.inc()
        if not logged:
            log.error("日程配置有 %d 处错误，未生效；继续使用上一次有效的配置", len(errors))
        if self.state.ok:
            self.state.since = self.clock()
        self.state.ok, self.state.errors = False, errors
        if tuple(errors) == self._told:
            return  # the admin channel already has exactly these
        self._told = tuple(errors)
        if self.tell_admin is not None:
            await self.tell_admin(errors, wrong)


async def reload_schedules(settings: Settings, apply: Callable[[Schedules], None]) -> bool:
    """Check the folder (in a child process); apply it when valid. Returns whether it was applied."""
    return await Reloader(settings, apply)()


async def watch_schedules(reload: Callable[[], Awaitable[object]], settings: Settings,
                          *, debounce_ms: int = 300) -> None:
    """Run ``reload`` after each batch of changes (changes made meanwhile make the next batch).

    A batch after which every file a check reads is as it was when last applied (size and
    modification time) is skipped: a copy taking longer than the check makes several batches, and an
    editor's lock or swap files (opening people.xlsx in Excel) change nothing the check reads.
    """
    folders = [settings.schedules_dir, settings.templates_dir]
    applied: dict[str, tuple[int, int]] | None = None
    async for _changes in awatch(*[str(f) for f in folders if f.exists()], debounce=debounce_ms,
                                 recursive=True):
        state = folder_state(settings, templates=True)
        if state == applied:
            log.debug("日程配置文件与上次加载时相同，不再重新加载")
            continue
        try:
            applied = state if await reload() is True else None
        except Exception:  # a reload bug must not stop the service
            applied = None
            log.exception("重新加载日程配置时出错，继续使用上一次有效的配置")


def folder_state(settings: Settings, *, templates: bool = False) -> dict[str, tuple[int, int]]:
    """Size and modification time (ns) of each file a check reads: the schedules' source files (as
    :func:`bot.config.issues.schedule_files` lists them: no editor's lock files), and (``templates``)
    the templates folder's files but hidden and backup ones; by path relative to the schedules folder.
    A few dozen ``stat`` calls."""
    from bot.config.issues import schedule_files

    folder = settings.schedules_dir
    paths = [(str(p.relative_to(folder)), p) for p in schedule_files(folder)] if folder.is_dir() else []
    if templates and settings.templates_dir.is_dir():
        paths += [(f"templates:{p.relative_to(settings.templates_dir)}", p)
                  for p in sorted(settings.templates_dir.rglob("*"))
                  if not p.name.startswith((".", "~")) and not p.name.endswith(("~", ".swp"))]
    out: dict[str, tuple[int, int]] = {}
    for key, path in paths:
        try:
            stat = path.stat()
        except OSError:  # gone meanwhile
            continue
        if not S_ISDIR(stat.st_mode):  # a pipe or device named like a schedules file too: the check refuses it
            out[key] = (stat.st_size, stat.st_mtime_ns)
    return out


def counts_text(old: Schedules | None, new: Schedules) -> str:
    """``14 个提醒，10010 人（增加 10000 人），2000 个单位，3 个频道，1 个应用``: what runs now, and the change.

    Apps are counted as ``validate`` counts them, so the reload line and the check's line agree.
    """
    parts = []
    for section, word in _FILE_COUNTED:
        n = new.size(section)
        change = n - old.size(section) if old is not None else 0
        said = f"（增加 {change} {word}）" if change > 0 else f"（减少 {-change} {word}）" if change < 0 else ""
        parts.append(f"{n} {word}{said}")
    return "，".join(parts)


# ---------------------------------------------------------------- what a change removes

_COUNTED = (("reminders", "个提醒"), ("people", "人"), ("units", "个单位"), ("channels", "个频道"))
_FILE_COUNTED = (*_COUNTED, ("apps", "个应用"))  # what a file emptied or deleted took away


def removals(old: Schedules | None, new: Schedules, folder: Path, *, gone: set[str] | None = None) -> list[str]:
    """Lines (in Chinese) naming what a change takes away: files left empty or deleted, reminders removed.

    ``gone``: files (relative to ``folder``) missing before or after the check, or deleted meanwhile:
    said 已删除 like a file missing now, so a deletion reads the same whichever file it was.
    """
    if old is None:
        return []
    lines = []
    before, after = _entries_by_file(old), _entries_by_file(new)
    for label, counts in before.items():
        if label in after:
            continue
        what = "、".join(f"{counts[section]} {word}" for section, word in _FILE_COUNTED if counts[section])
        path = folder.resolve().parent / label
        deleted = not path.exists() or (gone is not None and _relative(path, folder) in gone)
        state = "已删除" if deleted else "变为空"
        lines.append(f"{label} {state}" + (f"，移除了 {what}" if what else ""))  # no "移除了 " with nothing after
    removed = [r for r in old.reminders.values() if r.id not in new.reminders]
    if removed:
        lines.append(f"移除了 {len(removed)} 个提醒：" + "、".join(f"{r.title}（{r.id}）" for r in removed))
    channels = [c for c in old.channels.values() if c.id not in new.channels]
    if channels:
        lines.append(f"移除了 {len(channels)} 个频道：" + "、".join(f"{c.name}（{c.id}）" for c in channels))
    apps = [a for a in old.apps.values() if a.id not in new.apps]
    if apps:  # their queued direct messages die with a reason naming the app (bot/delivery/dispatch.py)
        lines.append(f"移除了 {len(apps)} 个应用：" + "、".join(f"{a.name or a.id}（{a.id}）" for a in apps)
                     + "；其尚未发出的私信不再发送，记为投递失败（见“消息投递”页）")
    return lines + bulk_removals(old, new)


def bulk_removals(old: Schedules, new: Schedules) -> list[str]:
    """``人员从 10010 人减少到 10 人``: people or units fewer by a tenth or more (any, under ten);
    counted without building a person (``Schedules.size``)."""
    lines = []
    for section, word in (("people", "人员"), ("units", "单位")):
        before, after = old.size(section), new.size(section)
        if before - after >= max(1, before * BULK_SHARE):
            unit = "人" if section == "people" else "个"
            lines.append(f"{word}从 {before} {unit}减少到 {after} {unit}")
    return lines


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _entries_by_file(schedules: Schedules) -> dict[str, Counter[str]]:
    """File label -> entries per section, from ``sources`` ("reminders:<id>" -> "file:line")."""
    files: dict[str, Counter[str]] = {}
    for key, where in schedules.sources.items():
        section = key.split(":", 1)[0]
        files.setdefault(where.rsplit(":", 1)[0], Counter())[section] += 1
    return files


# ---------------------------------------------------------------- telling the admin channel


def admin_notifier(runtime: Runtime) -> TellAdmin:
    """Queue a notice of refused schedules to the running schedules' ``service.admin_channel``."""

    async def tell(errors: list[str], wrong: ProblemKey) -> None:
        last = await _last_notice(runtime)
        # Earlier versions keyed the notice by the errors' words (the same words are the same errors),
        # then by their places (``wrong.earlier``).
        worded = hashlib.sha256("\n".join(errors).encode()).hexdigest()[:16]
        if last.told in (f"{ERRORS_KEY}:{wrong.key}", f"{ERRORS_KEY}:{wrong.earlier}", f"{ERRORS_KEY}:{worded}"):
            # A restart (a service in a restart loop, or upgraded: its words may differ) with the very
            # errors the channel already has.
            log.info("管理员频道此前已收到同样的日程配置错误通知，不再重复")
            return
        how = await _tell_admin_channel(runtime, "日程配置未生效", notice_text(errors),
                                        key=_once_key(f"{ERRORS_KEY}:{wrong.key}", last),
                                        summary=f"日程配置未生效通知（{len(errors)} 处错误）")
        _log_told(how, f"日程配置未生效（{len(errors)} 处错误）")

    return tell


# The admin-channel notices about the schedules, as their outbox keys begin (admin:<key>:<time>): the
# last of them says what the channel was last told — these errors, or that they were fixed.
ERRORS_KEY = "schedules"
RECOVERED_KEY = "schedules-recovered"


@dataclass(frozen=True)
class LastNotice:
    """The last admin-channel notice about the schedules, as the database keeps it."""

    row_id: int | None  # its outbox row's id; 0 when there is none, None when it could not be read
    told: str | None  # ``schedules:<digest>`` or ``schedules-recovered``; None when not told (see below)


async def last_schedules_notice(runtime: Runtime) -> str | None:
    """``schedules:<digest>`` or ``schedules-recovered``: the last notice of refused or recovered
    schedules queued to the admin channel (by any start of the service); None when none was, or the
    last one failed (dead) or was only rehearsed. A row only recorded because the admin channel has no
    webhook (then and now) counts as told: a restart loop would otherwise queue one per start. The
    database keeps it across restarts, so a service in a restart loop tells each distinct problem once."""
    return (await _last_notice(runtime)).told


async def _last_notice(runtime: Runtime) -> LastNotice:
    """:func:`last_schedules_notice` and the id of the row it read (the next notice's key names it).

    Rows of an earlier version keyed by time (``admin:schedules:<digest>:<time>``) that are still
    pending and never tried are left out: that version queued a rehearsal's notice so (without
    ``dry/``, and no dispatcher ran to send it), and such a row must not count as the admin told."""
    from sqlmodel import and_, col, not_, or_, select

    from storage.models import Outbox

    keys = col(Outbox.dedupe_key)
    rehearsed_before = and_(col(Outbox.status) == "pending", col(Outbox.attempts) == 0, not_(keys.contains(":after-")))
    query = (select(Outbox.id, Outbox.dedupe_key, Outbox.status, Outbox.robot)
             .where(or_(keys.startswith(f"admin:{ERRORS_KEY}:"), keys.startswith(f"admin:{RECOVERED_KEY}:")))
             .where(not_(rehearsed_before))
             .order_by(col(Outbox.id).desc()).limit(1))
    try:
        async with runtime.db.session() as session:
            row = (await session.exec(query)).first()
    except Exception as exc:  # the notice matters more than its dedupe: tell rather than stay silent
        log.warning("无法读取此前的管理员通知记录：%s", type(exc).__name__)
        return LastNotice(None, None)
    if row is None:
        return LastNotice(0, None)
    row_id, key, status, robot = row
    if status == "dead" or (status == "dry_run" and not _recorded_only(runtime, robot)):
        return LastNotice(row_id, None)
    kind, _, rest = key.removeprefix("admin:").partition(":")
    return LastNotice(row_id, RECOVERED_KEY if kind == RECOVERED_KEY else f"{kind}:{rest.split(':', 1)[0]}")


def _once_key(what: str, last: LastNotice) -> str:
    """The notice's outbox key: ``<what>:after-<id of the last notice row>``. Two instances starting
    together read the same last row, so they make the same key and the database's unique key lets one
    in (``ON CONFLICT DO NOTHING``); the next notice after it names another row. When the last row could
    not be read, the time (``<what>:<now>``, as before): told rather than silent."""
    return f"{what}:after-{last.row_id}" if last.row_id is not None else what


async def tell_fixed_while_down(runtime: Runtime) -> None:
    """A start on valid schedules after the admin channel was last told of errors: they were fixed while
    the service was down (or restarting), so say 已恢复生效 — and the next error, even the same one, is told again."""
    last = await last_schedules_notice(runtime)
    if last is not None and last.startswith(f"{ERRORS_KEY}:"):
        await applied_notifier(runtime)([], True)


def applied_notifier(runtime: Runtime) -> TellApplied:
    """Queue a notice of an applied reload that removed things or ended a refusal to ``service.admin_channel``."""

    async def tell(removed: list[str], recovered: bool) -> None:
        title = "日程配置已恢复生效" if recovered else "日程配置已生效，有内容被移除"
        key = "schedules-removed"
        if recovered:
            last = await _last_notice(runtime)
            if last.told == RECOVERED_KEY and not removed:
                log.info("管理员频道此前已收到日程配置已恢复生效的通知，不再重复")  # another instance told it
                return
            key = _once_key(RECOVERED_KEY, last)
        how = await _tell_admin_channel(runtime, title, applied_text(removed, recovered), key=key,
                                        summary=f"{title}通知" + (f"（{len(removed)} 项移除）" if removed else ""))
        _log_told(how, title)

    return tell


def _recorded_only(runtime: Runtime, robot: str) -> bool:
    """Whether a dry_run row of ``robot`` was only recorded for want of a webhook, which the admin channel
    still lacks. Rehearsals are queued under ``dry/`` keys (never read back here); a webhook set since
    means the admin has not seen the notice yet."""
    from bot.delivery.outbox import robot_key

    channel_id = runtime.schedules.service.admin_channel
    channel = runtime.channel(channel_id) if channel_id else None
    return channel is not None and robot.startswith("dry:") and robot_key(channel) == robot


# how _tell_admin_channel queued a notice; ALREADY: its key was there (another instance queued it)
SENT, RECORDED, REHEARSED, ALREADY = "sent", "recorded", "rehearsed", "already"


def _log_told(how: str | None, what: str) -> None:
    if how == SENT:
        log.info("已通知管理员频道：%s", what)
    elif how == RECORDED:
        log.info("管理员频道未配置 webhook，通知只记录、不发送：%s", what)
    elif how == REHEARSED:
        log.info("演练：管理员频道的通知只记录、不发送：%s", what)
    elif how == ALREADY:
        log.info("同时启动的另一实例已通知管理员频道，不再重复：%s", what)


async def _tell_admin_channel(runtime: Runtime, title: str, markdown: str, *, key: str,
                              summary: str) -> str | None:
    """Queue one message to the running schedules' admin channel (``admin:<key>``, a key made once
    per notice by :func:`_once_key`, else ``admin:<key>:<now>``); how (:data:`SENT`, :data:`RECORDED`,
    :data:`REHEARSED`, :data:`ALREADY`: the key was there), or None when it was not queued."""
    from bot.delivery import outbox
    from bot.platforms.base import Message
    from bot.platforms.registry import platform_for

    channel_id = runtime.schedules.service.admin_channel
    channel = runtime.channel(channel_id) if channel_id else None
    if channel is None:
        return None
    now = runtime.clock()
    rehearsal = bool(runtime.settings.dry_run)
    try:
        adapter = platform_for(channel)
        bodies = adapter.build(channel, Message(title=title, markdown=markdown))
        once = ":after-" in key
        async with runtime.db.session() as session:
            created = await outbox.enqueue(
                session, dedupe_key=f"admin:{key}" if once else f"admin:{key}:{now.isoformat()}", channel=channel,
                platform=getattr(channel, "platform", adapter.name), bodies=bodies, stage="admin",
                summary=summary, now=now, dry_run=rehearsal)  # a rehearsal's dry/ key never dedupes a real one
            await session.commit()
    except Exception as exc:  # the log, /healthz and the admin pages still show it
        log.warning("无法通知管理员频道：%s", type(exc).__name__)
        return None
    if not created:
        return ALREADY
    runtime.wake_dispatcher()
    return REHEARSED if rehearsal else RECORDED if channel.dry_run else SENT


def notice_text(errors: list[str]) -> str:
    quoted = "\n".join(f"> {e}" for e in errors[:NOTICE_ERRORS])
    more = f"\n> ……另有 {len(errors) - NOTICE_ERRORS} 处" if len(errors) > NOTICE_ERRORS else ""
    # No heading of its own: the platform shows the title (日程配置未生效) once.
    return (f"共 {len(errors)} 处错误，服务继续使用上一次有效的配置：\n\n{quoted}{more}\n\n"
            "请修改后保存，改正后会自动生效（也可运行 remindbot validate 检查）。")


def applied_text(removed: list[str], recovered: bool) -> str:
    """The admin channel's notice of an applied reload: recovered, and what it removed."""
    # No heading of its own: the platform shows the title (日程配置已恢复生效 / …有内容被移除) once.
    head = "此前的错误已改正，服务按新的配置运行。" if recovered else ""
    if not removed:
        return head
    quoted = "\n".join(f"> {line}" for line in removed[:NOTICE_ERRORS])
    more = f"\n> ……另有 {len(removed) - NOTICE_ERRORS} 项" if len(removed) > NOTICE_ERRORS else ""
    return (f"{head}\n\n" if head else "") + (
        f"这次修改移除了以下内容，被移除的提醒不再发送：\n\n{quoted}{more}\n\n"
        "如果不是有意移除，请恢复相应的文件或条目后保存。")
