"""What an admin does by hand, from the web or the command line, each leaving an audit row.

* ``confirm``: record a confirmation on someone's behalf (代为登记), with a note;
* ``excuse``: excuse a person from one occurrence (请假、出差、因公外出…) with a reason: their
  follow-up and escalation times are cleared in the same transaction, so the follow-up engine
  never picks them up again, and figures count them apart (``bot.reporting.reports``), never as late;
* ``followup_now``: make the follow-up due now for everyone who still owes a confirmation;
  inside working hours it is queued at once, outside them the engine sends it when the next
  window opens (the answer says when);
* ``resend``: put a dead message, or a real one recorded only because its channel had no
  webhook (未配置 webhook（只记录）), back in the queue after its channel was fixed;
* ``send_test``: send a test message to a channel.

Every refusal is an :class:`ActionRefused` with a Chinese message and records nothing; a dry
run's occurrence refuses anything that would make it real. The audit row (``AdminAction``) holds
who (the admin's name), when (UTC), what, why (``reason``) and the outcome (``detail``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import and_, exists, update
from sqlmodel import col, select

from bot.config.models import DEFAULT_TZ
from bot.confirming.confirmations import (
    VIA_LABELS,
    ConfirmationError,
    clean_note,
    find_confirmation,
    record_confirmation,
    to_db_time,
)
from bot.delivery.compose import when_text
from bot.delivery.outbox import robot_key
from bot.metrics import ADMIN_ACTIONS
from bot.runtime import Runtime
from bot.scheduling.workhours import WorkHours
from storage.ids import row_id
from storage.models import AdminAction, Confirmation, Expectation, Occurrence, Outbox

log = logging.getLogger(__name__)

ACTION_LABELS = {
    "confirm": "代为登记",
    "excuse": "请假等免于确认",
    "followup_now": "立即催办",
    "resend": "重新发送",
    "send_test": "发送测试消息",
}
EXCUSE_KINDS = ("请假", "出差", "因公外出", "病假", "其他")
NAMES_SHOWN = 20  # people named in a 立即催办 note; beyond them "等 N 人"
REASON_MAX = 200  # characters


class ActionRefused(Exception):
    """An admin action that was not done (nothing recorded); the message is Chinese."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Done:
    """A done action: its audit row and a sentence for the admin."""

    row: AdminAction
    text: str


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def clean_reason(reason: str | None, *, required: bool = False) -> str | None:
    """A stripped reason, or ActionRefused when it is missing (``required``) or too long."""
    text = (reason or "").replace("\r\n", "\n").strip()
    if required and not text:
        raise ActionRefused("请写明原因（例如：出差，赴省委党校学习）", 400)
    if len(text) > REASON_MAX:
        raise ActionRefused(f"原因最多 {REASON_MAX} 个字，现在有 {len(text)} 个字", 400)
    return text or None


def excuse_reason(kind: str | None, reason: str | None) -> str:
    """``出差：赴省委党校学习`` from a kind of :data:`EXCUSE_KINDS` and a reason, both required.

    ``kind`` None reads the kind from the reason's head (``出差：…``, the command line's form).
    Raises ActionRefused (400, Chinese) for an unknown or missing kind and a blank reason.
    """
    text = (reason or "").replace("：", ":", 1) if kind is None else (reason or "")
    if kind is None:
        head, sep, rest = text.partition(":")
        if sep and head.strip() and head.strip() not in EXCUSE_KINDS:
            raise ActionRefused(f"原因开头的类别“{head.strip()}”不在可选范围内，只能是：{'、'.join(EXCUSE_KINDS)}；"
                                "例如 --kind 请假，或把原因写成 “请假：赴省委党校学习”", 400)
        if not sep or head.strip() not in EXCUSE_KINDS:
            raise ActionRefused(f"请写明类别（{'、'.join(EXCUSE_KINDS)}），例如 --kind 出差，"
                                "或把原因写成 “出差：赴省委党校学习”", 400)
        kind, text = head.strip(), rest
    kind = kind.strip()
    if kind not in EXCUSE_KINDS:
        shown = f"“{kind}”" if kind else "（空）"
        raise ActionRefused(f"类别{shown}不在可选范围内，只能是：{'、'.join(EXCUSE_KINDS)}", 400)
    why = clean_reason(text, required=True)
    return f"{kind}：{why}"


