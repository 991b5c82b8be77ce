"""Alembic, driven from code: ``upgrade(url)`` brings a database to the newest schema; ``behind(url)``
says which heads it lacks (`donebox doctor`).

Several machines may run ``donebox migrate`` at once (each host's ``donebox-migrate.service``): an
upgrade holds a lock for the database (a PostgreSQL advisory lock; for SQLite a file lock beside the
database file), so the first applies the migrations and the others, once it is done, find nothing to do.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from app.db import normalize_url
from app.settings import ROOT


def config(url: str) -> Config:
    """An Alembic config for ``url`` using app/migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "app" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


# pg_advisory_lock's key: the same on every machine, and one no other part of donebox takes
MIGRATE_LOCK_KEY = 0x646F6E65626F78  # "donebox"


@contextmanager
def exclusive(url: str) -> Iterator[None]:
    """Hold the database's migration lock: other ``exclusive(url)`` callers, in any process on any
    machine sharing the database, wait until this one leaves."""
    url = normalize_url(url)
    if url.startswith("postgresql"):
        engine = create_engine(url, connect_args={"connect_timeout": 10}, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATE_LOCK_KEY})")
                conn.commit()
                try:
                    yield
                finally:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATE_LOCK_KEY})")
                    conn.commit()
        finally:
            engine.dispose()
        return
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate-lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply every migration up to ``revision`` (all heads: features add their own branches), under the
    database's migration lock."""
    with exclusive(url):
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
