"""The outbox's rows as the firing path writes them, without SQLAlchemy: their columns, their dedupe
keys, the set-based insert through a ``storage.writes.Writer`` and the record-only counts.

``bot.delivery.outbox`` re-exports these names (their home before ``remindbot fire`` on a SQLite file
stopped importing SQLAlchemy).
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from bot.platforms.base import ChannelBase
    from storage.writes import Writer

PENDING, DRY_RUN = "pending", "dry_run"
# Whether any row waits to be sent (due now or after a retry). Read-only, one indexed lookup.
ANY_PENDING = "SELECT id FROM outbox WHERE status = 'pending' LIMIT 1"
# An occurrence's messages as ``fire`` lists them (not the bodies), in order.
OUTCOMES = """SELECT id, status, channel_id, summary, sent_at, last_error, dedupe_key FROM outbox
WHERE occurrence_id = :occurrence_id ORDER BY id"""


class Outcome(NamedTuple):
    """One row of :data:`OUTCOMES` (``sent_at`` as the database gives it: ``storage.reads.moment``)."""

    id: int
    status: str
    channel_id: str
    summary: str
    sent_at: Any
    last_error: str | None
    dedupe_key: str


def robot_key(channel: ChannelBase) -> str:
    """The rate-limit key of a channel's robot: a short hash of the webhook, never the URL; an app's
    direct messages share the app's lane (``app:<platform>:<id>``)."""
    lane = getattr(channel, "lane", None)
    if isinstance(lane, str):
        return lane
    if channel.webhook is None:
        return f"dry:{channel.id}"
    digest = hashlib.sha256(channel.webhook_url().encode()).hexdigest()
    return f"r:{digest[:16]}"


def outbox_rows(*, dedupe_key: str, channel: ChannelBase, platform: str, bodies: list[dict[str, Any]],
                occurrence_id: int | None, stage: str, summary: str, now: datetime | None,
                dry_run: bool, robot: str | None = None) -> list[dict[str, Any]]:
    """The rows :func:`enqueue` writes, as plain dicts (for :func:`insert_rows` in bulk)."""
    robot = robot or robot_key(channel)
    moment = now or datetime.now(UTC)
    prefix = "dry/" if dry_run else ""
    status = DRY_RUN if dry_run else PENDING
    return [
        {
            "dedupe_key": f"{prefix}{dedupe_key}#{part}",
            "occurrence_id": occurrence_id,
            "stage": stage,
            "channel_id": channel.id,
            "platform": platform,
            "robot": robot,
            "body": body,
            "summary": summary,
            "status": status,
            "attempts": 0,
            "next_attempt_at": moment,
            "created_at": moment,
        }
        for part, body in enumerate(bodies, start=1)
    ]


@dataclass
class RecordedOnly:
    """Rows recorded without sending (status dry_run) that this process committed at queue time.

    The dispatcher never handles them, so its stop summary adds the ones committed while it ran
    to its own count. Counted at commit: a rolled-back fire recorded nothing.
    """

    rows: int = 0


RECORDED_ONLY = RecordedOnly()


_UNCOUNTED: Counter[tuple[str, str]] = Counter()  # recorded while bot.metrics was not loaded


def count_recorded(counts: Counter[tuple[str, str]]) -> None:
    """Rows recorded without sending, committed: (platform, outcome) → rows."""
    RECORDED_ONLY.rows += sum(counts.values())
    # A command (``fire``) serves no /metrics: it does not load prometheus_client for them. The counts
    # wait here; bot.metrics takes them when it is imported (take_uncounted), so none is lost.
    messages = getattr(sys.modules.get("bot.metrics"), "MESSAGES", None)
    if messages is None:
        _UNCOUNTED.update(counts)
        return
    for (platform, outcome), n in counts.items():
        messages.labels(platform, outcome).inc(n)


def take_uncounted() -> Counter[tuple[str, str]]:
    """The record-only counts committed before bot.metrics was loaded, (platform, outcome) → rows; cleared."""
    taken = Counter(_UNCOUNTED)
    _UNCOUNTED.clear()
    return taken


@dataclass(slots=True)
class Columns:
    """Rows given a column at a time, as the statements below send them: for a caller that has its
    rows so (20,000 expectations), no dict per row to build and take apart again.

    ``each``: per column, one value per row, in order; ``same``: per column, the one value of every row.
    """

    each: dict[str, list[Any]]
    same: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.each.values()), ()))

    def names(self) -> list[str]:
        return [*self.each, *self.same]

    def rows(self) -> list[dict[str, Any]]:
        names = list(self.each)
        return [dict(zip(names, values, strict=True)) | self.same
                for values in zip(*self.each.values(), strict=True)]


async def insert_rows(writer: Writer, rows: Sequence[dict[str, Any]], *, rehearsal: bool = False) -> set[str]:
    """Insert outbox rows in set-based statements, ``ON CONFLICT (dedupe_key) DO NOTHING``.

    Every row must carry the same keys (see :func:`outbox_rows`). Returns the dedupe keys of the
    rows created (those already there are skipped: firing twice sends once). Does not commit.
    Rows recorded without sending are counted once committed (``remindbot_messages_total``,
    outcome ``dry_run`` for a ``rehearsal``, else ``record_only``; and :data:`RECORDED_ONLY`).
    """
    if not rows:
        return set()
    each = {name: [row[name] for row in rows] for name in rows[0]}
    created = await writer.insert_ignoring("outbox", each, {}, ["dedupe_key"], "dedupe_key")
    if any(key.startswith("dry/") for key in created):  # see outbox_rows' prefix
        counts: Counter[tuple[str, str]] = Counter()
        outcome = DRY_RUN if rehearsal else "record_only"
        for row in rows:
            if row["dedupe_key"] in created and row["dedupe_key"].startswith("dry/"):
                counts[(row["platform"], outcome)] += 1
        writer.after_commit(counts, count_recorded)
    return created
