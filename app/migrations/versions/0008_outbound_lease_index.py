"""outboundmessage: drop the lease_until index (the sweeper's lookups go by state first)

The sweeper looks for ``sending`` rows past their lease and ``queued`` rows whose
lease ran out; ``ix_outbound_due`` (state, next_attempt_at) finds those few rows by
state. Every outbox insert and every state change (claim, outcome) wrote an entry
into the lease index as well: one index fewer for each of them.

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-23 04:35:00
"""

from alembic import op

revision = '0008'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.drop_index('ix_outboundmessage_lease_until')


def downgrade() -> None:
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.create_index('ix_outboundmessage_lease_until', ['lease_until'], unique=False)
