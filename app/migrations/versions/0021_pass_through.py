"""passthrough: the relay's pass-through mode, one row; queued rows say since when they are due

Pass-through (app.relay.passthrough) is decided from the oldest message waiting to be sent. A queued
row now carries ``next_attempt_at`` = when it became due (creation, its send_at, a redrive), so that
age is one look-up in ix_outbound_due (state, next_attempt_at); the rows already queued get theirs
here.

Revision ID: 0021_pass_through
Revises: 0017_composed_domains
Create Date: 2026-12-12 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0021_pass_through'
down_revision = '0017_composed_domains'  # outboundmessage as it is now
branch_labels = None
depends_on = None

_outbound = sa.table(
    'outboundmessage',
    sa.column('state', sa.String),
    sa.column('next_attempt_at', app.models.UTCDateTime(timezone=True)),
    sa.column('send_at', app.models.UTCDateTime(timezone=True)),
    sa.column('created_at', app.models.UTCDateTime(timezone=True)),
)


def upgrade() -> None:
    table = op.create_table(
        'passthrough',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=8), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('changed_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('oldest_wait_s', sa.Integer(), nullable=True),
        sa.Column('threshold_s', sa.Integer(), nullable=False),
        sa.Column('evaluated_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('switched_on', sa.Integer(), nullable=False),
        sa.Column('passed', sa.Integer(), nullable=False),
        sa.Column('mode_by', sa.String(length=320), nullable=False),
        sa.Column('mode_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.bulk_insert(
        table,
        [{'id': 1, 'mode': 'auto', 'active': False, 'threshold_s': 0, 'switched_on': 0, 'passed': 0, 'mode_by': ''}],
    )
    o = _outbound.c
    op.execute(
        _outbound.update()
        .where(o.state == 'queued', o.next_attempt_at.is_(None))
        .values(next_attempt_at=sa.func.coalesce(o.send_at, o.created_at))
    )


def downgrade() -> None:
    op.drop_table('passthrough')
