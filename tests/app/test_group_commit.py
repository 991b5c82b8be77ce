"""The per-process group-commit writer: many concurrent accepts, each answered after its commit."""

from __future__ import annotations

from concurrent.futures import wait

from sqlalchemy import func, select

from app import group_commit
from app.db import session
from app.models import InboundMessage


def count() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(InboundMessage)).scalar()


def test_concurrent_submissions_are_committed_once_each_with_duplicates_reported(db):
    w = group_commit.GroupWriter()
    futures = [w.submit("raw", b"From: a@b.c\r\n\r\nx", f"k{i % 150}", None, "") for i in range(300)]
    wait(futures, timeout=60)
    results = [f.result() for f in futures]
    assert count() == 150
    first = {}
    for i, (iid, dup) in enumerate(results):
        key = f"k{i % 150}"
        if key not in first:
            first[key] = iid
            assert dup is False
        else:
            assert dup is True and iid == first[key]


def test_one_bad_row_fails_alone_and_its_group_is_committed(db, monkeypatch):
    import app.inbound

    real = app.inbound.accept_many

    def picky(s, items, **kw):
        if any(key == "bad" for _, _, key, _, _ in items):
            raise ValueError("this row cannot be stored")
        return real(s, items, **kw)

    monkeypatch.setattr(app.inbound, "accept_many", picky)
    w = group_commit.GroupWriter()
    futures = [w.submit("raw", b"x", key, None, "") for key in ("a", "bad", "b", "c")]
    wait(futures, timeout=60)
    assert [f.exception() is not None for f in futures] == [False, True, False, False]
    assert count() == 3
