"""preview, fire, send-test."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import click

from bot.cli.people import NoSuchPerson, person_named
from bot.cli.schedule import ZONE, load_or_exit, read_fired_ahead, refuse, say_last_good
from bot.cli.values import DAY
from bot.config import gcpause
from bot.config.limits import MAX_YEAR
from bot.config.models import Reminder, Schedules
from bot.delivery.compose import Planned, build_bodies, date_text, when_text
from bot.delivery.render import Renderer
from bot.platforms.registry import platform_title, shown_webhook
from bot.runtime import Runtime, open_runtime
from bot.scheduling.datewords import ahead_text, unsent_text
from bot.scheduling.planning import LINK_PLACEHOLDER, deadline_for, plan_fire, report_figures
from bot.scheduling.stages import parse_stage, stage_words
from bot.scheduling.timing import Due, Fire, due_times, fires, next_fire
from bot.scheduling.workdays import WorkCalendar
from bot.settings import Settings

if TYPE_CHECKING:  # firing is imported where it runs: preview loads no database code
    from typing import Any

    from bot.config.models import Person
    from bot.scheduling.occurrences import FireResult
    from bot.scheduling.planning import FiguresFor
    from storage.writes import SqliteWriter


def _reminder(runtime: Runtime, reminder_id: str) -> Reminder:
    reminder = runtime.schedules.reminders.get(reminder_id)
    if reminder is None:
        from bot.cli.unknown import unknown_reminder  # difflib: only when an id is unknown

        click.echo(unknown_reminder(runtime.schedules.reminders, reminder_id), err=True)
        sys.exit(1)
    return reminder


def find_due(reminder: Reminder, calendar: WorkCalendar, on: date | None, now: datetime) -> Due:
    """The occurrence on a local date (or moved off it by the holiday rule, which is said), or (no
    date) the next one from now."""
    if on is None:
        nxt = next_fire(reminder, calendar, now)
        while nxt is not None and nxt.stage != "due":
            nxt = next_fire(reminder, calendar, nxt.fire_at)
        if nxt is None:
            click.echo(f"“{reminder.title}”以后不会再提醒。", err=True)
            sys.exit(1)
        return nxt.due
    start = datetime.combine(on, datetime.min.time(), tzinfo=reminder.zone)
    dues = due_times(reminder, calendar, start, start + timedelta(days=1))
    from bot.cli.schedule import moved_from, moved_text  # new to fire's path: imported where used

    moved = None if dues else moved_from(reminder, calendar, on)
    if moved is not None:  # the holiday rule moved that day's occurrence: that one, said so
        click.echo(f"说明：“{reminder.title}”{moved_text(moved, on, reminder.zone)}。", err=moved.skipped)
        if not moved.skipped:
            return moved
    if not dues:
        later = due_times(reminder, calendar, start, start + timedelta(days=400))
        click.echo(f"“{reminder.title}”在 {date_text(on)} 没有提醒（考虑节假日调整后）。{_later_hint(reminder, later)}",
                   err=True)
        sys.exit(1)
    return dues[0]


def _later_hint(reminder: Reminder, later: list[Due]) -> str:
    """The next occurrence after a day with none, offered only in the years a date may be typed
    (:data:`MAX_YEAR`): a date the command would refuse as input is no suggestion."""
    within = [due for due in later if due.due_at.astimezone(reminder.zone).year <= MAX_YEAR]
    if within:
        return f"此后最近的一次是 {when_text(within[0].due_at, reminder.zone)}。"
    return f"此后到 {MAX_YEAR} 年底（可查询的最后一年）没有提醒。" if later else ""


def _show(renderer: Renderer, plan: Planned) -> None:
    _, bodies = build_bodies(renderer, plan)
    ch = plan.channel
    # This command's environment: the service's may hold the webhook (a ${VAR} set only there).
    mode = "未配置 webhook（按本命令的环境，只记录、不发送）" if ch.dry_run else shown_webhook(ch)
    lines = [f"=== 频道 {ch.name}（{ch.id}，{platform_title(ch)}）→ {mode}"]
    for i, body in enumerate(bodies, 1):
        if len(bodies) > 1:
            lines.append(f"--- 第 {i}/{len(bodies)} 条")
        if body.get("msgtype") == "image":  # the report chart: its size, not 40 KB of base64
            size = len(body["image"]["base64"]) * 3 // 4
            body = {"msgtype": "image", "image": {"base64": f"（通报图表 PNG，约 {size} 字节）",
                                                  "md5": body["image"]["md5"]}}
        lines.append(json.dumps(body, ensure_ascii=False, indent=2))
    click.echo("\n".join(lines) + "\n")  # one write per channel (each echo flushes), not one per line


@click.command()
@click.argument("reminder_id", metavar="提醒标识")
@click.option("--date", "on", type=DAY, help="哪一天的提醒（默认下一次）")
@click.option("--person", help="只看发给某人的消息（人员标识或姓名）")
@click.option("--stage", default="due", show_default=True,
              help="哪一次：当天（due），或某个提前通知，写成 notices 里的写法，如 3d、notice:3d、提前3天")
def preview(reminder_id: str, on: datetime | None, person: str | None, stage: str) -> None:
    """打印某个提醒将要发送的内容：每个频道一份，按平台的请求体格式。"""
    # A province's preview builds 20,000 mentions and contexts and no cycles: without the collector's
    # passes over them (a tenth of the command's time), as for loading the schedules.
    from bot.config.issues import ConfigError

    with gcpause.no_gc():
        try:
            asyncio.run(_preview(reminder_id, on.date() if on else None, person, stage))
        except ConfigError as exc:  # errors and no last good schedules to preview instead: as every command
            refuse(Settings(), exc.issues)


async def _preview(reminder_id: str, on: date | None, person: str | None, stage: str) -> None:
    # A preview writes nothing: the database is opened only if a message needs its figures.
    # A preview writes nothing, a database file included: with none yet, figures are left out (said below).
    async with open_runtime(Settings(), database=False, last_good=True, create=False) as runtime:
        if runtime.refused is not None:
            say_last_good(runtime.refused)
        reminder = _reminder(runtime, reminder_id)
        if person:  # an id or a name, as link, confirm and excuse take
            try:
                person = person_named(runtime.schedules, person).id
            except NoSuchPerson as exc:
                click.echo(str(exc), err=True)
                sys.exit(1)
        due = find_due(reminder, runtime.calendar, on, runtime.clock())
        key = parse_stage(stage, [str(n) for n in reminder.notices])
        if key is None:
            choices = "、".join(f"{n}（{stage_words(f'notice:{n}')}）" for n in reminder.notices)
            click.echo(f"没有“{stage}”这一次：可写 当天（due）" + (f"，或提前通知 {choices}" if choices else
                       "；此提醒没有提前通知"), err=True)
            sys.exit(1)
        stage = key
        lead = next((n for n in reminder.notices if f"notice:{n}" == stage), None)
        f = Fire(reminder.id, stage, due.due_at, due, lead)
        if lead is not None:  # the notice's own time (a notice moved off a holiday goes earlier)
            window = fires(reminder, runtime.calendar, due.due_at - timedelta(days=400), due.due_at)
            found = [x for x in window if x.stage == stage and x.due.due_at == due.due_at]
            if not found:
                click.echo(f"这次提醒没有{stage_words(stage)}（例如通知日落在了更早的通知之后而被合并）。", err=True)
                sys.exit(1)
            f = found[0]
        deadline = deadline_for(runtime, reminder, due.due_at)
        # No occurrence exists (a preview writes nothing): links show a placeholder, never a token.
        figures, missing = _figures_unless_missing(runtime)
        plans = await plan_fire(runtime, reminder, f, None, deadline, figures_for=figures)
        if person:
            plans = [p for p in plans if any(m.person_id == person for m in p.mentions)]
            if not plans:
                click.echo(not_a_recipient(runtime.schedules, reminder, person), err=True)
                sys.exit(1)
        if note := await ahead_note(runtime.settings, reminder, f):  # before the bodies: they will not go out
            click.echo(note)
        click.echo(f"{reminder.title}：{when_text(due.due_at, reminder.zone)}（{stage_words(stage)}），"
                   f"共 {len(plans)} 条消息\n")
        for plan in plans:
            _show(runtime.renderer, plan)
        click.echo(f"说明：加签（timestamp、sign）在发送时计算，不在此显示；个人确认链接显示为“{LINK_PLACEHOLDER}”，"
                   "真正发送时按该次提醒为每人生成（已发出的提醒可用 remindbot link 查看某人的链接）。")
        if missing:
            click.echo(f"注意：{missing[0]}以上消息未含统计数字（预览不新建数据库）。")
        elif any(plan.context.get("figures") for plan in plans):  # a 通报 or a leader's brief: figures as of now
            click.echo("注意：以上统计数字是截至现在的数字；真正发送时按发送那一刻的数字统计，可能与此不同。")


async def ahead_note(settings: Settings, reminder: Reminder, f: Fire) -> str | None:
    """For a preview of ``f``: that its occurrence already went out ahead of its day (``fire --date``),
    so the service sends this stage no more, in the words ``status`` and ``upcoming`` use; None when it
    did not, or nothing can be read. Read only, as ``upcoming``: a SQLite file that does not exist is not
    created (no note), an existing one is read through ``sqlite3`` (a preview loads no SQLAlchemy)."""
    due_at = f.due.due_at
    ahead = await read_fired_ahead(settings, due_at, due_at + timedelta(seconds=1),
                                   unread="未能查看这次提醒是否已提前发出")
    found = ahead.get((reminder.id, due_at.astimezone(UTC)))
    if found is None or found.at >= due_at:  # not fired, or fired on its time or late: nothing ahead
        return None
    said = ahead_text(when_text(found.at, reminder.zone), found.by)
    if f.stage != "due" and f.fire_at <= found.at:
        # the notice's time had come before the fire: it went (or was due) then, not now
        return (f"注意：这次提醒{said}；{stage_words(f.stage)}的时间（{when_text(f.fire_at, reminder.zone)}）"
                "在此之前，不受影响。")
    # the day's stage, or a notice still to come: the service skips it (it names the stage, as ``status``
    # and ``upcoming`` name the whole occurrence)
    return f"注意：这次提醒{said}，{unsent_text(f.stage)}；以下只是预览，不会发送。"


def _figures_unless_missing(runtime: Runtime) -> tuple[FiguresFor, list[str]]:
    """``report_figures`` for a preview, and a list that holds, once a figure was asked for and the
    SQLite file does not exist, what an admin reads about it: the figures are then None (no database
    is made by a preview, nor asked for again)."""
    asked = report_figures(runtime)
    missing: list[str] = []

    async def figures(reminder: Reminder, person: Person | None, at: datetime) -> dict[str, Any] | None:
        from storage.db import DatabaseMissing  # the database's code only when a message has figures

        if missing:
            return None
        try:
            return await asked(reminder, person, at)
        except DatabaseMissing as exc:
            missing.append(f"{exc.what}，")
            return None

    return figures, missing


RECIPIENTS_NAMED = 10  # recipients named when a preview's --person is not among them; more are counted


def not_a_recipient(schedules: Schedules, reminder: Reminder, person_id: str) -> str:
    """Why ``preview --person`` found no message: who this reminder's messages mention (the selector
    in words, and the people it selects), or, when the person is among them, that none reaches them."""
    chosen = schedules.select(reminder.recipients.mention)
    name = schedules.people[person_id].name
    if any(p.id == person_id for p in chosen):
        return f"{name} 是此提醒（{reminder.title}）的接收人，但没有发给此人的消息（此人所在的群不在此提醒的频道中）。"
    names = "、".join(p.name for p in chosen[:RECIPIENTS_NAMED]) + (" 等" if len(chosen) > RECIPIENTS_NAMED else "")
    listed = f"，共 {len(chosen)} 人：{names}" if chosen else "，目前没有人"
    words = selector_words(schedules, reminder)
    whom = f"此提醒发给{words}{listed}" if words else "此提醒的消息不 @ 任何人（recipients 没有写 mention）"
    return f"{name} 不是此提醒（{reminder.title}）的接收人：{whom}。"


def selector_words(schedules: Schedules, reminder: Reminder) -> str:
    """Whom a reminder's messages mention, in words: ``角色为 leader 的人``; "" for no one."""
    sel = reminder.recipients.mention
    units = "、".join(schedules.units[u].name if u in schedules.units else u for u in sel.units)
    people = "、".join(schedules.people[p].name if p in schedules.people else p for p in sel.people)
    rules = [*(["@所有人"] if sel.all else []), *([f"角色为 {'、'.join(sel.roles)} "] if sel.roles else []),
             *([f"单位 {units}（含下级）"] if units else []), *([f"人员 {people} "] if people else [])]
    return f"{'，'.join(rules)}的人" if rules else ""


