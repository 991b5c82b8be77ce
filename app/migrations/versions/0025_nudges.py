"""nudges, mentions and blockers: teamsettings.nudge_hours and nudge_cutoff, member.next_nudge_at,
entry.resolved_at and resolved_by, the notice table

A team that turns nudges on (nudge_hours > 0) sends a second reminder that many hours before the
digest covering the day, to members who have not replied, never at or after nudge_cutoff (local).
The reminder of a day sets member.next_nudge_at; the scheduler's tick sends it when due.
A blocker stays open until resolved (entry.resolved_at, resolved_by: the member). A notice is a
member to tell about an entry (an @mention, or a blocker for the team's admins), batched per hour.

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
depends_on = '0007'  # member and entry as they are now


def upgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nudge_hours', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('nudge_cutoff', sa.String(length=5), nullable=False, server_default='21:00'))
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_nudge_at', app.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_member_next_nudge_at'), ['next_nudge_at'], unique=False)
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_at', app.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.Integer(), nullable=True))
    op.create_table(
        'notice',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('entry_id', sa.Integer(), nullable=False),
        sa.Column('hour', app.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['member.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_notice_waiting', 'notice', ['outcome', 'hour'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_notice_waiting', table_name='notice')
    op.drop_table('notice')
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('resolved_at')
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_next_nudge_at'))
        batch_op.drop_column('next_nudge_at')
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.drop_column('nudge_cutoff')
        batch_op.drop_column('nudge_hours')
