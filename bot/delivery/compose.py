"""From a rendered template to outbox rows: mentions, personal links, per-platform bodies.

One group chat gets one message that mentions everyone concerned (split only where a platform
caps size or mentions). Personal confirmation links go only where the channel allows them
(``personal_links``), and then one message per person, since a link belongs to one person.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from bot.config.models import Person, Reminder, Schedules
from bot.platforms.base import ChannelBase, ChartWay, ImageChart, Mention, Message
from bot.platforms.markup import TRUNCATED, mask_links
from bot.platforms.registry import platform_for
from bot.scheduling.datewords import date_text, weekday_text, when_text

if TYPE_CHECKING:  # the outbox and the database are imported where rows are written, not to plan or preview
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.delivery.render import Renderer, RenderMemo
    from storage.writes import Writer

_new = object.__new__
BUTTON_TEXT = "确认已完成"
log = logging.getLogger(__name__)


def due_context(due_at: datetime, zone: ZoneInfo, *, moved_from: date | None = None,
                holiday: str | None = None, provisional: bool = False) -> dict[str, Any]:
    local = due_at.astimezone(zone)
    return {
        "date": date_text(local.date()),
        "weekday": weekday_text(local.date()),
        "time": f"{local:%H:%M}",
        "text": when_text(due_at, zone),
        "moved_from": date_text(moved_from) if moved_from else None,
        "holiday": holiday,
        "provisional": provisional,
    }


def reminder_context(reminder: Reminder) -> dict[str, Any]:
    return {"id": reminder.id, "title": reminder.title, "note": reminder.note,
            "checklist": list(reminder.checklist), "kind": reminder.kind}


def person_context(s: Schedules, person: Person, unit_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a template knows of a person; ``unit_names``: :meth:`Schedules.unit_names`, for thousands at once."""
    unit = s.unit_name(person.unit) if unit_names is None else unit_names.get(person.unit) if person.unit else None
    return {"id": person.id, "name": person.name, "title": person.title, "unit": unit, "roles": list(person.roles)}


def mention_for(person: Person) -> Mention:
    """The person's mention: every field of :class:`Mention` set, as its ``__init__`` would, without
    the frozen dataclass's four ``object.__setattr__`` calls (a province's fire makes 20,000)."""
    mention = _new(Mention)
    mention.__dict__.update(person_id=person.id, name=person.name, mobile=person.mobile,
                            ids={k: v for k, v in vars(person.ids).items() if v})  # model_dump without the cost
    return mention


def members(s: Schedules, people: Iterable[Person], channel_id: str) -> list[Person]:
    """Those of ``people`` who are in the channel's group (no ``channels`` listed: all groups).

    A selection from ``Schedules.select`` goes through the snapshot's channel index (its rows split by
    channel once), so calling this for each of a reminder's channels costs the rows, not their product.
    """
    return s.channel_members(people if isinstance(people, list) else list(people), channel_id)


def split_by_channel(people: Sequence[Person | None], channel_ids: Iterable[str]) -> dict[str, list[int]]:
    """Positions (in order) of ``people`` in each of ``channel_ids``' groups, in one pass over the people:
    the cost grows with people + channels, not their product. None (a person no longer in the schedules)
    and a person without ``channels`` are in every group."""
    groups: dict[str, list[int]] = {c: [] for c in channel_ids}
    for i, person in enumerate(people):
        listed = groups if person is None or person.channels is None else dict.fromkeys(person.channels)
        for channel_id in listed:
            if channel_id in groups:
                groups[channel_id].append(i)
    return groups


@dataclass
class Planned:
    """One message to one channel, before rendering: everything ``queue`` and ``preview`` need."""

    channel: ChannelBase
    template: str
    title: str
    context: Mapping[str, Any]
    dedupe_key: str
    stage: str
    summary: str
    occurrence_id: int | None = None
    mentions: Sequence[Mention] = ()
    mention_all: bool = False
    link: str | None = None
    now: datetime | None = None  # when the rows become due (the runtime's clock); None: now
    dry_run: bool = False  # record and log what would be sent; never sent, never blocks a real send
    admin: ChannelBase | None = None  # told (once per occurrence) when this message had to be cut
    confirm_button: bool = False  # an app message: add the platform's confirm button for the occurrence
    picture: Any = None  # bot.reporting.chart.Picture: a report's chart, sent as an image where the platform takes one
    picture_url: str | None = None  # the same chart under a signed web path, for platforms that show URLs


def _why_recorded(plan: Planned) -> str:
    """Why a message is only recorded: ``演练`` for a dry run, else ``未配置 webhook``."""
    return "演练" if plan.dry_run else "未配置 webhook"


def build_bodies(renderer: Renderer, plan: Planned) -> tuple[str, list[dict[str, Any]]]:
    """Render the template and turn it into the platform's request bodies."""
    return _build(renderer, plan)[:2]


