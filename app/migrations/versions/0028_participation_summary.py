"""weekly participation summary: teamsettings.participation_summary

A team that turns it on sends each of its admins, with their first digest of each week, an email
summarising the team's participation over the 7 days before (app/checkins/summary.py). Off by
default, so every existing team stays as it was.

Revision ID: 0028_participation_summary
Revises: 0014_team_tracking
Create Date: 2026-12-04 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0028_participation_summary'
down_revision = '0014_team_tracking'  # teamsettings as it is now; a branch of its own, as issue 16's others
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('participation_summary', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.drop_column('participation_summary')