def _refused(action: str, message: str, status: int = 409) -> ActionRefused:
    ADMIN_ACTIONS.labels(action, "refused").inc()
    log.info("管理操作未执行（%s）：%s", ACTION_LABELS[action], message)
    return ActionRefused(message, status)


def _done(action: str, row: AdminAction, text: str) -> Done:
    ADMIN_ACTIONS.labels(action, "done").inc()
    log.info("管理员 %s：%s（%s）%s", row.admin, ACTION_LABELS[action], text,
             f"，原因：{row.reason}" if row.reason else "")
    return Done(row, text)


async def _real_occurrence(runtime: Runtime, action: str, occurrence_id: int) -> Occurrence:
    async with runtime.db.session() as session:
        occ = await session.get(Occurrence, occurrence_id) if row_id(occurrence_id) else None
    if occ is None:
        raise _refused(action, f"没有这条记录：找不到记录号为 {occurrence_id} 的提醒记录", 404)
    if occ.dry_run:
        raise _refused(action, f"记录号 {occurrence_id} 是演练记录（未真正发送），不能{ACTION_LABELS[action]}")
    return occ


async def _expectation(runtime: Runtime, action: str, occ: Occurrence, person_id: str) -> Expectation:
    async with runtime.db.session() as session:
        exp = (await session.exec(select(Expectation).where(
            Expectation.occurrence_id == occ.id, Expectation.person_id == person_id))).first()
    if exp is None:
        raise _refused(action, f"此人不在 “{occ.title}” 的确认名单中", 404)
    return exp


# ---------------------------------------------------------------- confirm on someone's behalf


async def confirm_for(runtime: Runtime, occurrence_id: int, person_id: str, *, admin: str,
                      note: str | None, now: datetime) -> Done:
    """Record ``person_id``'s confirmation as given to ``admin`` (代为登记), with the note."""
    occ = await _real_occurrence(runtime, "confirm", occurrence_id)
    exp = await _expectation(runtime, "confirm", occ, person_id)
    try:
        note = clean_note(note)
        created, conf = await record_confirmation(runtime.db, occurrence_id, person_id, via="admin", note=note,
                                                  recorded_by=admin, now=now)
    except ConfirmationError as exc:
        raise _refused("confirm", str(exc)) from None
    if not created:
        how = VIA_LABELS.get(conf.via, conf.via)
        when = when_text(_utc(conf.confirmed_at), runtime_zone(runtime, occ))
        raise _refused("confirm", f"{exp.person_name} 已于 {when} 通过{how}确认过，本次未重复记录")
    text = f"已代为登记：{exp.person_name} 已完成 “{occ.title}”"
    row = await _audit(runtime, AdminAction(occurrence_id=occurrence_id, person_id=person_id, admin=admin,
                                            action="confirm", reason=note, detail=text, at=to_db_time(now)))
    return _done("confirm", row, text)


def runtime_zone(runtime: Runtime, occ: Occurrence) -> ZoneInfo:
    """The zone of the occurrence's reminder (the default zone when it is gone)."""
    reminder = runtime.schedules.reminders.get(occ.reminder_id)
    return reminder.zone if reminder is not None else ZoneInfo(DEFAULT_TZ)


def admin_display(runtime: Runtime, who: str | None) -> str:
    """The name to show for an audit's admin: a schedules admin's name for their id (what the
    command line records), else the web admin's own name as recorded."""
    person = runtime.schedules.people.get(who or "")
    return person.name if person is not None and "admin" in person.roles else (who or "")


async def _audit(runtime: Runtime, row: AdminAction) -> AdminAction:
    async with runtime.db.session() as session:
        session.add(row)
        await session.commit()
    return row


# ---------------------------------------------------------------- excuse


_CONFIRMED = exists().where(Confirmation.occurrence_id == Expectation.occurrence_id,
                            Confirmation.person_id == Expectation.person_id)


