"""Alembic, driven from code: ``upgrade(url)`` brings a database to the newest schema; ``behind(url)``
says which heads it lacks (`donebox doctor`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from app.db import normalize_url
from app.settings import ROOT


def config(url: str) -> Config:
    """An Alembic config for ``url`` using app/migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "app" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply every migration up to ``revision`` (all heads: features add their own branches)."""
    command.upgrade(config(url), revision)


def behind(url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the revisions the database is at, the heads it lacks): () lacking when it is at the newest
    schema. Raises what the driver raises when the database cannot be reached."""
    script = ScriptDirectory.from_config(config(url))
    heads = set(script.get_heads())
    postgres = normalize_url(url).startswith("postgresql")
    engine = create_engine(normalize_url(url), connect_args={"connect_timeout": 10} if postgres else {})
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()
    # a head is applied when the database is at it or at a revision descending from it
    applied = {rev.revision for cur in current for rev in script.iterate_revisions(cur, "base")}
    return tuple(sorted(current)), tuple(sorted(heads - applied))
