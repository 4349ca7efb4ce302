"""``/ical/<token>.ics``: a person's or a unit's calendar feed, for a phone calendar to subscribe to.

The token's purpose ("ical-person" or "ical-unit") says which; its payload is the id. Feed links
live ``Settings.feed_ttl_days`` (a subscription is refreshed for months). The admin upcoming page
offers them through a search by name or id (:func:`feed_search`): a bounded list, never one link
per person of a province (each link is signed, ~200 bytes of HTML).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.confirming.tokens import make_view_token, view_url
from bot.reporting.ical import build_feed
from bot.runtime import Runtime
from bot.web.common import runtime_of
from bot.web.views import Refused, not_found, read_view


def add_ical_routes(app: web.Application) -> None:
    app.router.add_get(r"/ical/{token:[A-Za-z0-9._-]{1,400}}.ics", ical_feed)


def feed_url(runtime: Runtime, scope: str, target: str) -> str:
    purpose = "ical-person" if scope == "person" else "ical-unit"
    token = make_view_token(runtime.link_key, purpose, [target], now=runtime.clock())
    return view_url(runtime.settings.base_url, purpose, token)


FEEDS_SHOWN = 30  # feed links on the admin page at most; a search narrows the rest


def feed_links(runtime: Runtime) -> list[dict[str, Any]]:
    """Every person's and unit's feed link (people first, YAML order): for scripts and tests, not pages."""
    return [_link(runtime, kind, entry) for kind, entry in _entries(runtime)]


@dataclass(frozen=True)
class FeedSearch:
    """What the admin page lists of the feeds: at most :data:`FEEDS_SHOWN` links, and how many there are."""

    query: str
    links: list[dict[str, Any]]
    matched: int  # people and units the query matches (all of them without a query)
    people: int  # in the schedules
    units: int


def feed_search(runtime: Runtime, query: str = "", limit: int = FEEDS_SHOWN) -> FeedSearch:
    """People and units whose id or name is ``query`` (exact matches first, then those containing it,
    people first, YAML order), their feed links signed for the first ``limit`` only."""
    s = runtime.schedules
    query = query.strip()
    found = list(_entries(runtime))
    if query:
        exact = [(k, e) for k, e in found if query in (e.id, e.name)]
        found = exact + [(k, e) for k, e in found if (query in e.name or query in e.id) and query not in (e.id, e.name)]
    return FeedSearch(query, [_link(runtime, kind, entry) for kind, entry in found[:limit]], len(found),
                      len(s.people), len(s.units))


def _entries(runtime: Runtime) -> list[tuple[str, Any]]:
    s = runtime.schedules
    return [("person", p) for p in s.people.values()] + [("unit", u) for u in s.units.values()]


def _link(runtime: Runtime, kind: str, entry: Any) -> dict[str, Any]:
    return {"kind": "个人" if kind == "person" else "单位", "name": entry.name, "id": entry.id,
            "url": feed_url(runtime, kind, entry.id)}


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
    body = await build_feed(runtime, "person" if purpose == "ical-person" else "unit", target, entry.name,
                            runtime.clock())
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": 'inline; filename="remindbot.ics"',
                                 "Cache-Control": "private, max-age=900"})
