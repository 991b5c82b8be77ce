"""nudges: teamsettings.nudge_hours and nudge_cutoff, member.next_nudge_at

A team that turns nudges on (nudge_hours > 0) sends a second reminder that many hours before the
digest covering the day, to members who have not replied, never at or after nudge_cutoff (local).
The reminder of a day sets member.next_nudge_at; the scheduler's tick sends it when due.

Revision ID: 0025_nudges
Revises: 0014_team_tracking
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0025_nudges'
down_revision = '0014_team_tracking'  # teamsettings as it is now
branch_labels = None
depends_on = '0007'  # member as it is now


def upgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nudge_hours', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('nudge_cutoff', sa.String(length=5), nullable=False, server_default='21:00'))
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_nudge_at', app.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_member_next_nudge_at'), ['next_nudge_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_next_nudge_at'))
        batch_op.drop_column('next_nudge_at')
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.drop_column('nudge_cutoff')
        batch_op.drop_column('nudge_hours')
