"""inboundmessage: fingerprint, message_key and same_message_id_as, so no reused Message-ID is lost

A copy whose dedupe key is known is a retry only when its content fingerprint is the same;
otherwise it is stored as a new message linked to the first one with its Message-ID and
envelope recipient (``message_key``, indexed for that one lookup). Rows stored before this
migration have no fingerprint (a copy of them is a duplicate, as it was) and no message_key.

Revision ID: 0012_inbound_copies
Revises: 0010_inbound_quarantine
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012_inbound_copies'
down_revision = '0010_inbound_quarantine'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('message_key', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('same_message_id_as', sa.Integer(), nullable=True))
        batch_op.create_index('ix_inboundmessage_message_key', ['message_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.drop_index('ix_inboundmessage_message_key')
        batch_op.drop_column('same_message_id_as')
        batch_op.drop_column('message_key')
        batch_op.drop_column('fingerprint')
