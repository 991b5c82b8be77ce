"""reply cuts: where the extractor cut each reply and how sure it was; replycase, the cuts people moved

inboundmessage keeps the reply's lines as the extractor read them (a JSON list), whether they are the
HTML part's, the first line not kept (``cut_at``), the rule and the confidence of that cut; rows
stored before this migration have no lines (their cut cannot be moved) and no confidence. replycase
keeps each cut a person moved (input, the text they said the reply holds, who and when), which
``donebox replies export-cases`` writes masked in the shared corpus's format.

Revision ID: 0030_reply_cuts
Revises: 0012_inbound_copies
Create Date: 2026-12-05 01:30:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0030_reply_cuts'
down_revision = '0012_inbound_copies'  # inboundmessage as it is now; a branch of its own
branch_labels = None
depends_on = '0006'  # appuser, who moved a cut


def upgrade() -> None:
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_lines', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('reply_html', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('cut_at', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cut_rule', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('cut_confidence', sa.String(length=8), nullable=False, server_default=''))
    op.create_table(
        'replycase',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('inbound_id', sa.Integer(), nullable=False),
        sa.Column('team_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('by_user_id', sa.Integer(), nullable=False),
        sa.Column('by_role', sa.String(length=16), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('input', sa.Text(), nullable=False),
        sa.Column('from_name', sa.String(length=320), nullable=False),
        sa.Column('lines', sa.Text(), nullable=False),
        sa.Column('cut_before', sa.Integer(), nullable=True),
        sa.Column('rule_before', sa.String(length=64), nullable=False),
        sa.Column('confidence_before', sa.String(length=8), nullable=False),
        sa.Column('cut_at', sa.Integer(), nullable=False),
        sa.Column('expected', sa.Text(), nullable=False),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['by_user_id'], ['appuser.id']),
        sa.ForeignKeyConstraint(['member_id'], ['member.id']),
        sa.ForeignKeyConstraint(['team_id'], ['team.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('replycase', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_replycase_inbound_id'), ['inbound_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_replycase_team_id'), ['team_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('replycase', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_replycase_team_id'))
        batch_op.drop_index(batch_op.f('ix_replycase_inbound_id'))
    op.drop_table('replycase')
    with op.batch_alter_table('inboundmessage', schema=None) as batch_op:
        batch_op.drop_column('cut_confidence')
        batch_op.drop_column('cut_rule')
        batch_op.drop_column('cut_at')
        batch_op.drop_column('reply_html')
        batch_op.drop_column('reply_lines')