async def excuse(runtime: Runtime, occurrence_id: int, person_id: str, *, admin: str, reason: str | None,
                 now: datetime, kind: str | None = None) -> Done:
    """Excuse ``person_id`` from the occurrence: no more follow-ups or escalations, counted apart.

    ``kind`` is one of :data:`EXCUSE_KINDS` (None: read from ``reason``'s head, ``出差：…``);
    the reason recorded is ``kind：reason``. Refused (nothing written) for a rehearsal, someone
    not on the list, someone who confirmed already or was excused already, an unknown kind and
    a blank reason.
    """
    occ = await _real_occurrence(runtime, "excuse", occurrence_id)
    exp = await _expectation(runtime, "excuse", occ, person_id)
    try:
        why = excuse_reason(kind, reason)
    except ActionRefused as exc:
        raise _refused("excuse", str(exc), exc.status) from None
    if exp.excused_at is not None:
        when = when_text(_utc(exp.excused_at), runtime_zone(runtime, occ))
        raise _refused("excuse", f"{exp.person_name} 已于 {when} 由 {admin_display(runtime, exp.excused_by)} "
                                 f"登记免于确认（{exp.excuse_reason}），无需重复登记")
    if await find_confirmation(runtime.db, occurrence_id, person_id) is not None:
        raise _refused("excuse", f"{exp.person_name} 已经确认，无需登记免于确认")
    text = f"已登记：{exp.person_name} 免于确认 “{occ.title}”，不再催办、不再告知领导，统计中单列"
    row = AdminAction(occurrence_id=occurrence_id, person_id=person_id, admin=admin, action="excuse",
                      reason=why, detail=text, at=to_db_time(now))
    async with runtime.db.session() as session:
        # One transaction: the excusal clears the due times the follow-up engine claims by, so a
        # round claimed after this commit finds nothing, and one claimed before it is sent once.
        stmt = (update(Expectation)
                .where(col(Expectation.id) == exp.id, col(Expectation.excused_at).is_(None), ~_CONFIRMED)
                .values(excused_at=to_db_time(now), excused_by=admin, excuse_reason=why,
                        next_followup_at=None, next_escalation_at=None)
                .execution_options(synchronize_session=False))
        if (await session.exec(stmt)).rowcount != 1:  # type: ignore[call-overload]
            await session.rollback()
            raise _refused("excuse", f"{exp.person_name} 刚刚已确认或已登记免于确认，本次未记录")
        session.add(row)
        await session.commit()
    return _done("excuse", row, text)


# ---------------------------------------------------------------- follow-up now


async def followup_now(runtime: Runtime, occurrence_id: int, *, admin: str, reason: str | None,
                       now: datetime) -> Done:
    """Make the follow-up due now for those who owe a confirmation (not confirmed, not excused).

    Inside working hours the round is queued at once; outside them it stays due and the
    follow-up engine sends it when the next window opens; the answer says when.
    """
    occ = await _real_occurrence(runtime, "followup_now", occurrence_id)
    reminder = runtime.schedules.reminders.get(occ.reminder_id)
    try:
        why = clean_reason(reason)
    except ActionRefused as exc:
        raise _refused("followup_now", str(exc), exc.status) from None
    if runtime.settings.dry_run:
        raise _refused("followup_now", "服务以演练模式运行，不发送催办")
    if reminder is None or reminder.confirm is None or not reminder.enabled:
        raise _refused("followup_now", f"“{occ.title}”的提醒已从日程中删除、停用或不再要求确认，不能催办")
    owed = and_(Expectation.occurrence_id == occurrence_id, col(Expectation.excused_at).is_(None), ~_CONFIRMED)
    async with runtime.db.session() as session:
        people = (await session.exec(select(Expectation.person_name).where(owed))).all()
        if not people:
            raise _refused("followup_now", "所有人都已确认或已登记免于确认，无需催办")
        await session.exec(update(Expectation).where(owed).values(next_followup_at=to_db_time(now))  # type: ignore[call-overload]
                           .execution_options(synchronize_session=False))
        await session.commit()
    hours = WorkHours.parse(runtime.settings.work_hours)
    # The audit row, the page and the log name at most NAMES_SHOWN people (a province: thousands).
    names = "、".join(people[:NAMES_SHOWN]) + (f" 等 {len(people)} 人" if len(people) > NAMES_SHOWN else "")
    if hours.in_window(now, runtime.calendar, reminder.zone):
        from bot.confirming.followup import FollowUps

        queued = await FollowUps(runtime).run_once(now)
        text = f"已催办 {len(people)} 人（{names}），排队 {queued} 条消息"
    else:
        at = hours.next_window(now, runtime.calendar, reminder.zone)
        text = f"现在不在工作时间，催办将于 {when_text(at, reminder.zone)} 发给 {len(people)} 人（{names}）"
    row = await _audit(runtime, AdminAction(occurrence_id=occurrence_id, admin=admin, action="followup_now",
                                            reason=why, detail=text, at=to_db_time(now)))
    return _done("followup_now", row, text)


