"""outboundmessage.member_id is no longer indexed

No query looks outbox rows up by member: the mail log and the API list a team's messages (by
``team_id``), bounces and replies find theirs by Message-ID or VERP token, and a member taken out
of a team keeps the mail already sent to them. Yet every insert (a million in a scheduler's tick of
a million members), every claim and every outcome wrote an entry into the index: the claim and the
outcome each change ``state``, so each writes a new entry into every index of the row.

Revision ID: 0036_outbox_member_index
Revises: 0035_outbound_content_inline
Create Date: 2026-12-07 07:20:00
"""

from alembic import op

revision = '0036_outbox_member_index'
down_revision = '0035_outbound_content_inline'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_outboundmessage_member_id', table_name='outboundmessage')


def downgrade() -> None:
    op.create_index('ix_outboundmessage_member_id', 'outboundmessage', ['member_id'], unique=False)