@click.command(name="fire")
@click.argument("reminder_id", metavar="提醒标识")
@click.option("--date", "on", type=DAY, help="哪一天的提醒（默认下一次）")
@click.option("--dry-run", is_flag=True,
              help="演练：打印将要发送的内容并记为演练记录；不发送、不催办、不计入统计，不影响之后的正式发送")
@click.option("--all", "every_line", is_flag=True,
              help="逐条列出每条消息的结果（默认消息多时只列出前 20 条，失败的排在前面，其余计数）")
@click.option("--yes", is_flag=True, help="确认截止时间已过也发送，不再询问（发送后应确认的人立即全部记为逾期未确认）")
def fire_command(reminder_id: str, on: datetime | None, dry_run: bool, every_line: bool, yes: bool) -> None:
    """立即发送某次提醒（同一次提醒重复执行只发送一次）。

    发送的不是当天的提醒时，消息中注明原定时间（补发或提前发送）；确认截止时间已过的，先询问（或加 --yes）。"""
    overrides = {"dry_run": True} if dry_run else {}
    asyncio.run(_fire(Settings(**overrides), reminder_id, on.date() if on else None,  # type: ignore[arg-type]
                      limit=None if every_line else OUTCOME_LINES, yes=yes))


OUTCOME_LINES = 20  # messages `fire` lists one by one without --all (a province's fire has 500 channels)
STATUS_ORDER = {"dead": 0, "pending": 1, "dry_run": 2, "sent": 3}  # which lines a shortened list keeps first


