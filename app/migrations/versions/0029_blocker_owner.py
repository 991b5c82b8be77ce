"""blocker owner: teamsettings.blocker_owner_id, the member a team's blockers notify instead of its admins

A team may name one of its members the owner of its blockers: their notices go to that member, who
may resolve them as an admin does. Not a foreign key: the owner may leave the team, and then the
admins hear of blockers again (app.checkins.notices reads it with the member's membership).

Revision ID: 0029_blocker_owner
Revises: 0014_team_tracking
Create Date: 2026-12-04 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0029_blocker_owner'
down_revision = '0014_team_tracking'  # teamsettings, a branch of its own as the other check-in features of issue 16
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocker_owner_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.drop_column('blocker_owner_id')
