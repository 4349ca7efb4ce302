"""Where every inbound chat event lands: "person P said T" or "person P pressed confirm on O".

The platform modules (``bot/platforms/<platform>/inbound.py``) verify and decrypt a request and turn it
into a :class:`Said` or :class:`Pressed`; :func:`handle` applies the rules once for all of them:

- the sender is the platform user id mapped to a person in the YAML (``people[].ids``), never a
  display name; an unknown id gets a polite answer and nothing is recorded;
- a reply counts when it starts with 收到 / 确认 / 已完成 / 完成 (:func:`parse_reply`); the rest is
  the note, except a leading short code (``确认 A7K3``, shown in the reminder) that names the
  occurrence; without a code the person's oldest open confirmation is meant. Spaces (full-width
  too) and punctuation (``确认，A7K3``, ``收到！``) may follow the word, or nothing at all when what
  follows is unambiguous: a code (``收到A7K3``), a particle (``收到了``), or a note after 已完成
  (``已完成参加23人``). The word must open the message (``我没收到通知`` is no reply) and a glued
  form that asks or denies (``收到了吗``, ``确认一下``, ``已完成的同志…``) is none either;
- a message id seen before (a platform retry, a replayed request) records nothing twice
  (table ``inbound_seen``, kept for :data:`SEEN_RETENTION`);
- the confirmation goes through :func:`bot.confirming.confirmations.record_confirmation` (which refuses
  rehearsals), and the answer, in Chinese, names what was recorded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot import metrics
from bot.config.models import DEFAULT_TZ, PlatformIds
from bot.confirming.codes import CODE_ALPHABET as CODE_ALPHABET  # re-exported: the codes lived here
from bot.confirming.codes import CODE_LEN, occurrence_of_code
from bot.confirming.codes import reply_code as reply_code
from bot.confirming.codes import short_code as short_code
from bot.confirming.confirmations import ConfirmationError, record_confirmation, to_db_time
from bot.delivery.compose import when_text
from bot.platforms.events import Answer, Pressed, Said
from bot.platforms.registry import app_platform_title
from bot.runtime import Runtime
from storage.ids import row_id
from storage.models import Confirmation, Expectation, InboundSeen, Occurrence

log = logging.getLogger(__name__)

SEEN_RETENTION = timedelta(days=7)
WORDS = ("已完成", "收到", "确认", "完成")
_SEP = r"[\s,，:：;；、。.!！~～…]"  # \s is Unicode: the full-width space U+3000 too
_REPLY = re.compile(r"^\s*(已完成|收到|确认|完成)(.*)$", re.S)
_CODE = re.compile(rf"^([A-Za-z0-9]{{{CODE_LEN}}})(?:{_SEP}+|$)(.*)$", re.S)
_GLUED_CODE = re.compile(r"^([A-Za-z0-9]+)(.*)$", re.S)  # an ASCII run right after the word
_PARTICLES = ("了", "啦", "喽", "咯")  # 收到了, 已完成啦: the word still stands alone
# What, glued to the word, makes it part of a question, a denial or another phrase
# (收到的通知, 确认一下, 完成情况, 已完成的同志请回复): such a message is no reply.
_NOT_A_REPLY = ("的", "得", "没", "不", "未", "吗", "么", "呢", "否", "一下", "下", "是", "情况", "率", "度",
                "数", "人数", "名单", "时间", "后", "前", "与否")
_ASKS = re.compile(r"[?？]|(?:吗|么|呢|没|没有|否|与否)\W*$")
PLATFORM_ID_KEYS = tuple(PlatformIds.model_fields)  # the ids a person may have (people[].ids)

# What the log says of each outcome, for the operator (the metric keeps the English label).
OUTCOME_WORDS: dict[str, str] = {
    "recorded": "已登记确认",
    "already": "未登记：已确认过",
    "replay": "未登记：重复投递的同一事件",
    "unknown_sender": "未登记：发送人未登记平台账号",
    "owes_nothing": "未登记：此人没有需要确认的事项",
    "bad_code": "未登记：代码不对应需要此人确认的事项",
    "refused": "未登记：确认被拒绝",
    "ignored": "未登记：不是确认回复",
}


@dataclass(frozen=True)
class Reply:
    """A parsed confirmation reply: the short code (if any) and the note (if any)."""

    code: str | None
    note: str | None


def parse_reply(text: str) -> Reply | None:
    """``"已完成 A7K3 参加23人"`` → code and note; None when the text is no confirmation.

    Accepted: the word alone; the word, separators (spaces, full-width ones too, or punctuation
    ``，。！：；、~…``), then an optional code and the note; or, with nothing between (glued):

    - a short code (``收到A7K3``): an ASCII run of exactly :data:`CODE_LEN` characters that is a
      well-formed code with at least one letter (an all-digit run is taken for a figure);
    - a particle (``收到了``, ``已完成啦``), then what the word would take;
    - another of the words (``确认收到``, ``收到收到``), read as a reply of its own;
    - after 已完成 only, a note (``已完成参加23人``, ``已完成23人参加``); after 收到 / 确认 / 完成 any
      other glued Chinese text makes no reply (``确认参加`` is not taken: ``确认一下``, ``收到的``
      look alike); other glued text (``收到👍``) is the note.

    Refused when glued: a continuation in :data:`_NOT_A_REPLY` (``收到的通知``, ``确认一下``,
    ``已完成的同志请回复``) and anything that asks or denies (``？``, ``吗``, ``没有`` at the end).
    """
    match = _REPLY.match(text or "")
    if match is None:
        return None
    word, rest = match.group(1), match.group(2).rstrip()
    glued = bool(rest) and re.match(_SEP, rest) is None
    if glued:
        return _glued(word, rest)
    return _spaced(rest)


def _spaced(rest: str) -> Reply:
    """The word was followed by a separator (or nothing): an optional code, then the note."""
    rest = re.sub(rf"^{_SEP}+", "", rest)
    code = None
    code_match = _CODE.match(rest)
    if code_match and occurrence_of_code(code_match.group(1)) is not None:
        code, rest = code_match.group(1).upper(), code_match.group(2).strip()
    return Reply(code=code, note=rest.strip() or None)


def _glued(word: str, rest: str) -> Reply | None:
    """Text right after the word, no separator between (see :func:`parse_reply`)."""
    if rest.startswith(_NOT_A_REPLY) or _ASKS.search(rest):
        return None
    if rest.startswith(WORDS):  # 确认收到, 收到收到: the second word decides
        return parse_reply(rest)
    if rest.startswith(_PARTICLES):
        after = rest[1:]
        if not after or re.match(_SEP, after):
            return _spaced(after)
        return _glued("已完成", after)  # 收到了参加23人: after the particle a note may follow
    ascii_run = _GLUED_CODE.match(rest)
    if ascii_run:
        run, after = ascii_run.group(1), ascii_run.group(2)
        is_code = (len(run) == CODE_LEN and occurrence_of_code(run) is not None
                   and any(c.isalpha() for c in run))
        if is_code:
            note = re.sub(rf"^{_SEP}+", "", after).strip()
            return Reply(code=run.upper(), note=note or None)
        return Reply(code=None, note=rest.strip()) if word == "已完成" else None
    if word == "已完成" or not re.match(r"[\u3400-\u9fff]", rest):
        return Reply(code=None, note=rest.strip() or None)  # 已完成参加23人; 收到👍
    return None


def person_for(runtime: Runtime, platform: str, user_id: str) -> tuple[str, str] | None:
    """(person id, name) of the person whose ``ids.<platform>`` is ``user_id``; None if nobody."""
    if not user_id or platform not in PLATFORM_ID_KEYS:
        return None
    for person in runtime.schedules.people.values():
        if getattr(person.ids, platform, None) == user_id:
            return person.id, person.name
    return None


async def handle(runtime: Runtime, event: Said | Pressed) -> Answer:
    """Apply the confirmation rules to one inbound event; return what to answer. Never raises
    for a person's mistake (those are answers); database errors propagate."""
    answer = await _handle(runtime, event)
    metrics.INBOUND.labels(event.platform, answer.outcome).inc()
    log.info("收到%s（%s）：%s", "按钮确认" if isinstance(event, Pressed) else "群内回复",
             app_platform_title(event.platform),
             OUTCOME_WORDS.get(answer.outcome, answer.outcome))
    return answer