async def _fire(settings: Settings, reminder_id: str, on: date | None, *, limit: int | None = OUTCOME_LINES,
                yes: bool = False) -> None:
    with gcpause.no_gc():  # the firing modules: thousands of classes and functions, no cycles
        import bot.scheduling.occurrences  # noqa: F401  (used by _fire_on; imported with the collector paused)
        from bot.logs import setup_logging

    # A dry run shows what would be sent (the log lines); a real one only the summary below.
    setup_logging(settings.log_format, "INFO" if settings.dry_run else "WARNING")
    for noisy in ("bot.scheduling.scheduler", "bot.scheduling.occurrences"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Never from the last good schedules: an admin fixing the files must not send from old ones.
    schedules = load_or_exit(settings)
    writer = _sqlite_writer(settings)  # None: the migrating way (PostgreSQL, a file not at the newest schema)
    try:
        async with open_runtime(settings, schedules=schedules, database=writer is None) as runtime:
            if writer is not None:
                from storage.writes import instance_nonce

                runtime.writer = writer
                runtime.link_secret = f"{settings.signing_key}:{await instance_nonce(writer)}"
            await _fire_on(runtime, settings, reminder_id, on, limit=limit, yes=yes)
    finally:
        if writer is not None:
            writer.close()


def _sqlite_writer(settings: Settings) -> SqliteWriter | None:
    """A ``sqlite3`` writer on the SQLite file of ``settings``, at the newest schema (made when new);
    None for another database or a file that needs the migrating way (storage.writes)."""
    from storage.reads import sqlite_file

    path = sqlite_file(settings.database_url)
    if path is None:
        return None
    import sqlite3

    from storage.writes import open_sqlite_writer

    try:
        return open_sqlite_writer(path)
    except (sqlite3.Error, OSError):  # unreadable, not a database…: the migrating way says why, in Chinese
        return None


async def _fire_on(runtime: Runtime, settings: Settings, reminder_id: str, on: date | None, *,
                   limit: int | None, yes: bool) -> None:
    from bot.delivery.compose import shown_bodies
    from bot.logs import channel_secrets, set_secrets
    from bot.scheduling.occurrences import fire

    set_secrets(channel_secrets(runtime.schedules.channels.values()))
    reminder = _reminder(runtime, reminder_id)
    due = find_due(reminder, runtime.calendar, on, runtime.clock())
    by_hand = await another_day(runtime, reminder, due, ask=not (yes or settings.dry_run))
    shown_bodies.set(limit)  # the log shows the bodies of as many messages as the list below
    with gcpause.no_gc():  # 20,000 expectations, mentions and contexts, no cycles (the send below keeps it on)
        result = await fire(runtime, Fire(reminder.id, "due", due.due_at, due, None), by_hand=by_hand,
                            fired_by=os_user())
    if settings.dry_run:
        _say_rehearsed(reminder.title, when_text(due.due_at, reminder.zone), result)
        # Nothing to dispatch: a rehearsal's rows are never sendable, and running the
        # dispatcher here would mark real messages waiting for a retry as rehearsed.
        await _print_outcome(runtime, result.occurrence_id, rehearsal=True, earlier=result.queued == 0,
                             limit=limit)
        return
    click.echo(f"{reminder.title}（{when_text(due.due_at, reminder.zone)}）：新排队 {result.queued} 条消息。"
               f"记录号 {result.occurrence_id}（用于 remindbot link、confirm、excuse）。")
    if result.queued == 0:
        click.echo("这次提醒此前已经排队或发送过，不会重复发送。")
    elif due.due_at > runtime.clock():
        # Sent ahead: the service skips its notices and its day (said here, before the admin wonders).
        click.echo(f"已提前发出：{unsent_text()}。")
    retried = await _send_pending(runtime, settings)
    await _print_outcome(runtime, result.occurrence_id, retried, earlier=result.queued == 0, limit=limit)


OS_USER_CHARS = 64  # a login name is short; anything longer is cut, not stored whole


def os_user() -> str | None:
    """Who runs this command, recorded on the occurrence it fires (shown where a stage is skipped
    because it went out ahead): the account that ran ``sudo`` when there is one (``root`` alone
    says nothing on a shared server), else the login name; None when neither can be told.
    Control characters are dropped: the name is written into log lines and pages."""
    import getpass

    name = os.environ.get("SUDO_USER") or ""
    if not name:
        try:
            name = getpass.getuser()
        except Exception:  # no such variable and no passwd entry (a bare container): nobody to name
            return None
    clean = "".join(ch for ch in name if ch.isprintable()).strip()[:OS_USER_CHARS]
    return clean or None


async def another_day(runtime: Runtime, reminder: Reminder, due: Due, *, ask: bool) -> bool:
    """Whether ``due`` is fired on another day than its own (its messages then say so: 补发, or
    提前发送). ``ask``: when its confirmation deadline has passed and it was never fired, everyone
    owing would be overdue at once: the admin confirms first (exit 1 unless they do)."""
    now = runtime.clock()
    zone = reminder.zone
    by_hand = due.due_at.astimezone(zone).date() != now.astimezone(zone).date()
    deadline = deadline_for(runtime, reminder, due.due_at)
    if not ask or deadline is None or deadline > now or await _fired_before(runtime, reminder, due):
        return by_hand
    from bot.scheduling.planning import expected_people

    owing = len(expected_people(runtime, reminder))
    click.echo(f"“{reminder.title}”{when_text(due.due_at, zone)} 的确认截止时间 {when_text(deadline, zone)} 已过："
               f"现在发送，应确认的 {owing} 人会立即全部记为逾期未确认（消息注明补发和原定时间）。", err=True)
    if not click.confirm("仍要发送吗？（不再询问：加 --yes）", default=False, err=True):
        click.echo("未发送。", err=True)
        sys.exit(1)
    return by_hand


async def _fired_before(runtime: Runtime, reminder: Reminder, due: Due) -> bool:
    """Whether the real occurrence of ``due`` exists (fired before: firing again changes no one's state)."""
    from bot.scheduling.occurrences import REAL_FIRED_AT, writing
    from bot.scheduling.planning import to_db

    async with writing(runtime) as writer:
        return bool(await writer.rows(REAL_FIRED_AT, {"reminder_id": reminder.id, "due_at": to_db(due.due_at)}))


def _say_rehearsed(title: str, when: str, result: FireResult) -> None:
    """What a dry run did: new rehearsal messages (their contents logged above), or, run again, none."""
    tail = (f"演练记录号 {result.occurrence_id}：不催办、不告知领导、不计入统计，其确认链接不能确认；"
            "演练不影响之后的正式发送。")
    if result.queued:
        click.echo(f"{title}（{when}）：演练 {result.queued} 条消息（内容见上，未发送）。{tail}")
    else:
        click.echo(f"{title}（{when}）：这次提醒此前已经演练过，本次没有新的演练消息；下面是此前那次演练的记录。{tail}")


async def _send_pending(runtime: Runtime, settings: Settings) -> int:
    """Send what is pending in the outbox (this fire's messages and any others due), in one burst of
    the dispatcher; returns its retries. With no pending row at all (every channel without a webhook,
    or all sent before) the burst would do nothing: neither it nor the HTTP client is loaded."""
    from bot.delivery.rows import ANY_PENDING
    from bot.scheduling.occurrences import writing

    async with writing(runtime) as writer:
        if not await writer.rows(ANY_PENDING):
            return 0
    await runtime.ensure_database()  # the dispatcher's statements are SQLAlchemy's
    import aiohttp  # only a real send (preview and dry runs do not load the HTTP client)

    from bot.delivery.dispatch import Dispatcher

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.send_timeout_seconds)) as http:
        dispatcher = Dispatcher(runtime.db, settings, runtime.channel, http, clock=runtime.clock,
                                admin_channel=lambda: runtime.schedules.service.admin_channel)
        stats = await dispatcher.run_once(max_retry_wait=30)
    return stats.retried


