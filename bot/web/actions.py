"""The admin actions over HTTP: POST forms on the board and the outbox page.

Every action is a POST behind the admin login (``bot.web.admin.basic_auth``) and is refused,
recording nothing, unless

* its form carries a CSRF token signed with the service's key for the logged-in admin and at
  most :data:`TOKEN_TTL` seconds old (another site cannot read a page to copy one, and a token
  is good for its own admin only), and
* the browser says it came from this site: ``Sec-Fetch-Site`` is ``same-origin`` (or ``none``)
  when sent, and ``Origin``, when sent, names this host or ``REMINDBOT_BASE_URL``'s (``null``,
  which no-referrer pages send, only with ``Sec-Fetch-Site: same-origin``).

The work itself is :mod:`bot.confirming.actions` (the same functions as the command line). A done action
redirects (303) back to its page, which shows the audit row; a refusal is a Chinese page.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlmodel import col, select

from bot.config.models import Selector
from bot.confirming import actions
from bot.confirming.actions import ACTION_LABELS, EXCUSE_KINDS, ActionRefused, Done
from bot.web.common import admin_name, person_name, read_form, runtime_of
from bot.web.common import render as render_page
from storage.models import AdminAction, Outbox

TOKEN_TTL = 12 * 3600  # seconds a page's CSRF token stays good
FIELD = "csrf"
ID = r"{id:[0-9]{1,18}}"


def add_action_routes(admin: web.Application) -> None:
    admin.router.add_post(f"/occurrences/{ID}/confirm", confirm_post)
    admin.router.add_post(f"/occurrences/{ID}/excuse", excuse_post)
    admin.router.add_post(f"/occurrences/{ID}/followup", followup_post)
    admin.router.add_post(f"/outbox/{ID}/resend", resend_post)
    admin.router.add_post("/send-test", send_test_post)


# ---------------------------------------------------------------- CSRF


def _signature(key: str, admin: str, issued: int) -> str:
    return hmac.new(key.encode(), f"admin-csrf\0{admin}\0{issued}".encode(), hashlib.sha256).hexdigest()[:40]


def csrf_token(request: web.Request) -> str:
    """A token for the forms of the page being rendered, for the logged-in admin."""

    issued = int(time.time())
    return f"{issued}.{_signature(runtime_of(request).settings.signing_key, admin_name(request), issued)}"


def token_ok(key: str, admin: str, token: str, now: float) -> bool:
    """Whether ``token`` was issued for ``admin`` with ``key`` within the last :data:`TOKEN_TTL` seconds."""
    issued_text, _, signature = token.partition(".")
    if not (issued_text.isascii() and issued_text.isdigit()) or len(issued_text) > 12:  # "²" is a digit to isdigit
        return False
    issued = int(issued_text)
    fresh = 0 <= now - issued <= TOKEN_TTL
    return hmac.compare_digest(signature.encode(), _signature(key, admin, issued).encode()) and fresh


def same_site(request: web.Request) -> bool:
    """False when the browser says the request came from another site.

    Our pages send ``Referrer-Policy: no-referrer``, so a browser's own form POST carries
    ``Origin: null``; that is accepted only with ``Sec-Fetch-Site: same-origin`` beside it.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":
        return site == "same-origin"
    allowed = {request.host, urlsplit(runtime_of(request).settings.base_url).netloc}
    return urlsplit(origin).netloc in allowed


async def _form(request: web.Request) -> dict[str, str]:
    """The checked form; raises HTTPForbidden (a Chinese page) when CSRF or same-site fails."""

    form = await read_form(request)  # a malformed body is a Chinese 400
    token = str(form.get(FIELD, ""))
    key = runtime_of(request).settings.signing_key
    if not same_site(request) or not token_ok(key, admin_name(request), token, time.time()):
        raise web.HTTPForbidden(
            text=_refusal_page(request, 403, "操作被拒绝",
                               "请求来自其他网站，或缺少有效的安全令牌（可能页面打开太久）。"
                               "操作没有执行。请回到管理后台刷新页面后重试。"),
            content_type="text/html")
    return {k: str(v) for k, v in form.items()}


def _refusal_page(request: web.Request, status: int, title: str, message: str, back: str = "/admin/") -> str:
    response = render_page(request, "admin_refused.html", status, title=title, message=message, tone="error",
                           back=back)
    assert response.text is not None
    return response.text


def _refused(request: web.Request, exc: ActionRefused, back: str) -> web.Response:
    return render_page(request, "admin_refused.html", exc.status, title="操作未执行", message=str(exc),
                       tone="error", back=back)


