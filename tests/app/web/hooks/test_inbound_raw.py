from sqlalchemy import func, select

from app.db import session
from app.models import Entry, InboundMessage
from jobs.broker import drain
from tests.app.web.conftest import AUTH

MAIL = (
    b"From: Ada <ada@example.com>\r\nTo: reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test\r\n"
    b"Subject: Re: What did you get done today?\r\nMessage-ID: <m1@example.com>\r\n\r\nShipped it.\r\n"
)


def stored() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(InboundMessage)).scalar()


def test_a_raw_message_is_stored_and_its_id_returned(client):
    r = client.post("/inbound/raw", content=MAIL, headers=AUTH)
    assert r.status_code == 202
    body = r.json()
    assert body["duplicate"] is False
    with session() as s:
        row = s.get(InboundMessage, body["id"])
        assert row.raw == MAIL and row.provider == "raw"


def test_the_same_message_posted_again_is_a_duplicate_and_stores_nothing(client):
    first = client.post("/inbound/raw", content=MAIL, headers=AUTH).json()
    again = client.post("/inbound/raw", content=MAIL, headers=AUTH)
    assert again.status_code == 200 and again.json() == {"id": first["id"], "duplicate": True}
    assert stored() == 1


def test_a_message_without_message_id_is_deduplicated_by_its_headers(client):
    mail = MAIL.replace(b"Message-ID: <m1@example.com>\r\n", b"")
    first = client.post("/inbound/raw", content=mail, headers=AUTH).json()
    assert client.post("/inbound/raw", content=mail, headers=AUTH).json()["duplicate"] is True
    assert first["duplicate"] is False and stored() == 1


def test_a_missing_or_wrong_token_is_401_and_stores_nothing(client):
    assert (
        client.post("/inbound/raw", content=MAIL, headers={"Content-Type": "message/rfc822"}).status_code
        == 401
    )
    bad = dict(AUTH, Authorization="Bearer nope")
    r = client.post("/inbound/raw", content=MAIL, headers=bad)
    assert r.status_code == 401 and "token" in r.json()["error"]
    assert stored() == 0


def test_an_empty_body_is_400_with_the_reason(client):
    r = client.post("/inbound/raw", content=b"", headers=AUTH)
    assert r.status_code == 400 and "empty" in r.json()["error"]
    assert stored() == 0


def test_mail_without_a_from_is_stored_unverified_with_a_note_and_makes_no_entries(client):
    # a provider would retry a 400 for days or drop it: it is mail, so it is kept and marked
    for body, note, state in (
        (b"Subject: hi\r\nMessage-ID: <nofrom@x>\r\n\r\nShipped it", "no From header", "unverified"),
        (b"hello there\r\n", "header field", "failed"),  # no header at all: kept, nothing to identify
    ):
        r = client.post("/inbound/raw", content=body, headers=AUTH)
        assert r.status_code == 202, r.text
        drain()
        with session() as s:
            row = s.get(InboundMessage, r.json()["id"])
            assert row.state == state and ("no From address" in row.error or note in row.error)
            assert note in row.notes and row.raw == body
            assert s.scalar(select(func.count()).select_from(Entry)) == 0


def test_a_wrong_content_type_is_415(client):
    r = client.post("/inbound/raw", content=MAIL, headers=dict(AUTH, **{"Content-Type": "text/plain"}))
    assert r.status_code == 415 and "message/rfc822" in r.json()["error"]


def test_a_declared_oversize_body_is_refused_before_it_is_read(client, env):
    from app.settings import get_settings

    limit = get_settings().max_inbound_bytes
    r = client.post("/inbound/raw", content=b"x", headers=dict(AUTH, **{"Content-Length": str(limit + 1)}))
    assert r.status_code == 413 and stored() == 0


def test_an_oversize_streamed_body_is_cut_off_at_the_limit(db, env):
    from starlette.testclient import TestClient

    from app.web.factory import create_app

    env.setenv("MAX_INBOUND_BYTES", "1000")
    from tests.conftest import reset_caches

    reset_caches()
    pulled = []

    def chunks():  # no Content-Length: the server must stop reading once past the limit
        yield MAIL
        for _ in range(1000):
            pulled.append(1)
            yield b"X" * 512

    with TestClient(create_app()) as c:
        r = c.post("/inbound/raw", content=chunks(), headers=AUTH)
    assert r.status_code == 413 and stored() == 0


def test_a_failed_processing_keeps_the_message_with_its_error_and_it_can_be_reprocessed(client, monkeypatch):
    import app.inbound.process
    from app.cli import main

    def broken(message, **kw):
        raise ValueError("parser bug")

    real = app.inbound.process.extract_reply
    monkeypatch.setattr(app.inbound.process, "extract_reply", broken)
    from app.checkins.reply_tokens import reply_address
    from tests.app.checkins.test_loop import make_team

    member_id = make_team()
    to = reply_address(
        "test-secret-key-0123456789-abcdefXYZ",
        "reply.test",
        member_id,
        __import__("datetime").date(2026, 11, 23),
    )
    mail = MAIL.replace(b"reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test", to.encode())
    iid = client.post("/inbound/raw", content=mail, headers=AUTH).json()["id"]
    drain()
    with session() as s:
        row = s.get(InboundMessage, iid)
        assert row.state == "failed" and "parser bug" in row.error and row.raw == mail
    monkeypatch.setattr(app.inbound.process, "extract_reply", real)
    assert main(["inbound", "reprocess", "--failed"]) == 0
    with session() as s:
        assert s.get(InboundMessage, iid).state == "processed"


def test_healthz_answers_when_the_database_does(client):
    assert client.get("/healthz").json() == {"ok": True, "database": "ok", "inbound_quarantined": 0}


def test_a_running_app_keeps_its_startup_objects_out_of_the_collectors_way_until_it_stops(db):
    import gc

    from starlette.testclient import TestClient

    from app.web.factory import create_app

    with TestClient(create_app()) as c:
        assert gc.get_freeze_count() > 0  # full collections do not walk modules, mappers, templates
        assert c.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0
