"""member.next_reminder_at, next_digest_at and next_nudge_at move to a narrow table, memberdue

The scheduler moves a member's next time every time it fires, and an UPDATE that changes an
indexed column is never a HOT update: it writes an entry into every index of the table. On
``member`` those were five (the key, (team_id, email), email, next_reminder_at, next_digest_at),
four of them at places spread over the whole index: bench/scheduler.py measured a tick of 1M
members on a stock cluster writing 4,050 MB of WAL, 383,098 full-page images of them (2,209 MB and
135,380 with this table; 2026-12-05). memberdue has a row per member and kind (reminder, digest,
nudge) and two indexes, its key and (kind, at) where at is set: a tick writes one entry at a
random place instead of four.

Revision ID: 0033_member_due
Revises: 0032_fewer_outbox_writes
Create Date: 2026-12-05 11:30:00
"""

import sqlalchemy as sa
from alembic import op

import app.models

revision = '0033_member_due'
down_revision = '0032_fewer_outbox_writes'  # member as it is now (0007, 0025 and 0031 come before it)
branch_labels = None
depends_on = None

_DUE = sa.text("at IS NOT NULL")
_NUDGE = sa.text("next_nudge_at IS NOT NULL")
_COLUMNS = (("reminder", "next_reminder_at"), ("digest", "next_digest_at"), ("nudge", "next_nudge_at"))


def upgrade() -> None:
    op.create_table(
        'memberdue',
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('at', app.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['member.id']),
        sa.PrimaryKeyConstraint('member_id', 'kind'),
    )
    for kind, column in _COLUMNS:
        op.execute(
            f"INSERT INTO memberdue (member_id, kind, at) "
            f"SELECT id, '{kind}', {column} FROM member WHERE {column} IS NOT NULL"
        )
    op.create_index('ix_memberdue_kind_at', 'memberdue', ['kind', 'at'], postgresql_where=_DUE, sqlite_where=_DUE)
    # ALTER TABLE ... DROP COLUMN, also on SQLite (3.35+): rebuilding member there would delete its
    # rows under the foreign keys now pointing at them
    for _, column in _COLUMNS:
        op.drop_index(f'ix_member_{column}', table_name='member')
        op.drop_column('member', column)


def downgrade() -> None:
    for kind, column in _COLUMNS:
        op.add_column('member', sa.Column(column, app.models.UTCDateTime(timezone=True), nullable=True))
        op.execute(
            f"UPDATE member SET {column} = (SELECT at FROM memberdue "
            f"WHERE memberdue.member_id = member.id AND memberdue.kind = '{kind}')"
        )
    op.create_index('ix_member_next_reminder_at', 'member', ['next_reminder_at'], unique=False)
    op.create_index('ix_member_next_digest_at', 'member', ['next_digest_at'], unique=False)
    op.create_index('ix_member_next_nudge_at', 'member', ['next_nudge_at'], postgresql_where=_NUDGE, sqlite_where=_NUDGE)
    op.drop_index('ix_memberdue_kind_at', table_name='memberdue')
    op.drop_table('memberdue')
