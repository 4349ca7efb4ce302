"""The personal confirmation pages: ``GET /c/<token>`` shows, ``POST /c/<token>`` records.

GET records nothing: chat apps open links on their own to build previews. The token in the URL
is the credential (no cookie, no session), so a cross-site form post gains an attacker nothing
they did not already hold; still, a POST must repeat the token in its form and, when the browser
says where it comes from (Origin or Referer), come from this site.

A dry run's link shows the page marked 演练, without the form, and its POST is refused: a
rehearsal confirms nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlsplit

from aiohttp import web
from sqlmodel import select

from bot.confirmations import (
    NOTE_MAX,
    VIA_LABELS,
    ConfirmationError,
    NotExpectedError,
    RehearsalError,
    find_in,
    record_confirmation,
)
from bot.tokens import TokenError, read_token
from bot.web.app import read_form, render, runtime_of, zone_for
from storage.models import Confirmation, Expectation, Occurrence

CONTACT = "如有疑问，请联系机关工委管理员。"
REHEARSAL = (403, "演练链接，不能确认",
             "这是一次演练（未真正发送）的确认链接，只用来查看确认页面的样子，不会登记任何确认。")


@dataclass
class Target:
    """What a valid token points at."""

    token: str
    occurrence: Occurrence
    expectation: Expectation
    confirmation: Confirmation | None


class Refusal(Exception):
    """A request that records nothing; carries the Chinese page to show."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.message = message


TOKEN_REFUSALS: dict[str, tuple[int, str, str]] = {
    "forged": (403, "链接无效", "这个确认链接不完整或已被改动，无法使用。请从提醒消息中重新打开原始链接。"),
    "malformed": (400, "链接无效", "这个确认链接的格式不正确。请从提醒消息中重新打开原始链接，注意复制完整。"),
    "expired": (410, "链接已过期", "这个确认链接已超过有效期。如仍需确认，请联系机关工委管理员代为登记。"),
}


def add_confirm_routes(app: web.Application) -> None:
    app.router.add_get("/c/{token}", show_confirm)
    app.router.add_post("/c/{token}", post_confirm)


async def _resolve(request: web.Request) -> Target:
    runtime = runtime_of(request)
    token = request.match_info["token"]
    max_age = runtime.settings.link_ttl_days * 86400
    try:
        occurrence_id, person_id = read_token(
            runtime.link_key, token, max_age, now=runtime.clock()
        )
    except TokenError as exc:
        raise Refusal(*TOKEN_REFUSALS[exc.reason]) from None
    async with runtime.db.session() as session:  # one session: this runs on every open and press
        occurrence = await session.get(Occurrence, occurrence_id)
        found = await session.exec(select(Expectation).where(
            Expectation.occurrence_id == occurrence_id, Expectation.person_id == person_id))
        expectation = found.first()
        confirmation = await find_in(session, occurrence_id, person_id) if expectation else None
    if occurrence is None:
        raise Refusal(404, "提醒不存在", "这个链接对应的提醒已不存在。" + CONTACT)
    if expectation is None:
        raise Refusal(403, "无需确认", "您不在本次提醒的确认名单中，无需确认。" + CONTACT)
    return Target(token, occurrence, expectation, confirmation)


def _page(request: web.Request, target: Target, *, status: int = 200, note: str = "",
          error: str | None = None, just_confirmed: bool = False) -> web.Response:
    runtime = runtime_of(request)
    occ = target.occurrence
    now = runtime.clock()
    deadline = occ.deadline_at.replace(tzinfo=UTC) if occ.deadline_at else None
    conf = target.confirmation
    return render(
        request,
        "confirm.html",
        status=status,
        token=target.token,
        occurrence=occ,
        person_name=target.expectation.person_name,
        unit_name=target.expectation.unit_name or "",
        zone=zone_for(runtime, occ.reminder_id),
        overdue=deadline is not None and now >= deadline and conf is None,
        confirmation=conf,
        via_label=VIA_LABELS.get(conf.via, conf.via) if conf else "",
        just_confirmed=just_confirmed,
        note=note,
        note_max=NOTE_MAX,
        error=error,
        rehearsal=occ.dry_run,
    )


def _refusal_page(request: web.Request, refusal: Refusal) -> web.Response:
    return render(request, "message.html", status=refusal.status, title=refusal.title,
                  message=refusal.message, tone="error")


async def show_confirm(request: web.Request) -> web.Response:
    try:
        target = await _resolve(request)
    except Refusal as refusal:
        return _refusal_page(request, refusal)
    return _page(request, target)


async def post_confirm(request: web.Request) -> web.Response:
    try:
        _check_same_site(request)
        target = await _resolve(request)
        if target.occurrence.dry_run:
            raise Refusal(*REHEARSAL)
        form = await read_form(request)
        sent_token = form.get("token")
        if not isinstance(sent_token, str) or not hmac.compare_digest(
            sent_token.encode(), target.token.encode()
        ):
            raise Refusal(400, "提交无效", "提交的内容与链接不符，未登记确认。请重新打开确认链接再试。")
    except Refusal as refusal:
        return _refusal_page(request, refusal)
    note = form.get("note")
    note = note if isinstance(note, str) else None
    if target.confirmation is not None:  # replay: harmless, say when it was first confirmed
        return _page(request, target)
    runtime = runtime_of(request)
    try:
        created, confirmation = await record_confirmation(
            runtime.db,
            target.occurrence.id or 0,
            target.expectation.person_id,
            via="link",
            note=note,
            now=runtime.clock(),
            checked=True,  # _resolve just found the expectation and no confirmation
        )
    except RehearsalError:
        return _refusal_page(request, Refusal(*REHEARSAL))
    except NotExpectedError:
        return _refusal_page(request, Refusal(403, "无需确认", "您不在本次提醒的确认名单中。" + CONTACT))
    except ConfirmationError as exc:
        return _page(request, target, status=400, note=note or "", error=str(exc))
    target.confirmation = confirmation
    return _page(request, target, just_confirmed=created)


def _host_port(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        return None
    return ((parts.hostname or "").lower(), port) if parts.hostname else None


def _check_same_site(request: web.Request) -> None:
    """Refuse a form posted from another site, when the browser tells us where it came from.

    ``Origin: null`` counts as untold: our own pages send it, because their Referrer-Policy
    is ``no-referrer`` (the URL holds the token).
    """
    origin = request.headers.get("Origin")
    claimed = origin if origin and origin != "null" else request.headers.get("Referer")
    if not claimed:
        return
    allowed = {
        _host_port(runtime_of(request).settings.base_url),
        _host_port(f"{request.scheme}://{request.host}"),
    }
    if _host_port(claimed) not in allowed - {None}:
        raise Refusal(403, "请求来源不符", "确认只能在确认页面上提交。请直接打开消息中的确认链接，再点击“确认”。")