async def _handle(runtime: Runtime, event: Said | Pressed) -> Answer:
    if isinstance(event, Said):
        reply = parse_reply(event.text)
        if reply is None:
            return Answer("ignored", None)
        wanted = occurrence_of_code(reply.code) if reply.code else None
        via: Literal["chat", "card"] = "chat"
    else:
        reply, wanted, via = Reply(code=None, note=None), event.occurrence_id, "card"
    now = runtime.clock()
    if not await claim(runtime, event, now):
        return Answer("replay", None)
    who = person_for(runtime, event.platform, event.user_id)
    if who is None:
        return Answer("unknown_sender", "抱歉，未能识别您的身份（您的账号尚未登记），本次回复未记录。"
                                        "如需确认，请联系机关工委管理员。")
    person_id, name = who
    target = await _target(runtime, person_id, wanted)
    if isinstance(target, Answer):
        target.person_id, target.person_name = person_id, name
        if reply.code and target.outcome == "bad_code":
            target.text = f"{name}同志，没有找到代码 {reply.code} 对应的、需要您确认的事项，本次回复未记录。" \
                          "请核对提醒消息中的代码。"
        elif target.outcome == "bad_code":
            target.text = f"{name}同志，此事项不在需要您确认的名单中，本次操作未记录。"
        elif target.outcome == "owes_nothing":
            target.text = f"{name}同志，您目前没有需要确认的事项，无需回复。谢谢！"
        return target
    occ, confirmed = target
    what = f"“{occ.title}”（{_when(runtime, occ)}）"
    base = Answer("already", None, occ.id, person_id, name, occ.title)
    if confirmed is not None:
        base.text = f"{name}同志，您已确认过{what}，无需重复确认。"
        return base
    try:
        created, row = await record_confirmation(runtime.db, occ.id or 0, person_id, via=via,
                                                 note=reply.note, now=now)
    except ConfirmationError as exc:
        base.outcome, base.text = "refused", f"{name}同志，未能登记：{exc}"
        return base
    if not created:
        base.text = f"{name}同志，您已确认过{what}，无需重复确认。"
        return base
    metrics.CONFIRMATIONS.labels(via).inc()
    base.outcome = "recorded"
    note = f"，备注：{row.note}" if row.note else ""
    base.text = f"已登记 {name} 对{what}的确认{note}。谢谢！"
    return base


