"""member.next_nudge_at and outboundmessage.body_id indexed only where set

Most members never have a nudge due and most outbox rows have no composed body, yet every
schedule advance (an UPDATE that changes an indexed column, so never a HOT update) and every
reminder or digest row wrote a NULL entry into these indexes. Partial indexes (``IS NOT
NULL``) keep the look-ups (``next_nudge_at <= now``, ``body_id = ...``: both imply NOT NULL)
and skip the write.

Revision ID: 0031_partial_null_indexes
Revises: 0025_nudges, 0017_composed_domains
Create Date: 2026-12-05 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0031_partial_null_indexes'
down_revision = ('0025_nudges', '0017_composed_domains')  # member and outboundmessage as they are now
branch_labels = None
depends_on = None

_NUDGE = sa.text("next_nudge_at IS NOT NULL")
_BODY = sa.text("body_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_member_next_nudge_at', table_name='member')
    op.create_index('ix_member_next_nudge_at', 'member', ['next_nudge_at'], postgresql_where=_NUDGE, sqlite_where=_NUDGE)
    op.drop_index('ix_outboundmessage_body_id', table_name='outboundmessage')
    op.create_index(
        'ix_outboundmessage_body_id', 'outboundmessage', ['body_id'], postgresql_where=_BODY, sqlite_where=_BODY
    )


def downgrade() -> None:
    op.drop_index('ix_outboundmessage_body_id', table_name='outboundmessage')
    op.create_index('ix_outboundmessage_body_id', 'outboundmessage', ['body_id'], unique=False)
    op.drop_index('ix_member_next_nudge_at', table_name='member')
    op.create_index('ix_member_next_nudge_at', 'member', ['next_nudge_at'], unique=False)
