"""The migrations build the schema the models describe, on both databases."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import app.models  # noqa: F401 - every table on SQLModel.metadata


def _ours(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out the full-text search objects migration 0006 keeps beside the models (FTS5 tables)."""
    return not (
        reflected and compare_to is None and (name or "").startswith(("entry_fts", "ix_entry_text_fts"))
    )


def _differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _ours})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_migrated_schema_matches_the_models(request, database):
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    assert _differences(url) == []