def _when(runtime: Runtime, occ: Occurrence) -> str:
    """The occurrence's due time as the reminder's zone reads it (``2025年3月7日（星期五）09:00``)."""
    reminder = runtime.schedules.reminders.get(occ.reminder_id)
    due = occ.due_at if occ.due_at.tzinfo else occ.due_at.replace(tzinfo=UTC)
    return when_text(due, reminder.zone if reminder else ZoneInfo(DEFAULT_TZ))


async def _target(runtime: Runtime, person_id: str,
                  wanted: int | None) -> tuple[Occurrence, Confirmation | None] | Answer:
    """The occurrence meant (named, or the person's oldest open one) and its confirmation."""
    async with runtime.db.session() as session:
        query = (
            select(Occurrence, Confirmation)
            .join(Expectation, col(Expectation.occurrence_id) == col(Occurrence.id))
            .join(Confirmation, (col(Confirmation.occurrence_id) == col(Occurrence.id))
                  & (col(Confirmation.person_id) == person_id), isouter=True)
            .where(Expectation.person_id == person_id)
        )
        if wanted is not None:
            if not row_id(wanted):  # beyond the id columns (a forged button): the driver would raise
                return Answer("bad_code", None)
            row = (await session.exec(query.where(Occurrence.id == wanted))).first()
            return (row[0], row[1]) if row is not None else Answer("bad_code", None)
        rows = (await session.exec(
            query.where(col(Occurrence.dry_run).is_(False), col(Confirmation.id).is_(None))
            .order_by(col(Occurrence.due_at), col(Occurrence.id)).limit(1)
        )).first()
    if rows is None:
        return Answer("owes_nothing", None)
    return rows[0], None


async def claim(runtime: Runtime, event: Said | Pressed, now: datetime) -> bool:
    """Remember the event's message id; False when it was seen before (a replay or a retry).

    Also forgets ids older than :data:`SEEN_RETENTION`.
    """
    async with runtime.db.session() as session:
        await session.exec(delete(InboundSeen).where(  # type: ignore[call-overload]
            col(InboundSeen.seen_at) < to_db_time(now - SEEN_RETENTION)))
        session.add(InboundSeen(platform=event.platform, app_id=event.app_id,
                                message_id=event.message_id[:200], seen_at=to_db_time(now)))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return False
    return True
