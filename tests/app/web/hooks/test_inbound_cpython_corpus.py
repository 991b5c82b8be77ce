"""CPython's own email test messages all pass through /inbound/raw without a 5xx or an unhandled error.

The corpus ships with CPython's ``test`` package (test/test_email/data). Debian's python3
only has it with ``libpython3.X-testsuite``; the pyenv builds used here and in CI include it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from app.db import session
from app.models import InboundMessage
from jobs.broker import drain
from tests.app.web.conftest import AUTH
from tests.conftest import need


def corpus() -> list[Path]:
    try:
        import test

        data = Path(os.path.dirname(test.__file__)) / "test_email" / "data"
    except ImportError:
        return []
    return sorted(p for p in data.glob("msg_*.txt")) if data.is_dir() else []


def test_every_cpython_email_test_message_is_stored_or_refused_with_a_reason(client):
    files = corpus()
    if not files:
        need("CPython's email test data", "the stdlib test package (test/test_email/data) is not installed")
    accepted = refused = 0
    for path in files:
        r = client.post("/inbound/raw", content=path.read_bytes(), headers=AUTH)
        assert r.status_code in (200, 202, 400), (path.name, r.status_code, r.text)
        if r.status_code == 400:
            assert r.json()["error"], path.name
            refused += 1
        else:
            accepted += 1
    drain()
    with session() as s:
        states = dict(s.execute(select(InboundMessage.id, InboundMessage.state)).all())
        errors = [
            e for e in s.execute(select(InboundMessage.error)).scalars() if e.startswith(("Type", "Attr"))
        ]
    assert "received" not in states.values() and errors == []
    assert accepted > len(files) // 2, (accepted, refused)


def test_the_corpus_is_found_where_cpython_installs_it():
    if not corpus():
        need("CPython's email test data", "the stdlib test package is not installed")
    assert len(corpus()) > 30