# ---------------------------------------------------------------- resend a dead message


def recorded_only(runtime: Runtime, msg: Outbox, occurrence_dry_run: bool | None) -> bool:
    """Whether a ``dry_run`` row is a real message only recorded for want of a webhook (未配置 webhook).

    A real occurrence's row is; a dry-run occurrence's is a rehearsal's. A row of no occurrence
    (an admin notice) is when its channel has no webhook, else the service ran with ``--dry-run``.
    """
    if msg.status != "dry_run":
        return False
    if occurrence_dry_run is not None:
        return not occurrence_dry_run
    channel = runtime.channel(msg.channel_id)
    return channel is not None and bool(channel.dry_run)


async def resend(runtime: Runtime, outbox_id: int, *, admin: str, reason: str | None, now: datetime,
                 command: bool = False) -> Done:
    """Put a dead message back in the queue (after its channel was fixed): sent on the next pass.

    A real occurrence's message recorded without sending (status ``dry_run``: its channel had no
    webhook) is queued again too, once the channel has one: while it still has none the admin page
    refuses (it would only be recorded again). A rehearsal's (a dry-run occurrence's) message is refused.

    ``command``: asked from the command line, whose environment (a webhook written ``${VAR}``) need
    not be the running service's, which sends the row: what its channels lack is said as this
    command's view, not as what the service will do (trial 9: it claimed "never sent", then the service sent it).
    """
    try:
        why = clean_reason(reason)
    except ActionRefused as exc:
        raise _refused("resend", str(exc), exc.status) from None
    async with runtime.db.session() as session:
        msg = await session.get(Outbox, outbox_id) if row_id(outbox_id) else None  # too large: no such row
        occ = await session.get(Occurrence, msg.occurrence_id) if msg and msg.occurrence_id else None
    if msg is None:
        raise _refused("resend", f"没有这条记录：找不到编号为 {outbox_id} 的消息", 404)
    # Only a rehearsal's message is refused; a real one recorded without sending (its channel had
    # no webhook) may be queued again like a failed one.
    if (occ is not None and occ.dry_run) or (msg.status == "dry_run" and not recorded_only(
            runtime, msg, occ.dry_run if occ is not None else None)):
        raise _refused("resend", "这是演练消息（未真正发送），不能重新发送")
    if msg.status not in ("dead", "dry_run"):
        state = {"pending": "正在等待发送", "sent": "已发送成功"}.get(msg.status, msg.status)
        raise _refused("resend", f"这条消息{state}，只有发送失败或只记录（未配置 webhook）的消息可以重新发送")
    if runtime.settings.dry_run:
        raise _refused("resend", "服务以演练模式运行，不重新发送消息")
    channel = runtime.channel(msg.channel_id)
    if channel is None:
        raise _refused("resend", f"频道 {msg.channel_id} 已不在日程配置中，无法重新发送")
    if channel.dry_run and msg.status == "dead":
        raise _refused("resend", f"按本命令的环境，频道 {channel.name} 没有配置 webhook：请先修正频道配置再重新发送"
                       "（webhook 写成 ${变量} 时，运行本命令也须设置该变量）" if command else
                       f"频道 {channel.name} 没有配置 webhook，请先修正频道配置再重新发送")
    if channel.dry_run and not command:  # the service's own view: a resend would only record it again
        raise _refused("resend", f"频道 {channel.name} 未配置 Webhook，仅记录：重新发送也只会再记录一次。"
                       "请先在日程配置中填写该频道的 webhook，再重新发送")
    text = f"已重新排队：{msg.summary}（{channel.name}）"
    if channel.dry_run and command:
        text += (f"。按本命令的环境，频道 {channel.name} 未配置 webhook；若运行中的服务配置了 webhook，将由服务发送，"
                 "否则仍只记录")
    row = AdminAction(occurrence_id=msg.occurrence_id, outbox_id=outbox_id, channel_id=msg.channel_id,
                      admin=admin, action="resend", reason=why, detail=text, at=to_db_time(now))
    async with runtime.db.session() as session:
        stmt = (update(Outbox).where(col(Outbox.id) == outbox_id, col(Outbox.status) == msg.status)
                .values(status="pending", attempts=0, next_attempt_at=to_db_time(now), error_kind=None,
                        robot=robot_key(channel), lease_owner=None, lease_until=None, sending_since=None)
                .execution_options(synchronize_session=False))
        if (await session.exec(stmt)).rowcount != 1:  # type: ignore[call-overload]
            await session.rollback()
            raise _refused("resend", "这条消息刚刚已被重新排队")
        session.add(row)
        await session.commit()
    runtime.wake_dispatcher()
    return _done("resend", row, text)


