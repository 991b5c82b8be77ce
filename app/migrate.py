"""Alembic, driven from code: ``upgrade(url)`` brings a database to the newest schema."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

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
