"""outboundbody, outboundmessage.body_id/from_addr and sendingdomain

A message an application composes (the full send API, SMTP submission) is stored once as bytes
for all its recipients (outboundbody, zlib) and each outbox row names it by body_id, with the
From the application used. Sending domains are the domains applications may send From, with
their DNS records' verdicts.

Revision ID: 0017_composed_domains
Revises: 0016_scopes_quotas
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0017_composed_domains'
down_revision = '0016_scopes_quotas'  # outboundmessage as it is now
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outboundbody',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('raw_zlib', sa.LargeBinary(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('from_addr', sa.String(length=320), nullable=False, server_default=''))
        batch_op.create_index('ix_outboundmessage_body_id', ['body_id'], unique=False)
    op.create_table(
        'sendingdomain',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('domain', sa.String(length=253), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=True),
        sa.Column('return_path_host', sa.String(length=253), nullable=False, server_default=''),
        sa.Column('checks', sa.Text(), nullable=False, server_default='{}'),
        sa.Column('verified_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('checked_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('domain'),
    )
    op.create_index('ix_sendingdomain_team_id', 'sendingdomain', ['team_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_sendingdomain_team_id', table_name='sendingdomain')
    op.drop_table('sendingdomain')
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.drop_index('ix_outboundmessage_body_id')
        batch_op.drop_column('from_addr')
        batch_op.drop_column('body_id')
    op.drop_table('outboundbody')