def _back(done: Done, page: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{page}?done={done.row.id}#actions")


# ---------------------------------------------------------------- handlers


def _now(request: web.Request) -> Any:
    from datetime import UTC

    return runtime_of(request).clock().astimezone(UTC)


async def _occurrence_action(request: web.Request, work: Any) -> web.Response:

    occurrence_id = int(request.match_info["id"])
    form = await _form(request)
    page = f"/admin/occurrences/{occurrence_id}"
    try:
        done = await work(runtime_of(request), occurrence_id, form, admin_name(request), _now(request))
    except ActionRefused as exc:
        return _refused(request, exc, page)
    raise _back(done, page)


async def confirm_post(request: web.Request) -> web.Response:
    return await _occurrence_action(request, lambda rt, occ, form, admin, now: actions.confirm_for(
        rt, occ, form.get("person", ""), admin=admin, note=form.get("note"), now=now))


async def excuse_post(request: web.Request) -> web.Response:
    return await _occurrence_action(request, lambda rt, occ, form, admin, now: actions.excuse(
        rt, occ, form.get("person", ""), admin=admin, kind=form.get("kind", ""), reason=form.get("reason", ""),
        now=now))


async def followup_post(request: web.Request) -> web.Response:
    return await _occurrence_action(request, lambda rt, occ, form, admin, now: actions.followup_now(
        rt, occ, admin=admin, reason=form.get("reason"), now=now))


async def resend_post(request: web.Request) -> web.Response:

    form = await _form(request)
    try:
        done = await actions.resend(runtime_of(request), int(request.match_info["id"]), admin=admin_name(request),
                                    reason=form.get("reason"), now=_now(request))
    except ActionRefused as exc:
        return _refused(request, exc, "/admin/outbox")
    raise _back(done, "/admin/outbox")


async def send_test_post(request: web.Request) -> web.Response:

    form = await _form(request)
    try:
        done = await actions.send_test(runtime_of(request), form.get("channel", ""), admin=admin_name(request),
                                       reason=form.get("reason"), now=_now(request))
    except ActionRefused as exc:
        return _refused(request, exc, "/admin/outbox")
    raise _back(done, "/admin/outbox")


# ---------------------------------------------------------------- what the pages show


def admin_names(request: web.Request) -> dict[str, str]:
    """Person id -> name for the schedules' admins: the command line records ``--by`` as an id.

    Read from the snapshot's role index (memoised), not by walking every person: a province has
    100,000 people, and the walk cost a board request 40–80 ms of CPU twice.
    """
    admins = runtime_of(request).schedules.select(Selector(roles=["admin"]))
    return {p.id: p.name for p in admins}


def _rows(request: web.Request, rows: list[AdminAction], names: dict[str, str]) -> list[dict[str, Any]]:
    runtime = runtime_of(request)
    admins = admin_names(request)
    out = []
    for r in rows:
        channel = runtime.channel(r.channel_id) if r.channel_id else None
        out.append({"row": r, "label": ACTION_LABELS.get(r.action, r.action), "admin": admins.get(r.admin, r.admin),
                    "person": names.get(r.person_id or "", r.person_id or ""),
                    "channel": channel.name if channel is not None else (r.channel_id or "")})
    return out


def _done_row(request: web.Request, rows: list[AdminAction]) -> AdminAction | None:
    wanted = request.query.get("done", "")
    return next((r for r in rows if str(r.id) == wanted), None)


async def board_extras(request: web.Request, b: Any) -> dict[str, Any]:
    """The board's action forms (who still owes), its audit rows and the notice of a done action.

    ``b``: the page's board (``bot.web.admin.BoardView``): its ``rows`` are one page, its ``counts``
    the whole occurrence's.
    """
    runtime = runtime_of(request)
    occ = b.occurrence
    rows = await actions.actions_of(runtime, occ.id or 0)
    reminder = runtime.schedules.reminders.get(occ.reminder_id)
    owing = [r for r in b.rows if not r.confirmed and not r.excused]  # the forms list this page's
    names = {r.person_id: r.name for r in b.rows}
    names |= {r.person_id: person_name(runtime, r.person_id) for r in rows if r.person_id and r.person_id not in names}
    return {
        "csrf": csrf_token(request),
        "owing": owing,
        "excuse_kinds": EXCUSE_KINDS,
        "can_follow_up": (b.counts.owing > 0 and reminder is not None and reminder.confirm is not None
                          and reminder.enabled),
        "audit": _rows(request, rows, names),
        "admin_names": admin_names(request),
        "done": _done_row(request, rows),
    }


async def outbox_extras(request: web.Request) -> dict[str, Any]:
    """The outbox page's re-send and test forms, the delivery audit rows and a done notice."""
    runtime = runtime_of(request)
    rows = await actions.delivery_actions(runtime)
    async with runtime.db.session() as session:
        ids = [r.outbox_id for r in rows if r.outbox_id]
        summaries = {o.id: o.summary for o in (await session.exec(select(Outbox).where(col(Outbox.id).in_(ids))))}
    audit = _rows(request, rows, {})
    for item in audit:
        item["summary"] = summaries.get(item["row"].outbox_id, "")
    return {
        "csrf": csrf_token(request),
        "test_channels": [c for c in runtime.schedules.channels.values() if not c.dry_run],
        "test_refused": actions.REHEARSAL_NO_TEST if runtime.settings.dry_run else None,
        "audit": audit,
        "done": _done_row(request, rows),
    }
