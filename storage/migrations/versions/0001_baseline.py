"""Baseline: the schema of every database made before migrations (storage/models.py at 1171f6a).

A database created by ``SQLModel.metadata.create_all`` before migrations existed is stamped with
this revision at start (``storage.migrate.upgrade``), then upgraded like any other.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("instance",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("nonce", sa.String(), nullable=False),
    sa.PrimaryKeyConstraint("id")
    )
    op.create_table("occurrence",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("reminder_id", sa.String(), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("original_date", sa.Date(), nullable=True),
    sa.Column("title", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("provisional", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("reminder_id", "due_at", name="uq_occurrence_due")
    )
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_occurrence_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_occurrence_reminder_id"), ["reminder_id"], unique=False)

    op.create_table("confirmation",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("occurrence_id", sa.Integer(), nullable=False),
    sa.Column("person_id", sa.String(), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("via", sa.String(), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("recorded_by", sa.String(), nullable=True),
    sa.ForeignKeyConstraint(["occurrence_id"], ["occurrence.id"], ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("occurrence_id", "person_id", name="uq_confirmation")
    )
    with op.batch_alter_table("confirmation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_confirmation_occurrence_id"), ["occurrence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_confirmation_person_id"), ["person_id"], unique=False)

    op.create_table("expectation",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("occurrence_id", sa.Integer(), nullable=False),
    sa.Column("person_id", sa.String(), nullable=False),
    sa.Column("person_name", sa.String(), nullable=False),
    sa.Column("unit_id", sa.String(), nullable=True),
    sa.Column("unit_name", sa.String(), nullable=True),
    sa.Column("leader_ids", sa.JSON(), nullable=False),
    sa.Column("next_followup_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("followups", sa.Integer(), nullable=False),
    sa.Column("next_escalation_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("escalations", sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(["occurrence_id"], ["occurrence.id"], ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("occurrence_id", "person_id", name="uq_expectation")
    )
    with op.batch_alter_table("expectation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_expectation_occurrence_id"), ["occurrence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_expectation_person_id"), ["person_id"], unique=False)

    op.create_table("nudge",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("occurrence_id", sa.Integer(), nullable=False),
    sa.Column("person_id", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["occurrence_id"], ["occurrence.id"], ),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("nudge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nudge_occurrence_id"), ["occurrence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nudge_person_id"), ["person_id"], unique=False)

    op.create_table("outbox",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("dedupe_key", sa.String(), nullable=False),
    sa.Column("occurrence_id", sa.Integer(), nullable=True),
    sa.Column("stage", sa.String(), nullable=False),
    sa.Column("channel_id", sa.String(), nullable=False),
    sa.Column("platform", sa.String(), nullable=False),
    sa.Column("robot", sa.String(), nullable=False),
    sa.Column("body", sa.JSON(), nullable=False),
    sa.Column("summary", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("error_kind", sa.String(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(["occurrence_id"], ["occurrence.id"], ),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe")
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_occurrence_id"), ["occurrence_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_robot"), ["robot"], unique=False)

    op.create_table("delivery_attempt",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("outbox_id", sa.Integer(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("error_kind", sa.String(), nullable=True),
    sa.Column("detail", sa.Text(), nullable=True),
    sa.Column("http_status", sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], ),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_attempt_outbox_id"), ["outbox_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_outbox_id"))

    op.drop_table("delivery_attempt")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_robot"))
        batch_op.drop_index(batch_op.f("ix_outbox_occurrence_id"))
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_index(batch_op.f("ix_outbox_channel_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("nudge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nudge_person_id"))
        batch_op.drop_index(batch_op.f("ix_nudge_occurrence_id"))

    op.drop_table("nudge")
    with op.batch_alter_table("expectation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_expectation_person_id"))
        batch_op.drop_index(batch_op.f("ix_expectation_occurrence_id"))

    op.drop_table("expectation")
    with op.batch_alter_table("confirmation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_confirmation_person_id"))
        batch_op.drop_index(batch_op.f("ix_confirmation_occurrence_id"))

    op.drop_table("confirmation")
    with op.batch_alter_table("occurrence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_occurrence_reminder_id"))
        batch_op.drop_index(batch_op.f("ix_occurrence_due_at"))

    op.drop_table("occurrence")
    op.drop_table("instance")
