"""Tables. The database is the record of truth: anything that must survive a restart is here.

Times are aware UTC datetimes: SQLModel's UTCDateTime column refuses naive values and returns
UTC (on SQLite, which has no time zones, it stores UTC without an offset).
"""

# No ``from __future__ import annotations`` here: with the annotations as objects, neither pydantic nor
# SQLAlchemy's declarative scan has to evaluate 112 strings when the 13 tables are made (every command
# that opens the database imports them).
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class TableBase(SQLModel):
    """The tables' base: each model's pydantic validator is built on its first validation, not at import
    (``defer_build``). A table model is made without validation (SQLModel's ``table=True``) and read
    back by the ORM, so most commands never build one: 13 of them cost every command that opens the
    database a few milliseconds."""

    model_config = ConfigDict(defer_build=True)  # type: ignore[assignment]


class Occurrence(TableBase, table=True):
    """One due time of one reminder. Created once, whoever fires first (unique key).

    A rehearsal (``fire --dry-run``, ``serve --dry-run``) gets its own row with ``dry_run`` set, so
    it never shares anything with the real occurrence of the same due time; every query that can
    lead to a send, a figure or a confirmation keeps to ``dry_run = false`` (docs/architecture.md).
    """

    __tablename__ = "occurrence"
    __table_args__ = (UniqueConstraint("reminder_id", "due_at", "dry_run", name="uq_occurrence_due"),)

    id: int | None = Field(default=None, primary_key=True)
    reminder_id: str = Field(index=True)
    due_at: datetime = Field(index=True, description="UTC, after the holiday policy")
    original_date: date | None = Field(default=None, description="local date before a holiday move")
    title: str
    kind: str = Field(default="reminder")
    deadline_at: datetime | None = None  # UTC; None when no confirmation is required
    provisional: bool = False  # the date came from the fallback calendar
    created_at: datetime = Field(default_factory=utcnow)
    fired_at: datetime | None = None  # when the due-day message was queued
    dry_run: bool = Field(default=False, sa_column_kwargs={"server_default": false()},
                          description="a rehearsal: never sent, nudged, counted or confirmed")
    # who queued it by hand (``remindbot fire``: the OS user; None: the service on its own, or fired
    # before 0009), named where a stage is skipped because it went out ahead of its day
    fired_by: str | None = None


class Expectation(TableBase, table=True):
    """Someone who owes a confirmation for an occurrence, as resolved when it fired."""

    __tablename__ = "expectation"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "person_id", name="uq_expectation"),
        # a board's rows in its order (the unit's place in the schedules, then as fired; rows fired before
        # 0008 have no place: unit id, then as fired): a page is read off the index, not sorted out of
        # the occurrence's 20,000; it serves lookups by occurrence too, as ix_..._occurrence_id did
        Index("ix_expectation_board", "occurrence_id", "unit_order", "unit_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id")
    person_id: str = Field(index=True)
    person_name: str
    unit_id: str | None = None
    unit_name: str | None = None
    leader_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    next_followup_at: datetime | None = None  # UTC; None when no more follow-ups are due
    followups: int = 0
    next_escalation_at: datetime | None = None
    escalations: int = 0
    # An admin excused the person from this occurrence (请假、出差…): no follow-ups or escalations,
    # and figures count them apart (neither owed nor late). UTC; None when not excused.
    excused_at: datetime | None = None
    excused_by: str | None = None  # the admin's name (web login) or person id (CLI --by)
    excuse_reason: str | None = Field(default=None, sa_column=Column(Text))
    # The unit's place in the schedules when it fired (YAML ``units:`` order, a spreadsheet's row order;
    # no unit: after every unit), so units are listed in the admins' own order (第一支部, 第二支部…).
    # None: fired before migration 0008. Last, where 0008 added it (tests/test_migrations.py).
    unit_order: int | None = None


class Confirmation(TableBase, table=True):
    """A confirmation: who, when, through what, any note, and the admin who recorded it."""

    __tablename__ = "confirmation"
    __table_args__ = (UniqueConstraint("occurrence_id", "person_id", name="uq_confirmation"),)

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    person_id: str = Field(index=True)
    confirmed_at: datetime = Field(default_factory=utcnow)
    via: str = Field(description="link | chat | card | admin")
    note: str | None = Field(default=None, sa_column=Column(Text))
    recorded_by: str | None = None  # the admin, when via == "admin"


class Outbox(TableBase, table=True):
    """A message to send, written before it is sent. Claimed with a lease by one worker."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_outbox_dedupe"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(description="occurrence/stage/channel/part: firing twice sends once")
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id", index=True)
    stage: str = Field(description="notice:3d | due | followup:N | escalation:N | report | test")
    channel_id: str = Field(index=True)
    platform: str
    robot: str = Field(index=True, description="rate-limit key: a hash of the webhook")
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    summary: str = Field(default="", description="short Chinese description for admins")
    status: str = Field(default="pending", description="pending | sent | dead | dry_run")
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    error_kind: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # Set (UTC) just before the platform is called, cleared when the result is stored: a row that is
    # still pending with this set was in flight at a crash, so its re-send is marked "可能重复".
    # Last, where migration 0003 added it: an empty database is made from these models in one step,
    # and must come out as the migrations make it (tests/test_migrations.py compares the two).
    sending_since: datetime | None = None


class DeliveryAttempt(TableBase, table=True):
    """Every attempt leaves a row an admin can see."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", index=True)
    attempt: int
    at: datetime = Field(default_factory=utcnow)
    ok: bool
    error_kind: str | None = None
    detail: str | None = Field(default=None, sa_column=Column(Text))
    http_status: int | None = None
    # This send repeats one that was in flight when its sender died: the group may see it twice.
    possible_duplicate: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class RobotLane(TableBase, table=True):
    """One robot's lane: held by one instance at a time, with the robot's recent send times.

    An instance claims the lane (owner, lease_until) with an UPDATE that succeeds once, sends the
    robot's messages in order and lets go when they are done. ``recent`` (epoch seconds, UTC) are
    the robot's last sends within its rate window, so the window holds across owners and restarts.
    """

    __tablename__ = "robot_lane"

    robot: str = Field(primary_key=True, description="Outbox.robot: a hash of the webhook")
    owner: str | None = Field(default=None, index=True, description="InstanceHeartbeat.id")
    lease_until: datetime | None = None
    recent: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class InstanceHeartbeat(TableBase, table=True):
    """A running dispatcher. A lane whose owner's ``beat_at`` is stale is free to take over."""

    __tablename__ = "instance_heartbeat"

    id: str = Field(primary_key=True, description="host:pid:random, new at every start")
    host: str
    pid: int
    started_at: datetime = Field(default_factory=utcnow)
    beat_at: datetime = Field(default_factory=utcnow, index=True)
    # The serving instance's REMINDBOT_BASE_URL (None for a command's one-off send): ``remindbot link``
    # in another terminal, whose environment may lack the service's PORT, builds links on it (0007).
    base_url: str | None = None


