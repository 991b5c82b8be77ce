"""suppression.team_id, outboundmessage.actor and the indexes of the user-mail quotas

``suppression.team_id`` records whose mail caused an entry (or whose admin added it), so one
team cannot lift another team's suppression; entries without one are instance-wide and only
an operator lifts them (existing rows become instance-wide). ``outboundmessage.actor`` names
the user whose action asked for a message; two partial indexes let the quotas count the last
hour of invitations and sign-in links per recipient and per actor without touching the rows
the scheduler and the API create.

Revision ID: 0011_user_limits
Revises: 0009
Create Date: 2026-12-04 11:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011_user_limits'
down_revision = '0009'
branch_labels = None
depends_on = None

_ASKED = sa.text("kind IN ('invite', 'signin')")
_ACTED = sa.text("actor IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_suppression_team_id', ['team_id'], unique=False)
        batch_op.create_foreign_key('fk_suppression_team_id_team', 'team', ['team_id'], ['id'])
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sa.String(length=320), nullable=True))
    op.create_index(
        'ix_outbound_asked', 'outboundmessage', ['to_addr', 'created_at'],
        postgresql_where=_ASKED, sqlite_where=_ASKED,
    )
    op.create_index(
        'ix_outbound_actor', 'outboundmessage', ['actor', 'created_at'],
        postgresql_where=_ACTED, sqlite_where=_ACTED,
    )


def downgrade() -> None:
    op.drop_index('ix_outbound_actor', table_name='outboundmessage')
    op.drop_index('ix_outbound_asked', table_name='outboundmessage')
    with op.batch_alter_table('outboundmessage', schema=None) as batch_op:
        batch_op.drop_column('actor')
    with op.batch_alter_table('suppression', schema=None) as batch_op:
        batch_op.drop_constraint('fk_suppression_team_id_team', type_='foreignkey')
        batch_op.drop_index('ix_suppression_team_id')
        batch_op.drop_column('team_id')
