"""webhookendpoint, webhookdelivery and webhookattempt: signed outgoing webhooks

A team's endpoints (URL, secret, the event kinds they want); the deliveries owed to them, written
in the transaction of each event's cause and POSTed by jobs; every attempt's status, latency and
response excerpt. New tables only.

Revision ID: 0020_webhooks
Revises: 0017_composed_domains
Create Date: 2026-12-09 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0020_webhooks'
down_revision = '0017_composed_domains'
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_table(
        'webhookendpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('kinds', sa.String(length=500), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False, server_default=''),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_webhookendpoint_team_id', 'webhookendpoint', ['team_id'], unique=False)
    op.create_table(
        'webhookdelivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('lease_until', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('retry_until', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_webhookdelivery_endpoint_id', 'webhookdelivery', ['endpoint_id'], unique=False)
    op.create_index('ix_webhookdelivery_team_id', 'webhookdelivery', ['team_id'], unique=False)
    op.create_index('ix_webhookdelivery_created_at', 'webhookdelivery', ['created_at'], unique=False)
    op.create_index(
        'ix_webhook_due',
        'webhookdelivery',
        ['next_attempt_at'],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_table(
        'webhookattempt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.Column('response', sa.Text(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_webhookattempt_delivery_id', 'webhookattempt', ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhookattempt_delivery_id', table_name='webhookattempt')
    op.drop_table('webhookattempt')
    op.drop_index('ix_webhook_due', table_name='webhookdelivery')
    op.drop_index('ix_webhookdelivery_created_at', table_name='webhookdelivery')
    op.drop_index('ix_webhookdelivery_team_id', table_name='webhookdelivery')
    op.drop_index('ix_webhookdelivery_endpoint_id', table_name='webhookdelivery')
    op.drop_table('webhookdelivery')
    op.drop_index('ix_webhookendpoint_team_id', table_name='webhookendpoint')
    op.drop_table('webhookendpoint')
