"""The personal confirmation pages: ``GET /c/<token>`` shows, ``POST /c/<token>`` records.

GET records nothing: chat apps open links on their own to build previews. The token in the URL
is the credential (no cookie, no session), so a cross-site form post gains an attacker nothing
they did not already hold; still, a POST must repeat the token in its form and, when the browser
says where it comes from (Origin or Referer), come from this site.

A dry run's link shows the page marked 演练, without the form, and its POST is refused: a
rehearsal confirms nothing.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.confirming.confirmations import (
    NOTE_MAX,
    VIA_LABELS,
    ConfirmationError,
    ConfirmationView,
    LinkView,
    clean_note,
    confirm_on_sqlite,
    confirm_once,
    insert_confirmation,
    link_view,
)
from bot.confirming.tokens import TokenError, read_token
from bot.web.common import moved_because, person_name, read_form, render, runtime_of, zone_for

CONTACT = "如有疑问，请联系机关工委管理员。"
REHEARSAL = (403, "演练链接，不能确认",
             "这是一次演练（未真正发送）的确认链接，只用来查看确认页面的样子，不会登记任何确认。")
OTHER_TOKEN = (400, "提交无效", "提交的内容与链接不符，未登记确认。请重新打开确认链接再试。")
# SQLite: how many confirm pages use a connection at once. SQLite writes one at a time anyway; a
# burst of confirmations beyond the pool's five kept connections opened an overflow connection per
# request (a thread, the connection and its pragmas) and closed it again on its return: about 200
# in a round of bench/confirm.py. Four leave one kept connection for the other pages; the rest wait
# their turn in the event loop (each page holds its place for one hand-over).
SQLITE_SLOTS = 4
SLOTS = web.AppKey("confirm_sqlite_slots", asyncio.Semaphore)


@dataclass(slots=True)
class Target:
    """What a valid token points at: the token, whose it is, and the page's one-query view."""

    token: str
    person_id: str
    view: LinkView
    confirmation: ConfirmationView | None


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
    app[SLOTS] = asyncio.Semaphore(SQLITE_SLOTS)
    app.router.add_get("/c/{token}", show_confirm)
    app.router.add_post("/c/{token}", post_confirm)


def _read_token(request: web.Request) -> tuple[str, int, str]:
    """The token, its occurrence id and person id; a bad or expired token is a :class:`Refusal`."""
    runtime = runtime_of(request)
    token = request.match_info["token"]
    max_age = runtime.settings.link_ttl_days * 86400
    try:
        occurrence_id, person_id = read_token(runtime.link_key, token, max_age, now=runtime.clock())
    except TokenError as exc:
        raise Refusal(*TOKEN_REFUSALS[exc.reason]) from None
    return token, occurrence_id, person_id


async def _target(conn: AsyncConnection, token: str, occurrence_id: int, person_id: str) -> Target:
    """One query for what the page needs; no occurrence or no expectation is a :class:`Refusal`."""
    return _checked(token, person_id, await link_view(conn, occurrence_id, person_id))


def _checked(token: str, person_id: str, view: LinkView | None) -> Target:
    """The page's target; no occurrence or no expectation is a :class:`Refusal`."""
    if view is None:
        raise Refusal(404, "提醒不存在", "这个链接对应的提醒已不存在。" + CONTACT)
    if not view.expected:
        raise Refusal(403, "无需确认", "您不在本次提醒的确认名单中，无需确认。" + CONTACT)
    return Target(token, person_id, view, view.confirmation)


def _page(request: web.Request, target: Target, *, status: int = 200, note: str = "",
          error: str | None = None, just_confirmed: bool = False) -> web.Response:
    runtime = runtime_of(request)
    occ = target.view
    now = runtime.clock()
    deadline = occ.deadline_at.replace(tzinfo=UTC) if occ.deadline_at else None
    conf = target.confirmation
    return render(
        request,
        "confirm.html",
        status=status,
        token=target.token,
        occurrence=occ,
        person_name=occ.person_name,
        unit_name=occ.unit_name or "",
        zone=zone_for(runtime, occ.reminder_id),
        moved_because=moved_because(runtime, occ.original_date),
        overdue=deadline is not None and now >= deadline and conf is None,
        confirmation=conf,
        late=_late(conf, deadline),
        via_label=VIA_LABELS.get(conf.via, conf.via) if conf else "",
        # not ``person_name``: that is the page's person, a string here (the base context's function
        # of the same name would be shadowed)
        recorded_by_name=person_name(runtime, conf.recorded_by) if conf and conf.recorded_by else "",
        excuse_reason=occ.excuse_reason,
        just_confirmed=just_confirmed,
        note=note,
        note_max=NOTE_MAX,
        error=error,
        rehearsal=occ.dry_run,
    )


def _late(conf: ConfirmationView | None, deadline: datetime | None) -> bool:
    """Whether the confirmation came after the deadline (the board's and the figures' rule: later
    than the deadline itself), so the page says it was recorded as 逾期确认."""
    if conf is None or deadline is None:
        return False
    at = conf.confirmed_at if conf.confirmed_at.tzinfo else conf.confirmed_at.replace(tzinfo=UTC)
    return bool(at > deadline)


def _refusal_page(request: web.Request, refusal: Refusal) -> web.Response:
    return render(request, "message.html", status=refusal.status, title=refusal.title,
                  message=refusal.message, tone="error")


