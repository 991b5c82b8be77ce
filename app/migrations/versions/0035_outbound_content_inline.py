"""outboundcontent keeps a message's packed bytes in its own row (PostgreSQL)

The copy of each message kept with its outcome is packed with Zstandard (app.relay.packing), a few
kilobytes for a digest. Past a table's default toast_tuple_target (about 2 KB), PostgreSQL first
runs pglz over such a value, which cannot make packed bytes smaller, then moves it into the
table's TOAST table: a second heap insert and an index insert for every outcome written. With
toast_tuple_target at its largest (8160 bytes), a row that fits in a page stays whole in
outboundcontent; STORAGE EXTERNAL keeps PostgreSQL from compressing a larger value again (it still
goes out of line, uncompressed). Rows stored before keep their layout. SQLite has no TOAST: nothing
to do there.

Revision ID: 0035_outbound_content_inline
Revises: 0034_inbound_state_id
Create Date: 2026-12-06 14:10:00
"""

from alembic import op

revision = '0035_outbound_content_inline'
down_revision = '0034_inbound_state_id'
branch_labels = None
depends_on = '0013_sent_content'  # outboundcontent, made on another branch


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE outboundcontent SET (toast_tuple_target = 8160)")
    op.execute("ALTER TABLE outboundcontent ALTER COLUMN raw_zlib SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE outboundcontent ALTER COLUMN raw_zlib SET STORAGE EXTENDED")
    op.execute("ALTER TABLE outboundcontent RESET (toast_tuple_target)")
