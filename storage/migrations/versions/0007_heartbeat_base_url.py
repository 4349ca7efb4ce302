"""heartbeat base URL: the running service's public base URL, for commands run elsewhere

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instance_heartbeat', schema=None) as batch_op:
        batch_op.add_column(sa.Column('base_url', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('instance_heartbeat', schema=None) as batch_op:
        batch_op.drop_column('base_url')
