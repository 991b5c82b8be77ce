"""suppression.expires_at and the event that caused an entry

A soft-bounce suppression lasts SOFT_BOUNCE_SUPPRESS_DAYS: its ``expires_at`` says until when (null:
for good, every entry before this migration). ``event_kind``, ``event_id`` and ``message_id`` record
what caused an entry: the provider event's id (or '' for a refusal at send time or an entry added
by hand), its kind and the message it was about.

Revision ID: 0015_suppression_expiry
Revises: 0011_user_limits
Create Date: 2026-12-04 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0015_suppression_expiry'
down_revision = '0011_user_limits'  # suppression.team_id
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', app.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('event_kind', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('event_id', sa.String(length=255), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('message_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.drop_column('message_id')
        batch_op.drop_column('event_id')
        batch_op.drop_column('event_kind')
        batch_op.drop_column('expires_at')