async def show_confirm(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    try:
        token, occurrence_id, person_id = _read_token(request)
        found = None
        if runtime.db.is_sqlite:  # the query in one hand-over to the driver's thread, not four
            async with request.config_dict[SLOTS], runtime.db.engine.connect() as conn:
                found = await confirm_on_sqlite(conn, occurrence_id, person_id, via="link", note=None,
                                                now=runtime.clock(), record=False)
        if found is not None:
            target = _checked(token, person_id, found[0])
        else:
            async with runtime.db.engine.connect() as conn:
                target = await _target(conn, token, occurrence_id, person_id)
    except Refusal as refusal:
        return _refusal_page(request, refusal)
    return _page(request, target)


async def post_confirm(request: web.Request) -> web.Response:
    """Record the confirmation: one query and one ``INSERT … ON CONFLICT DO NOTHING`` in one transaction
    (on PostgreSQL one statement doing both, :func:`_post_in_one`, when the form is in order; on
    SQLite both in one hand-over to the driver's thread, :func:`_post_on_sqlite`).

    The refusals, in order: another site's form, a bad token, no occurrence, not expected, a
    rehearsal, a form whose token differs; a note too long shows the page again with the error.
    """
    runtime = runtime_of(request)
    try:
        _check_same_site(request)
        token, occurrence_id, person_id = _read_token(request)
        form = await read_form(request)  # before the transaction: never hold it across the network
        sent_token = form.get("token")
        same_token = isinstance(sent_token, str) and hmac.compare_digest(sent_token.encode(), token.encode())
        raw_note = form.get("note")
        note = raw_note if isinstance(raw_note, str) else None
        if same_token and not runtime.db.is_sqlite:
            try:
                cleaned = clean_note(note)
            except ConfirmationError:
                pass  # the page with the error, below, after the refusals that come first
            else:
                return await _post_in_one(request, token, occurrence_id, person_id, cleaned)
        if runtime.db.is_sqlite:
            page = await _post_on_sqlite(request, token, occurrence_id, person_id, same_token, note)
            if page is not None:
                return page
        async with runtime.db.engine.begin() as conn:
            target = await _target(conn, token, occurrence_id, person_id)
            if target.view.dry_run:
                raise Refusal(*REHEARSAL)
            if not same_token:
                raise Refusal(*OTHER_TOKEN)
            if target.confirmation is not None:  # replay: harmless, say when it was first confirmed
                return _page(request, target)
            try:
                cleaned = clean_note(note)
            except ConfirmationError as exc:
                return _page(request, target, status=400, note=note or "", error=str(exc))
            made = await insert_confirmation(conn, occurrence_id, person_id, via="link", note=cleaned,
                                             now=runtime.clock())
            if made is None:  # another request confirmed between our read and our insert: it stands
                target = await _target(conn, token, occurrence_id, person_id)
                return _page(request, target)
    except Refusal as refusal:
        return _refusal_page(request, refusal)
    target.confirmation = made
    return _page(request, target, just_confirmed=True)


async def _post_in_one(request: web.Request, token: str, occurrence_id: int, person_id: str,
                       note: str | None) -> web.Response:
    """PostgreSQL, the form's token and note in order: the view and the insert in one autocommit
    statement (:func:`bot.confirming.confirmations.confirm_once`), the same pages and refusals as
    the two-statement path. Raises :class:`Refusal`."""
    runtime = runtime_of(request)
    async with runtime.db.autocommit.connect() as conn:
        view, made = await confirm_once(conn, occurrence_id, person_id, via="link", note=note, now=runtime.clock())
        target = _checked(token, person_id, view)
        if target.view.dry_run:
            raise Refusal(*REHEARSAL)
        if target.confirmation is None and made is None:  # another request confirmed in between: it stands
            target = await _target(conn, token, occurrence_id, person_id)
    if made is None:  # a replay (or the race above): harmless, say when it was first confirmed
        return _page(request, target)
    target.confirmation = made
    return _page(request, target, just_confirmed=True)


async def _post_on_sqlite(request: web.Request, token: str, occurrence_id: int, person_id: str,
                          same_token: bool, note: str | None) -> web.Response | None:
    """SQLite: the query, the insert (only for a form in order) and the commit in one hand-over to
    aiosqlite's thread (:func:`bot.confirming.confirmations.confirm_on_sqlite`); the same pages and
    refusals, in the same order, as the general path. None when the driver cannot take it (the
    general path then does the work). Raises :class:`Refusal`."""
    runtime = runtime_of(request)
    try:
        cleaned, error = clean_note(note), None
    except ConfirmationError as exc:
        cleaned, error = None, str(exc)
    async with request.config_dict[SLOTS], runtime.db.engine.connect() as conn:
        found = await confirm_on_sqlite(conn, occurrence_id, person_id, via="link", note=cleaned,
                                        now=runtime.clock(), record=same_token and error is None)
    if found is None:
        return None
    view, made = found
    target = _checked(token, person_id, view)
    if target.view.dry_run:
        raise Refusal(*REHEARSAL)
    if not same_token:
        raise Refusal(*OTHER_TOKEN)
    if made is None:
        if target.confirmation is None and error is not None:
            return _page(request, target, status=400, note=note or "", error=error)
        return _page(request, target)  # a replay (or another request's, made in between): the first stands
    target.confirmation = made
    return _page(request, target, just_confirmed=True)


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