# ---------------------------------------------------------------- send a test message


async def deliver_test(runtime: Runtime, channel) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    """Send the test message to ``channel`` now; (ok, the platform's answer in plain Chinese)."""
    return await send_test_message(runtime.settings, runtime.renderer, channel)


async def send_test_message(settings, renderer, channel) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    """The one test send (web action and ``remindbot send-test``): (ok, the platform's answer in plain Chinese).

    ``settings``: :class:`bot.settings.Settings`; ``renderer``: :class:`bot.delivery.render.Renderer`.
    """
    from bot.platforms.base import DeliveryError, Message
    from bot.platforms.registry import as_configured, platform_for

    platform = platform_for(channel)
    rendered = renderer.render("test", {"stage": "test"}, "remindbot 测试消息")
    body = platform.build(channel, Message(title="remindbot 测试消息", markdown=rendered.markdown))[0]
    request = platform.prepare(channel, body, time.time())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.send_timeout_seconds)) as http:
            async with http.post(request.url, data=request.body, headers=dict(request.headers)) as resp:
                payload = await resp.read()
                platform.read_answer(resp.status, resp.headers, payload)
    except DeliveryError as exc:
        kinds = {"retry": "暂时失败，稍后重试可能成功", "config": "配置有误，需要修改",
                 "rejected": "平台拒收了这条消息"}
        # The adapter names its platform (企业微信); the admin configured 政务微信 perhaps (trial 15).
        return False, f"发送失败（{kinds[exc.kind.value]}）：{as_configured(exc.message, channel)}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        from urllib.parse import urlsplit

        from bot.platforms.appsend import network_failure

        return False, f"发送失败：{network_failure(exc, urlsplit(request.url).hostname or '平台')}。"
    return True, "发送成功：平台已接受测试消息，请到群里（或个人消息中）查看。"


# A test message reaches the group for real, and a rehearsal never sends: refused, not sent. Its full
# stop is its own (the 409 page shows it as is, the outbox page adds none), unlike the short refusals.
REHEARSAL_NO_TEST = ("演练模式下不发送测试消息：测试消息会真正发到群里，而演练从不真正发送。"
                     "去掉 --dry-run（或 REMINDBOT_DRY_RUN）重启服务后再试。")


async def send_test(runtime: Runtime, channel_id: str, *, admin: str, reason: str | None, now: datetime) -> Done:
    """Send a test message to a channel; the audit row records the platform's answer, good or bad."""
    if runtime.settings.dry_run:
        raise _refused("send_test", REHEARSAL_NO_TEST)
    try:
        why = clean_reason(reason)
    except ActionRefused as exc:
        raise _refused("send_test", str(exc), exc.status) from None
    channel = runtime.channel(channel_id)
    if channel is None:
        raise _refused("send_test", f"没有标识为 “{channel_id}” 的频道", 404)
    if channel.dry_run:
        raise _refused("send_test", f"频道 {channel.name} 没有配置 webhook（只记录、不发送），无法发送测试消息")
    _, answer = await deliver_test(runtime, channel)
    text = f"{channel.name}：{answer}"
    row = await _audit(runtime, AdminAction(channel_id=channel_id, admin=admin, action="send_test", reason=why,
                                            detail=text, at=to_db_time(now)))
    return _done("send_test", row, text)


# ---------------------------------------------------------------- reading the audit


async def actions_of(runtime: Runtime, occurrence_id: int) -> list[AdminAction]:
    """The occurrence's audit rows, newest first."""
    async with runtime.db.session() as session:
        return list((await session.exec(select(AdminAction).where(AdminAction.occurrence_id == occurrence_id)
                                        .order_by(col(AdminAction.at).desc(), col(AdminAction.id).desc()))).all())


async def delivery_actions(runtime: Runtime, limit: int = 50) -> list[AdminAction]:
    """The latest re-sends and test messages (what the outbox page shows), newest first."""
    async with runtime.db.session() as session:
        return list((await session.exec(select(AdminAction)
                                        .where(col(AdminAction.action).in_(("resend", "send_test")))
                                        .order_by(col(AdminAction.at).desc(), col(AdminAction.id).desc())
                                        .limit(limit))).all())
