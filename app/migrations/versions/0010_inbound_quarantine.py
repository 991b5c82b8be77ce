"""inboundmessage: attempts and lease_until, for claims, retries and quarantine

Processing claims a message (state ``processing``, ``attempts`` + 1, a lease), parses it
outside any transaction and writes the outcome only while the claim is still its own. A
message whose processing did not finish ``INBOUND_MAX_ATTEMPTS`` times is ``quarantined``
instead of being enqueued again. The state column is text: the two new states need no
change to it.

Revision ID: 0010_inbound_quarantine
Revises: 0003
Create Date: 2026-12-04 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0010_inbound_quarantine'
down_revision = '0003'  # the head of the inbound tables' branch (features add their own branches)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('lease_until', app.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE inboundmessage SET state = 'received' WHERE state IN ('processing', 'quarantined')")
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('attempts')
