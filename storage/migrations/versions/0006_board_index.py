"""board index: expectations by occurrence, unit and id

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A board page reads its rows in the board's order (unit, then as fired) off this index instead
    # of sorting the occurrence's rows; lookups by occurrence use it (or uq_expectation) as well.
    with op.batch_alter_table('expectation', schema=None) as batch_op:
        batch_op.create_index('ix_expectation_board', ['occurrence_id', 'unit_id', 'id'], unique=False)
        batch_op.drop_index('ix_expectation_occurrence_id')


def downgrade() -> None:
    with op.batch_alter_table('expectation', schema=None) as batch_op:
        batch_op.create_index('ix_expectation_occurrence_id', ['occurrence_id'], unique=False)
        batch_op.drop_index('ix_expectation_board')
