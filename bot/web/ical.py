"""``/ical/<token>.ics``: a person's or a unit's calendar feed, for a phone calendar to subscribe to.

The token's purpose ("ical-person" or "ical-unit") says which; its payload is the id. Feed links
live ``Settings.feed_ttl_days`` (a subscription is refreshed for months) and are listed for each
person and unit on the admin upcoming page (:func:`feed_links`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.confirming.tokens import make_view_token, view_url
from bot.runtime import Runtime
from bot.web.common import runtime_of
from bot.web.views import Refused, not_found, read_view


def add_ical_routes(app: web.Application) -> None:
    app.router.add_get(r"/ical/{token:[A-Za-z0-9._-]{1,400}}.ics", ical_feed)


def feed_url(runtime: Runtime, scope: str, target: str) -> str:
    purpose = "ical-person" if scope == "person" else "ical-unit"
    token = make_view_token(runtime.link_key, purpose, [target], now=runtime.clock())
    return view_url(runtime.settings.base_url, purpose, token)


def feed_links(runtime: Runtime) -> list[dict[str, Any]]:
    """Every person's and unit's feed link, for the admin pages (people first, YAML order)."""
    s = runtime.schedules
    people = [{"kind": "个人", "name": p.name, "id": p.id, "url": feed_url(runtime, "person", p.id)}
              for p in s.people.values()]
    units = [{"kind": "单位", "name": u.name, "id": u.id, "url": feed_url(runtime, "unit", u.id)}
             for u in s.units.values()]
    return people + units


async def ical_feed(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    try:
        purpose, payload = read_view(request, ("ical-person", "ical-unit"), runtime.settings.feed_ttl_days)
        target = str(payload[0])
        s = runtime.schedules
        entry = s.people.get(target) if purpose == "ical-person" else s.units.get(target)
        if entry is None:
            raise not_found("这个日历订阅对应的人员或单位已不在名单中。请联系机关工委管理员。")
    except Refused as refused:
        return refused.response
    # Imported on the first feed asked for, not at the start: icalendar is not needed to be ready.
    from bot.reporting.ical import build_feed

    body = await build_feed(runtime, "person" if purpose == "ical-person" else "unit", target, entry.name,
                            runtime.clock())
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": 'inline; filename="remindbot.ics"',
                                 "Cache-Control": "private, max-age=900"})
