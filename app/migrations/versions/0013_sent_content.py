"""outboundcontent: the bytes each message was sent as

One row per message handed to a transport (its final attempt): the MIME bytes exactly as the
transport received them, DKIM-Signature included, zlib-compressed. The message page shows them
instead of rendering the template again with today's data; retention deletes them. Messages sent
before this migration have no row, and the page says so.

Revision ID: 0013_sent_content
Revises: 0011_user_limits
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0013_sent_content'
down_revision = '0011_user_limits'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outboundcontent',
        sa.Column('message_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('raw_zlib', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('message_id'),
    )


def downgrade() -> None:
    op.drop_table('outboundcontent')