def _build(renderer: Renderer | RenderMemo, plan: Planned) -> tuple[str, list[dict[str, Any]], bool]:
    """Platform name, bodies, and whether the adapter cut the message to fit the platform."""
    rendered = renderer.render(plan.template, plan.context, plan.title)
    platform = platform_for(plan.channel)
    message = Message(
        title=plan.title,
        markdown=rendered.markdown + picture_line(platform.chart, plan),
        mentions=tuple(plan.mentions),
        mention_all=plan.mention_all,
        button_text=BUTTON_TEXT if plan.link else None,
        button_url=plan.link,
        confirm_occurrence=plan.occurrence_id if plan.confirm_button else None,
    )
    bodies = platform.build(plan.channel, message)
    if plan.picture is not None and platform.chart == "image":  # the image follows the text table
        bodies.append(cast(ImageChart, platform).chart_body(plan.picture))
    return platform.name, bodies, marks_in(bodies) > rendered.markdown.count(TRUNCATED)


def marks_in(value: Any) -> int:
    """How often :data:`TRUNCATED` occurs in the strings (keys and values) of a JSON-shaped value.

    The same count as in its JSON text (no character of the mark is ever escaped, and a mark
    cannot span two strings), without serialising each body a second time.
    """
    found, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found += item.count(TRUNCATED)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str):
                    found += key.count(TRUNCATED)
                if isinstance(inner, str):
                    found += inner.count(TRUNCATED)
                elif isinstance(inner, (dict, list, tuple)):
                    stack.append(inner)
        elif isinstance(item, (list, tuple)):
            if len(item) > 32:  # a group's mentions: C's JSON encoder walks thousands faster than Python
                found += json.dumps(item, ensure_ascii=False).count(TRUNCATED)
            else:
                stack.extend(item)
    return found


def picture_line(chart: ChartWay, plan: Planned) -> str:
    """The chart's URL under the text table, as the platform's ``chart`` says: an image in the
    markdown (``inline``), else a link; none for ``image`` (the picture is a message of its own)."""
    if plan.picture is None or not plan.picture_url or chart == "image":
        return ""
    if chart == "inline":
        return f"\n\n![通报图表]({plan.picture_url})"
    return f"\n\n[查看通报图表]({plan.picture_url})"


SHOWN_BODIES = 20  # recorded messages whose bodies one fire logs (a province's dry run records 20,000)
# How many bodies a fire logs in this context: ``remindbot fire --dry-run --all`` sets None (every one).
shown_bodies: ContextVar[int | None] = ContextVar("shown_bodies", default=SHOWN_BODIES)


def _log_recorded(plan: Planned, bodies: Sequence[dict[str, Any]], room: int | None = None) -> int:
    """Log the bodies of a message that is recorded and not sent (a rehearsal, or no webhook), links
    masked: at most ``room`` of them (None: all). Each part of a split message is named (第 i/n 条).
    Returns how many were logged."""
    if not log.isEnabledFor(logging.INFO):  # a province's fire records 20,000: no JSON unless it is shown
        return 0
    logged = 0
    for part, body in enumerate(bodies, 1):
        if room is not None and logged >= room:
            break
        which = f"（第 {part}/{len(bodies)} 条）" if len(bodies) > 1 else ""
        log.info("只记录、不发送（%s）：频道“%s”%s%s：%s", _why_recorded(plan), plan.channel.name, plan.summary,
                 which, mask_links(json.dumps(body, ensure_ascii=False)))
        logged += 1
    return logged


def _log_unshown(plans: Sequence[Planned], unshown: int) -> None:
    """One line for the recorded bodies a fire did not log, and where to see them."""
    if unshown and log.isEnabledFor(logging.INFO):
        why = "演练" if any(p.dry_run for p in plans) else "未配置 webhook"
        log.info("只记录、不发送（%s）：另有 %d 条消息未列出内容（只列出前 %s 条）；"
                 "remindbot fire 加 --all 列出每一条，remindbot preview 可查看将要发送的内容",
                 why, unshown, shown_bodies.get())


async def queue(session: AsyncSession, renderer: Renderer, plan: Planned) -> int:
    """Write the plan's outbox row(s); rows already queued are skipped. Returns rows created.

    A message the adapter had to cut (over the platform's size even in ten parts) is counted in
    ``MESSAGES_CUT`` and the admin channel is told once per occurrence, with the reminder's name.
    """
    from bot.delivery.outbox import enqueue

    platform, bodies, cut = _build(renderer, plan)
    dry = plan.dry_run or plan.channel.dry_run
    if dry:
        _log_recorded(plan, bodies)
    created = await enqueue(
        session,
        dedupe_key=plan.dedupe_key,
        channel=plan.channel,
        platform=platform,
        bodies=bodies,
        occurrence_id=plan.occurrence_id,
        stage=plan.stage,
        summary=plan.summary,
        now=plan.now,
        dry_run=dry,
    )
    if cut and created and not dry:
        from bot.metrics import MESSAGES_CUT  # only for a cut message: a command loads no metrics otherwise

        MESSAGES_CUT.labels(platform=platform).inc()
        log.warning("消息过长被截断：%s（频道“%s”）", plan.summary, plan.channel.name)
        from bot.delivery.outbox import SessionWriter

        await _tell_admin_cut(SessionWriter(session), plan)
    return created


