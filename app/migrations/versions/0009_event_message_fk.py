"""messageevent.message_id: an indexed column, no longer a foreign key

Events are append-only and written only by app.outbox, app.events and the
tracking endpoints, each for a message it has just read or written in the same
transaction; outbound messages are never deleted (retention empties their
content, the rows stay). The foreign-key check cost a lookup and a row lock per
event: about a tenth of the database's work when the scheduler creates a million
messages (each with its creation event), and a lookup on every claim and outcome.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 04:56:00
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # the constraint has no name there: name it to drop it
        with op.batch_alter_table('messageevent', naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('fk_messageevent_message_id_outboundmessage', type_='foreignkey')
    else:
        op.drop_constraint('messageevent_message_id_fkey', 'messageevent', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('messageevent', schema=None) as batch_op:
        batch_op.create_foreign_key('messageevent_message_id_fkey', 'outboundmessage', ['message_id'], ['id'])