async def _print_outcome(runtime: Runtime, occurrence_id: int, retried: int = 0, *, rehearsal: bool = False,
                         earlier: bool = False, limit: int | None = OUTCOME_LINES) -> None:
    """The occurrence's messages by their state in the outbox (dry runs are recorded as such
    when queued, so the dispatcher's own counts would miss them), then one line per message: all of
    them up to ``limit`` (None: no limit), else the first ``limit`` (failed ones first), the rest counted.

    Rows recorded without sending are a rehearsal's (演练) only when the occurrence is a dry run;
    in a real one they went to a channel without a webhook (未配置 webhook（只记录）)."""
    from collections import Counter

    from bot.delivery.rows import OUTCOMES, Outcome
    from bot.scheduling.occurrences import writing
    from storage.reads import moment

    async with writing(runtime) as writer:
        rows = [Outcome(*row) for row in await writer.rows(OUTCOMES, {"occurrence_id": occurrence_id})]
    count = Counter(row.status for row in rows)
    waiting = f"，待发送 {count['pending']} 条" if count["pending"] else ""
    recorded = "演练" if rehearsal else "未配置 webhook（只记录）"
    # A repeated fire queued nothing: what follows is the earlier fire's messages, said as such.
    if earlier:
        head = "此前那次演练各条消息的记录（本次未新增）" if rehearsal else "此前各条消息的状态（本次未新增）"
    else:
        head = "发送结果"
    click.echo(f"{head}：成功 {count['sent']} 条，{recorded} {count['dry_run']} 条，"
               f"失败 {count['dead']} 条{waiting}，重试 {retried} 次。")
    if count["dry_run"] and not rehearsal:
        click.echo("未配置 webhook 的频道只记录消息、不真正发送；填写 webhook 后可用 "
                   "remindbot resend <消息编号> 重新发送（编号见下列各条，也见管理页面“消息投递”）。")
    labels = {"sent": "已发送", "dry_run": "演练（未发送）" if rehearsal else "未配置 webhook（只记录）",
              "dead": "失败", "pending": "待发送"}
    shown = list(rows)
    if limit is not None and len(shown) > limit:
        shown = sorted(shown, key=lambda r: STATUS_ORDER.get(r.status, 0))[:limit]
    parts = Counter(row.dedupe_key.rpartition("#")[0] for row in rows)  # a message's rows: key#1, key#2 …
    for row in shown:
        channel = runtime.channel(row.channel_id)
        name = channel.name if channel else row.channel_id
        key, _, part = row.dedupe_key.rpartition("#")
        if parts[key] > 1:
            name = f"{name}（第 {part}/{parts[key]} 条）"
        sent_at = moment(row.sent_at)
        when = f"，{when_text(sent_at, ZONE)}" if sent_at else ""
        reason = f"：{row.last_error}" if row.status != "sent" and row.last_error else ""
        click.echo(f"  · {name}｜{row.summary}｜{labels.get(row.status, row.status)}{when}{reason}｜消息编号 {row.id}")
    if len(shown) < len(rows):
        rest = Counter(row.status for row in rows) - Counter(row.status for row in shown)
        order = sorted(rest.items(), key=lambda kv: STATUS_ORDER.get(kv[0], 0))
        counted = "，".join(f"{labels.get(k, k)} {n} 条" for k, n in order)
        click.echo(f"  …… 另有 {len(rows) - len(shown)} 条未逐条列出（{counted}）。加 --all 逐条列出全部。")