async def queue_all(writer: Writer, renderer: Renderer, plans: Sequence[Planned]) -> int:
    """``queue`` for many plans in set-based inserts (:func:`bot.delivery.rows.insert_rows`), through
    ``writer`` (a session's: ``bot.delivery.outbox.SessionWriter``). Returns rows created.

    Messages that differ only in a person's own strings are rendered once (:class:`RenderMemo`); the
    rows are written together, ``ON CONFLICT DO NOTHING``, so
    queueing the same plans twice writes them once. Cut messages are counted and told as by ``queue``.
    """
    from bot.delivery.rows import insert_rows, outbox_rows, robot_key

    rows: list[dict[str, Any]] = []
    cut_plans: list[tuple[Planned, str, str]] = []  # (plan, platform, first row's dedupe key)
    robots: dict[str, str] = {}
    room, unshown = shown_bodies.get(), 0  # bodies still to log in this fire (None: no bound)
    memo = renderer.memo()
    for plan in plans:
        platform, bodies, cut = _build(memo, plan)
        dry = plan.dry_run or plan.channel.dry_run
        if dry:
            logged = _log_recorded(plan, bodies, room)
            if room is not None:
                room -= logged
                unshown += len(bodies) - logged
        robot = robots.get(plan.channel.id) or robots.setdefault(plan.channel.id, robot_key(plan.channel))
        made = outbox_rows(dedupe_key=plan.dedupe_key, channel=plan.channel, platform=platform, bodies=bodies,
                           occurrence_id=plan.occurrence_id, stage=plan.stage, summary=plan.summary,
                           now=plan.now, dry_run=dry, robot=robot)
        if cut and made and not dry:
            cut_plans.append((plan, platform, made[0]["dedupe_key"]))
        rows.extend(made)
    _log_unshown(plans, unshown)
    created = await insert_rows(writer, rows, rehearsal=any(plan.dry_run for plan in plans))
    for plan, platform, first in cut_plans:
        if first in created:
            from bot.metrics import MESSAGES_CUT  # only for a cut message: a command loads no metrics otherwise

            MESSAGES_CUT.labels(platform=platform).inc()
            log.warning("消息过长被截断：%s（频道“%s”）", plan.summary, plan.channel.name)
            await _tell_admin_cut(writer, plan)
    return len(created)


async def _tell_admin_cut(writer: Writer, plan: Planned) -> None:
    """Queue one notice per occurrence (or message) to the admin channel about a cut message."""
    from bot.delivery.rows import insert_rows, outbox_rows

    admin = plan.admin
    if admin is None or admin.id == plan.channel.id:
        return
    text = (
        f"**消息过长被截断**\n\n> 提醒：{plan.title}\n> 频道：{plan.channel.name}\n"
        f"> 内容：{plan.summary}\n\n该提醒超出平台的长度上限，分段后仍未发完，末尾已截断。"
        "请精简备注或清单，或把详细内容放在链接中。"
    )
    adapter = platform_for(admin)
    bodies = adapter.build(admin, Message(title="消息过长被截断", markdown=text))
    key = f"occ{plan.occurrence_id}" if plan.occurrence_id is not None else plan.dedupe_key
    name = getattr(admin, "platform", adapter.name)
    await insert_rows(writer, outbox_rows(dedupe_key=f"admin:cut:{key}", channel=admin, platform=name, bodies=bodies,
                                          occurrence_id=None, stage="admin", summary=f"截断通知：{plan.title}",
                                          now=plan.now, dry_run=plan.dry_run or admin.dry_run))


async def queue_message(session: AsyncSession, renderer: Renderer, *, channel: ChannelBase, template: str,
                        title: str, context: Mapping[str, Any], dedupe_key: str, occurrence_id: int | None,
                        stage: str, summary: str, mentions: Sequence[Mention] = (),
                        mention_all: bool = False, link: str | None = None,
                        now: datetime | None = None, dry_run: bool = False, confirm_button: bool = False) -> int:
    """``queue`` with the plan's fields as keywords."""
    plan = Planned(channel=channel, template=template, title=title, context=context, dedupe_key=dedupe_key,
                   stage=stage, summary=summary, occurrence_id=occurrence_id, mentions=mentions,
                   mention_all=mention_all, link=link, now=now, dry_run=dry_run, confirm_button=confirm_button)
    return await queue(session, renderer, plan)
