"""The relay's tests send the check-in kinds (reminder, digest) as the worker does: the worker
imports app.checkins.outgoing (through jobs), which registers their render contexts; so do these
tests, whatever ran before them."""

import pytest

import app.checkins.outgoing  # noqa: F401


@pytest.fixture
def parsed_pems(monkeypatch):
    """The PEM bytes of every private key parsed from here on, in order, with the key caches
    (``dkim.CACHE_S``) expired at every read: what a reading of keys again costs in parses."""
    from cryptography.hazmat.primitives import serialization

    from app.relay import dkim

    parsed: list[bytes] = []
    real = serialization.load_pem_private_key
    monkeypatch.setattr(
        dkim.serialization,
        "load_pem_private_key",
        lambda pem, password: parsed.append(pem) or real(pem, password),
    )
    monkeypatch.setattr(dkim, "CACHE_S", 0.0)
    return parsed


@pytest.fixture
def reminder_context() -> dict:
    """A member's reminder context as reminder_context (app.checkins.outgoing) makes it, as plain
    values: what render_parts("reminder", ...) needs without a database."""
    from datetime import date

    return {
        "member": {"name": "Ada", "email": "ada@example.org"},
        "team": {"name": "Team"},
        "day": date(2026, 12, 7),
        "questions": (),
        "goals": [],
        "still_blocked": [],
        "base_url": "https://donebox.test",
    }
