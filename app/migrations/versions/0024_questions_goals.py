"""teamsettings.questions; entry.question, entry.closed_on and entry.closed_as

A team may ask one to five questions (teamsettings.questions, one a line; '' keeps the one
question every team had, "What did you get done today?"). An entry records which question it
answers (entry.question, from 0; every existing entry answers the first), and a goal whether and
how it was closed (entry.closed_on, entry.closed_as: done | carried; open goals have neither).

Revision ID: 0024_questions_goals
Revises: 0014_team_tracking
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0024_questions_goals'
down_revision = '0014_team_tracking'  # teamsettings
branch_labels = None
depends_on = None  # entry as it is now: 0006, which 0014_team_tracking follows


def upgrade() -> None:
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('questions', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('question', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('closed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('closed_as', sa.String(length=16), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('entry', schema=None) as batch_op:
        batch_op.drop_column('closed_as')
        batch_op.drop_column('closed_on')
        batch_op.drop_column('question')
    with op.batch_alter_table('teamsettings', schema=None) as batch_op:
        batch_op.drop_column('questions')