def how_to_add_webhook(settings: Settings, schedules: Schedules, channel_id: str) -> str:
    """The environment variable to set, or the line to edit, for a channel without a webhook."""
    from bot.config.yamlsource import env_names, openable, written_field

    label, _, line = schedules.sources.get(f"channels:{channel_id}", "").rpartition(":")
    if not label:
        return "请为该频道配置 webhook 后再试。"
    path = settings.schedules_dir.resolve().parent / label  # labels are relative to the folder's parent
    from bot.config.limits import Limits

    written = written_field(path, "channels", channel_id, "webhook", Limits.from_settings(settings))
    if written is None:
        return f"请在 {openable(path)}:{line} 为该频道加上 webhook 后再试。"
    where = f"{openable(path)}:{written.start_mark.line + 1}"
    names = env_names(written.value)
    if names:
        return f"请设置环境变量 {'、'.join(names)}（{where} 的 webhook 引用了它）后再试。"
    return f"请在 {where} 填写该频道的 webhook 后再试。"


@click.command(name="send-test")
@click.argument("channel_id", metavar="频道标识")
def send_test(channel_id: str) -> None:
    """向某个频道发送一条测试消息，并用通俗的话报告平台的答复。"""
    settings = Settings()
    if settings.dry_run:  # a test message reaches the group for real; a rehearsal never sends
        click.echo("演练模式（REMINDBOT_DRY_RUN）下不发送测试消息：测试消息会真正发到群里，而演练从不真正发送。"
                   "去掉 REMINDBOT_DRY_RUN（或设为 false）后再试。", err=True)
        sys.exit(1)
    schedules = load_or_exit(settings)
    channel = schedules.channels.get(channel_id)
    if channel is None:
        from bot.config.hints import Hints, did_you_mean  # difflib: only when an id is unknown

        meant = did_you_mean(Hints(schedules.channels).meant(channel_id)) or "。"
        click.echo(f"没有标识为 “{channel_id}” 的频道{meant}可用的有：{'、'.join(schedules.channels)}", err=True)
        sys.exit(1)
    if channel.dry_run:
        click.echo(f"频道 {channel.name} 没有配置 webhook（只记录、不发送），无法发送测试消息。"
                   f"{how_to_add_webhook(settings, schedules, channel_id)}", err=True)
        sys.exit(1)
    ok = asyncio.run(_send_test(settings, channel))
    sys.exit(0 if ok else 1)


async def _send_test(settings: Settings, channel) -> bool:  # type: ignore[no-untyped-def]
    from bot.confirming.actions import send_test_message

    click.echo(f"正在向 {channel.name}（{platform_title(channel)}，{shown_webhook(channel)}）发送测试消息……")
    ok, answer = await send_test_message(settings, Renderer(settings.templates_dir), channel)
    click.echo(answer, err=not ok)
    return ok
