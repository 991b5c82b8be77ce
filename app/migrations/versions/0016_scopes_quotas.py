"""apitoken.scopes, teamrelay.quota_hour/quota_day and the index the team quotas count with

A token now carries the scopes it may use (send, read, manage); every existing token gets all
three, so nothing that works today stops working. A team's relay options gain its own quotas of
application mail per hour and per day (NULL: the TEAM_QUOTA_* settings), counted from the outbox
through a partial index on the API's rows.

Revision ID: 0016_scopes_quotas
Revises: 0014_team_tracking
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0016_scopes_quotas'
down_revision = '0014_team_tracking'  # teamrelay as it is now
branch_labels = None
depends_on = None

_API = sa.text("kind = 'api'")


def upgrade() -> None:
    with op.batch_alter_table('apitoken', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('scopes', sa.String(length=64), nullable=False, server_default='send read manage')
        )
    with op.batch_alter_table('teamrelay', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quota_hour', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('quota_day', sa.Integer(), nullable=True))
    op.create_index(
        'ix_outbound_api', 'outboundmessage', ['team_id', 'created_at'],
        postgresql_where=_API, sqlite_where=_API,
    )


def downgrade() -> None:
    op.drop_index('ix_outbound_api', table_name='outboundmessage')
    with op.batch_alter_table('teamrelay', schema=None) as batch_op:
        batch_op.drop_column('quota_day')
        batch_op.drop_column('quota_hour')
    with op.batch_alter_table('apitoken', schema=None) as batch_op:
        batch_op.drop_column('scopes')
