"""users, sign-in tokens, team settings, and full-text search over entries

Search: on SQLite an external-content FTS5 table kept by triggers; on PostgreSQL a
GIN index on to_tsvector('simple', text), queried with the same expression.

Revision ID: 0006
Revises: 0002
Create Date: 2026-11-23 01:04:39.191493
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.models


revision = '0006'
down_revision = '0002'
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE entry_fts USING fts5(text, content='entry', content_rowid='id')",
    "CREATE TRIGGER entry_fts_ai AFTER INSERT ON entry BEGIN "
    "INSERT INTO entry_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER entry_fts_ad AFTER DELETE ON entry BEGIN "
    "INSERT INTO entry_fts(entry_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER entry_fts_au AFTER UPDATE OF text ON entry BEGIN "
    "INSERT INTO entry_fts(entry_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO entry_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO entry_fts(entry_fts) VALUES ('rebuild')",
]
PG_FTS = ["CREATE INDEX ix_entry_text_fts ON entry USING gin (to_tsvector('simple', text))"]


def upgrade() -> None:
    op.create_table('signintoken',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('nonce_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', app.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('nonce_sha256')
    )
    with op.batch_alter_table('signintoken', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signintoken_email'), ['email'], unique=False)

    op.create_table('appuser',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('is_operator', sa.Boolean(), nullable=False),
    sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('created_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_signin_at', app.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('teamsettings',
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('digest_enabled', sa.Boolean(), nullable=False),
    sa.Column('digest_include_quiet', sa.Boolean(), nullable=False),
    sa.Column('tracking', sa.Boolean(), nullable=False),
    sa.Column('reply_domain', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['team.id'], ),
    sa.PrimaryKeyConstraint('team_id')
    )
    for sql in SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else PG_FTS:
        op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("entry_fts_ai", "entry_fts_ad", "entry_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS entry_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_entry_text_fts")
    op.drop_table('teamsettings')
    op.drop_table('appuser')
    with op.batch_alter_table('signintoken', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signintoken_email'))
    op.drop_table('signintoken')
