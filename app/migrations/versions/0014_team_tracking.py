"""one tracking switch: teamsettings.tracking; teamrelay.track_digests and track_reminders go

Tracking used to have two switches: the team admin's "track opens and clicks" (teamsettings.tracking,
saved and never read) and the operator's ``donebox team-relay --track-*`` (teamrelay.track_*, read
by the relay, digests on by default). The team's setting is now the one the mail obeys. A team keeps
tracking only where both said yes: its admin ticked the box and the relay row (if any) had tracking
on for some kind. Everyone else is not tracked, whatever the old relay default said.

Revision ID: 0014_team_tracking
Revises: 0006
Create Date: 2026-12-06 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0014_team_tracking'
down_revision = '0006'  # teamsettings
branch_labels = None
depends_on = '0004'  # teamrelay

_settings = sa.table('teamsettings', sa.column('team_id', sa.Integer), sa.column('tracking', sa.Boolean))
_relay = sa.table(
    'teamrelay',
    sa.column('team_id', sa.Integer),
    sa.column('track_digests', sa.Boolean),
    sa.column('track_reminders', sa.Boolean),
)


def upgrade() -> None:
    both_off = sa.select(_relay.c.team_id).where(
        _relay.c.track_digests.is_(sa.false()), _relay.c.track_reminders.is_(sa.false())
    )
    op.execute(_settings.update().where(_settings.c.team_id.in_(both_off)).values(tracking=False))
    with op.batch_alter_table('teamrelay', schema=None) as batch_op:
        batch_op.drop_column('track_reminders')
        batch_op.drop_column('track_digests')


def downgrade() -> None:
    with op.batch_alter_table('teamrelay', schema=None) as batch_op:
        batch_op.add_column(sa.Column('track_digests', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('track_reminders', sa.Boolean(), nullable=False, server_default=sa.false()))
    tracked = sa.select(_settings.c.team_id).where(_settings.c.tracking.is_(sa.true()))
    op.execute(
        _relay.update().where(_relay.c.team_id.in_(tracked)).values(track_digests=True, track_reminders=True)
    )
