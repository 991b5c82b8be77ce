"""chatdestination: the chat channels (incoming webhooks) a team's digest is posted to

Revision ID: 0026_chat_destinations
Revises: 0001
Create Date: 2026-12-04 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0026_chat_destinations'
down_revision = '0001'  # team
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'chatdestination',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('service', sa.String(length=16), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=False),
        sa.Column('blockers', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_chatdestination_team_id'), 'chatdestination', ['team_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_chatdestination_team_id'), table_name='chatdestination')
    op.drop_table('chatdestination')
