"""inboundmessage's state index also orders by id: (state, id)

Processing claims its messages by id among the received ones (``id IN (...) AND state =
'received'``) and takes along the backlog's next never-tried messages (``state = 'received' AND
id > ... ORDER BY id LIMIT n``). With only ``state`` indexed, PostgreSQL read every received row
for each claim, and sorted them for the second: with a backlog of 7,000 messages and the
planner's statistics behind (as they are while a backlog builds up), one claim took 9.8 ms and
4,253 buffers. On ``(state, id)`` both are ranges of one index, read in order. SQLite's index
on state already ends with the rowid, so there the new index reads the same.

Revision ID: 0034_inbound_state_id
Revises: 0033_member_due
Create Date: 2026-12-05 14:00:00
"""

from alembic import op

revision = '0034_inbound_state_id'
down_revision = '0033_member_due'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_inboundmessage_state_id', 'inboundmessage', ['state', 'id'])
    op.drop_index('ix_inboundmessage_state', table_name='inboundmessage')


def downgrade() -> None:
    op.create_index('ix_inboundmessage_state', 'inboundmessage', ['state'], unique=False)
    op.drop_index('ix_inboundmessage_state_id', table_name='inboundmessage')
