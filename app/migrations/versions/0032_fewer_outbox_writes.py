"""Fewer writes per outbox row: no foreign keys on outboundmessage.team_id and member_id, and the
provider ids indexed only where set

Every reminder, digest and API message is one outboundmessage row and one messageevent row, and
the relay updates the row twice (claim, outcome; each changes ``state``, so each writes an entry
into every index of the row) and appends an event each time:

- outboundmessage.team_id and member_id: indexed columns, no longer foreign keys. The rows are
  made only for a team and a member read in the same transaction, and teams and members are
  never deleted; each check was a lookup and a ``FOR KEY SHARE`` lock on the team and on the
  member per row, and two schedulers locking the same team row made a multixact of it.
- ix_outboundmessage_provider_id: partial (``provider_id <> ''``). The id arrives with the
  attempt that sent the message; the insert and the claim wrote an entry for '' every time.
- messageevent.provider_event_id: a unique index where NOT NULL instead of a unique constraint.
  Only a provider's events carry one; every state and tracking event wrote a NULL entry.

Revision ID: 0032_fewer_outbox_writes
Revises: 0031_partial_null_indexes, 0011_user_limits, 0021_pass_through
Create Date: 2026-12-05 04:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0032_fewer_outbox_writes'
# the branches that made outboundmessage's and messageevent's indexes and constraints as they are now
down_revision = ('0031_partial_null_indexes', '0011_user_limits', '0021_pass_through')
branch_labels = None
depends_on = None

_PROVIDER_ID = sa.text("provider_id <> ''")
_PROVIDER_EVENT = sa.text("provider_event_id IS NOT NULL")
_SQLITE_NAMES = {
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
}


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():  # the constraints have no names there: name them to drop them
        with op.batch_alter_table('outboundmessage', naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('fk_outboundmessage_team_id_team', type_='foreignkey')
            batch_op.drop_constraint('fk_outboundmessage_member_id_member', type_='foreignkey')
        with op.batch_alter_table('messageevent', naming_convention=_SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('uq_messageevent_provider_event_id', type_='unique')
    else:
        op.drop_constraint('outboundmessage_team_id_fkey', 'outboundmessage', type_='foreignkey')
        op.drop_constraint('outboundmessage_member_id_fkey', 'outboundmessage', type_='foreignkey')
        op.drop_constraint('messageevent_provider_event_id_key', 'messageevent', type_='unique')
    op.drop_index('ix_outboundmessage_provider_id', table_name='outboundmessage')
    op.create_index(
        'ix_outboundmessage_provider_id',
        'outboundmessage',
        ['provider_id'],
        postgresql_where=_PROVIDER_ID,
        sqlite_where=_PROVIDER_ID,
    )
    op.create_index(
        'ix_messageevent_provider_event_id',
        'messageevent',
        ['provider_event_id'],
        unique=True,
        postgresql_where=_PROVIDER_EVENT,
        sqlite_where=_PROVIDER_EVENT,
    )


def downgrade() -> None:
    op.drop_index('ix_messageevent_provider_event_id', table_name='messageevent')
    op.drop_index('ix_outboundmessage_provider_id', table_name='outboundmessage')
    op.create_index('ix_outboundmessage_provider_id', 'outboundmessage', ['provider_id'], unique=False)
    # SQLite: the names upgrade() gives the unnamed ones, so that upgrading again finds them
    sqlite = _sqlite()
    with op.batch_alter_table('messageevent') as batch_op:
        name = 'uq_messageevent_provider_event_id' if sqlite else 'messageevent_provider_event_id_key'
        batch_op.create_unique_constraint(name, ['provider_event_id'])
    with op.batch_alter_table('outboundmessage') as batch_op:
        for column, table in (('team_id', 'team'), ('member_id', 'member')):
            name = f'fk_outboundmessage_{column}_{table}' if sqlite else f'outboundmessage_{column}_fkey'
            batch_op.create_foreign_key(name, table, [column], ['id'])
