"""occurrence fired_by: who fired an occurrence's day message by hand (``remindbot fire``)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An occurrence fired ahead of its day skips its notices and its day: the skip lines and the upcoming
    # lists name who fired it (when: fired_at). Rows fired before, or by the service itself, keep NULL.
    with op.batch_alter_table('occurrence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fired_by', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('occurrence', schema=None) as batch_op:
        batch_op.drop_column('fired_by')
