"""comment: replies to a team's digest, on an entry, a member or the day

Revision ID: 0027_comments
Revises: 0014_team_tracking
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0027_comments'
down_revision = '0014_team_tracking'  # a branch of its own, as the other check-in features of issue 16
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'comment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('entry_id', sa.Integer(), nullable=True),
        sa.Column('member_id', sa.Integer(), nullable=True),
        sa.Column('author_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('inbound_id', sa.Integer(), nullable=True),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['author_id'], ['member.id']),
        sa.ForeignKeyConstraint(['member_id'], ['member.id']),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.create_index('ix_comment_team_day', ['team_id', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_comment_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comment_inbound_id'), ['inbound_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('comment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_inbound_id'))
        batch_op.drop_index(batch_op.f('ix_comment_entry_id'))
        batch_op.drop_index('ix_comment_team_day')
    op.drop_table('comment')
