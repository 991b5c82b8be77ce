"""dkimkey: sending domains' DKIM keys, in the database for every worker

Revision ID: 0018_dkim_keys
Revises: 0017_composed_domains
Create Date: 2026-12-09 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0018_dkim_keys'
down_revision = '0017_composed_domains'  # sendingdomain, whose keys these are
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dkimkey',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('domain', sa.String(length=253), nullable=False),
        sa.Column('selector', sa.String(length=63), nullable=False),
        sa.Column('private_pem', sa.Text(), nullable=False),
        sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('domain', 'selector'),
    )
    op.create_index('ix_dkimkey_domain', 'dkimkey', ['domain'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dkimkey_domain', table_name='dkimkey')
    op.drop_table('dkimkey')