class Nudge(TableBase, table=True):
    """A follow-up or escalation sent about one person's missing confirmation."""

    __tablename__ = "nudge"

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrence.id", index=True)
    person_id: str = Field(index=True)
    kind: str = Field(description="followup | escalation")
    number: int
    at: datetime = Field(default_factory=utcnow)


class Instance(TableBase, table=True):
    """One row: a random value made when the database is created.

    Confirmation links are signed with the secret key and this value, so links issued for an
    earlier database (deleted or reset while the secret key was kept) can never confirm an
    occurrence that happens to get the same id in the new one.
    """

    __tablename__ = "instance"

    # Always written as 1. No default in the model: the column is a serial on PostgreSQL, as
    # migration 0001 made it (an empty database is made from these models, and must come out the same).
    id: int = Field(primary_key=True)
    nonce: str


class DueStage(TableBase, table=True):
    """One stage of one reminder that is due: the record the scheduler fires from.

    The reconciliation pass (``bot.scheduling.reconcile``) plans each reminder's upcoming stages here (the
    occurrence's ``due`` and each ``notice:<span>``), fires those whose ``fire_at`` has come and
    records how it went. A stage that failed stays open and is tried again on a later pass; one
    that could not be sent within its reminder's grace is recorded as ``missed``.
    """

    __tablename__ = "due_stage"
    __table_args__ = (
        UniqueConstraint("reminder_id", "stage", "due_at", name="uq_due_stage"),
        Index("ix_due_stage_open", "status", "fire_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reminder_id: str = Field(index=True)
    stage: str = Field(description="due | notice:<span>")
    due_at: datetime = Field(description="UTC: the occurrence's due time")
    fire_at: datetime = Field(description="UTC: when this stage should go out")
    status: str = Field(default="planned", description="planned | failed | fired | late | missed | cancelled | skipped")
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    next_try_at: datetime | None = None  # UTC; after a failure, not before this
    claimed_by: str | None = None  # the instance firing it now
    claimed_until: datetime | None = None  # UTC; the claim lapses then (a crashed instance)
    fired_at: datetime | None = None  # UTC; when its messages were queued (fired or late)
    settled_at: datetime | None = None  # UTC; when it was fired, judged missed or cancelled
    lateness_seconds: float | None = None  # settled_at - fire_at
    grace_seconds: int | None = None  # the reminder's grace when it was settled
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id", index=True)
    admin_told_at: datetime | None = None  # UTC; missed stages: when the admin channel was told
    created_at: datetime = Field(default_factory=utcnow)


class SchedulerMark(TableBase, table=True):
    """Row 1: when the last reconciliation pass completed (any instance). Row 2: the first real start.

    After downtime the next pass looks back from row 1 (at most ``bot.scheduling.reconcile.MAX_LOOK_BACK``),
    so what fell due while nothing ran is fired late or recorded as missed, never forgotten; never before
    row 2, so nothing due before the service first ran is sent (``serve --dry-run`` writes neither row).
    """

    __tablename__ = "scheduler_mark"

    id: int = Field(primary_key=True)  # always written as 1; no default, as Instance.id
    last_pass_at: datetime


class InboundSeen(TableBase, table=True):
    """An inbound chat message or button press already handled: a replay records nothing twice.

    Rows older than ``bot.confirming.inbound.SEEN_RETENTION`` are deleted as new ones arrive (platforms
    retry within minutes; a week is far beyond any retry).
    """

    __tablename__ = "inbound_seen"
    __table_args__ = (UniqueConstraint("platform", "app_id", "message_id", name="uq_inbound_seen"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    app_id: str
    message_id: str  # cut to 200 characters where written (bot.confirming.inbound); no length in the column (0004)
    seen_at: datetime = Field(default_factory=utcnow, index=True)


class AdminAction(TableBase, table=True):
    """What an admin did, by hand: who, when, what, why. Shown on the occurrence's board.

    ``action``: confirm (代为登记) | excuse | followup_now | resend | send_test. ``detail`` is the
    outcome in Chinese (e.g. when a deferred follow-up will go); ``reason`` is the admin's why.
    """

    __tablename__ = "admin_action"

    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int | None = Field(default=None, foreign_key="occurrence.id", index=True)
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id", index=True)
    person_id: str | None = None
    channel_id: str | None = None
    admin: str
    action: str
    reason: str | None = Field(default=None, sa_column=Column(Text))
    detail: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = Field(default_factory=utcnow, index=True)
