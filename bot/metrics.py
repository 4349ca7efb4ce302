"""Prometheus metrics: every counter and gauge the service exposes on ``/metrics``, in one place.

Names follow Prometheus conventions (``remindbot_`` prefix, ``_total`` for counters, base units:
seconds). Labels are low-cardinality only: platform, outcome, stage kind, way — never a person,
a reminder title or a webhook. Gauges that describe the database (queue depth, oldest ready
message) are filled in at scrape time by the web handler, so every instance reports the shared
truth rather than its own view.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from storage.db import Database

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter(
    "remindbot_messages_total", "Outbox messages finished, by platform and outcome (sent, dead; dry_run: a rehearsal; "
    "record_only: a real message to a channel without a webhook, recorded and not sent).",
    ["platform", "outcome"], registry=REGISTRY)
RETRIES = Counter(
    "remindbot_retries_total", "Delivery attempts that failed and were scheduled again.",
    ["platform"], registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "remindbot_queue_depth", "Pending outbox messages, by platform (read from the database at scrape).",
    ["platform"], registry=REGISTRY)
OLDEST_READY_AGE = Gauge(
    "remindbot_oldest_ready_age_seconds",
    "How long the longest-waiting message ready to send has been ready, by platform (seconds; read at scrape).",
    ["platform"], registry=REGISTRY)
LANES_HELD = Gauge(
    "remindbot_lanes_held", "Robot lanes this instance holds a lease on.", registry=REGISTRY)
FIRES = Counter(
    "remindbot_fires_total",
    "Reminder stages fired, by outcome (on_time, late, missed, failed; skipped: its day was fired ahead by hand).",
    ["outcome"], registry=REGISTRY)
FIRE_LATENESS = Histogram(
    "remindbot_fire_lateness_seconds", "Seconds between a stage's due time and the moment it was queued.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600, 6 * 3600, 24 * 3600), registry=REGISTRY)
CONFIRMATIONS = Counter(
    "remindbot_confirmations_total", "Confirmations recorded, by way (link, chat, card, admin).",
    ["via"], registry=REGISTRY)
RELOAD_FAILURES = Counter(
    "remindbot_reload_failures_total", "Schedules reloads refused because the new files had errors.",
    registry=REGISTRY)
RELOAD_REMOVALS = Counter(
    "remindbot_reload_removals_total", "Schedules reloads applied that removed reminders or channels, emptied or "
    "deleted a file, or removed people or units in bulk (named in the log, told to the admin channel).",
    registry=REGISTRY)
MESSAGES_CUT = Counter(
    "remindbot_messages_truncated_total", "Messages cut short to fit a platform's limit.",
    ["platform"], registry=REGISTRY)
ADMIN_LOGIN_FAILURES = Counter(
    "remindbot_admin_login_failures_total", "Admin logins refused for wrong credentials.", registry=REGISTRY)
CONFIG_WARNINGS = Gauge(
    "remindbot_config_warnings", "Warnings the service shows now (admin pages' banner, log), by kind: schedules "
    "(the running schedules' own: a role one typo from a used one, a file left unread…), base_url (links sent for "
    "real under a local-only REMINDBOT_BASE_URL), host (every address listened on, links not https), holidays "
    "(a year ahead whose holidays are only provisional).", ["kind"], registry=REGISTRY)
WEB_ERRORS = Counter(
    "remindbot_web_errors_total", "Web requests answered with an error page, by HTTP status (500: a bug).",
    ["status"], registry=REGISTRY)


async def refresh_from_database(db: Database, now: datetime) -> None:
    """Fill the gauges that describe the shared queue (every instance reports the same truth).

    ``now`` is aware UTC. Platforms with nothing pending drop out of the gauges.
    Errors: database errors propagate (the caller serves the other metrics anyway).
    """
    # Imported here: every module counts with this one, and most commands never touch the queue.
    from sqlalchemy import case, func
    from sqlmodel import select

    from storage.models import Outbox

    ready_since = func.min(case((Outbox.next_attempt_at <= now, Outbox.next_attempt_at)))
    query = (select(Outbox.platform, func.count(), ready_since)  # type: ignore[call-overload]
             .where(Outbox.status == "pending").group_by(Outbox.platform))
    async with db.session() as session:
        rows = (await session.exec(query)).all()
    QUEUE_DEPTH.clear()  # no await from here on: a concurrent scrape never sees half the labels
    OLDEST_READY_AGE.clear()
    for platform, depth, oldest in rows:
        QUEUE_DEPTH.labels(platform).set(depth)
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        OLDEST_READY_AGE.labels(platform).set(max(0.0, age))
POSSIBLE_DUPLICATES = Counter(
    "remindbot_possible_duplicates_total",
    "Messages re-sent after their sender died mid-send (recorded as 可能重复: the group may see them twice).",
    ["platform"], registry=REGISTRY)
CHARTS = Counter(
    "remindbot_charts_total", "Report charts drawn (ok) or left out for the text table (no_font, too_large).",
    ["result"], registry=REGISTRY)
INBOUND = Counter(
    "remindbot_inbound_total", "Inbound chat events (replies, button presses) by platform and outcome "
    "(recorded, already, replay, unknown_sender, owes_nothing, bad_code, refused, ignored, rejected).",
    ["platform", "outcome"], registry=REGISTRY)
TOKEN_FETCHES = Counter(
    "remindbot_app_token_fetches_total", "App access-token fetches by platform and outcome (ok, refused, failed).",
    ["platform", "outcome"], registry=REGISTRY)
ADMIN_ACTIONS = Counter(
    "remindbot_admin_actions_total", "Admin actions (confirm, excuse, followup_now, resend, send_test) by outcome "
    "(done, refused).", ["action", "outcome"], registry=REGISTRY)


def _count_earlier() -> None:
    """Messages recorded without sending before this module was loaded (bot.delivery.rows keeps
    their counts until then, so a command that records them need not load prometheus_client)."""
    rows = sys.modules.get("bot.delivery.rows")
    if rows is not None:
        for (platform, outcome), n in rows.take_uncounted().items():
            MESSAGES.labels(platform, outcome).inc(n)


_count_earlier()
