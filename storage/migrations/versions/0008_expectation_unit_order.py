"""expectation unit order: the unit's place in the schedules, and the board index on it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Units are shown in the order the admins wrote them (YAML ``units:`` list, spreadsheet rows), as fired:
    # each expectation carries its unit's place. Rows fired before keep NULL and their old order (unit id,
    # then as fired): the board index leads with the place, then the unit id, then the id.
    with op.batch_alter_table('expectation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_order', sa.Integer(), nullable=True))
        batch_op.drop_index('ix_expectation_board')
        batch_op.create_index('ix_expectation_board', ['occurrence_id', 'unit_order', 'unit_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('expectation', schema=None) as batch_op:
        batch_op.drop_index('ix_expectation_board')
        batch_op.create_index('ix_expectation_board', ['occurrence_id', 'unit_id', 'id'], unique=False)
        batch_op.drop_column('unit_order')
