"""``/ical/<token>.ics``: a person's or a unit's calendar feed, for a phone calendar to subscribe to.

The token's purpose ("ical-person" or "ical-unit") says which; its payload is the id. Feed links
live ``Settings.feed_ttl_days`` (a subscription is refreshed for months). The admin upcoming page
offers them through a search by name or id (:func:`feed_search`): a bounded list, never one link
per person of a province (each link is signed, ~200 bytes of HTML).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.config.models import _columns as columns
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


FEEDS_SHOWN = 30  # feed links on the admin page at most; a search narrows the rest


def feed_links(runtime: Runtime) -> list[dict[str, Any]]:
    """Every person's and unit's feed link (people first, YAML order): for scripts and tests, not pages."""
    return [_link(runtime, *entry) for entry in _entries(runtime)]


@dataclass(frozen=True)
class FeedSearch:
    """What the admin page lists of the feeds: at most :data:`FEEDS_SHOWN` links, and how many there are."""

    query: str
    links: list[dict[str, Any]]
    matched: int  # people and units the query matches (all of them without a query)
    people: int  # in the schedules
    units: int


def feed_search(runtime: Runtime, query: str = "", limit: int = FEEDS_SHOWN) -> FeedSearch:
    """People and units whose id (any case) or name is ``query`` (exact matches first, then those containing it,
    people first, YAML order), their feed links signed for the first ``limit`` only.

    Reads the id and name columns only (no person's model is built), once per snapshot.
    """
    query = query.strip()
    found = _entries(runtime)
    if query:
        low = query.lower()  # ids are matched whatever their case (P000001 finds p000001), names as written
        exact = [e for e in found if e[1].lower() == low or e[2] == query]
        found = exact + [e for e in found if (query in e[2] or low in e[1].lower())
                         and not (e[1].lower() == low or e[2] == query)]
    s = runtime.schedules
    return FeedSearch(query, [_link(runtime, *entry) for entry in found[:limit]], len(found),
                      s.size("people"), s.size("units"))


_ENTRIES: list[tuple[weakref.ref[Any], list[tuple[str, str, str]]]] = []  # the last snapshot's, at most one


def _entries(runtime: Runtime) -> list[tuple[str, str, str]]:
    """(kind, id, name) of every person, then every unit, in YAML order; kept for the current snapshot
    (built in ~50 ms at 100,000 people, then each search only scans it)."""
    s = runtime.schedules
    if _ENTRIES and _ENTRIES[0][0]() is s:
        return _ENTRIES[0][1]
    out: list[tuple[str, str, str]] = []
    for kind, section in (("person", s.people), ("unit", s.units)):
        ids, names = columns(section, ("id", "name"))
        out += [(kind, i, n) for i, n in zip(ids, names, strict=True)]
    _ENTRIES[:] = [(weakref.ref(s), out)]
    return out


def _link(runtime: Runtime, kind: str, entry_id: str, name: str) -> dict[str, Any]:
    return {"kind": "个人" if kind == "person" else "单位", "name": name, "id": entry_id,
            "url": feed_url(runtime, kind, entry_id)}


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
