"""POST /inbound/{provider}: real payloads, authentication, duplicates, limits, provider status codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

import jobs.enqueue as jobs_enqueue
from app.db import session
from app.models import InboundMessage, WebhookToken
from jobs.broker import drain
from tests.conftest import reset_caches
from tests.parsers.test_providers import FIXTURES, payload

SG_AUTH = "sgparse:s3cret-sendgrid-parse"
PM_AUTH = "pmhook:s3cret-postmark-hook"
MG_KEY = "key-mailgun-signing-0123456789"
TOPIC = "arn:aws:sns:us-east-1:123456789012:donebox-inbound"


def basic(creds: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()}


def stored() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(InboundMessage)).scalar()


@pytest.fixture
def configure(db, env):
    """Set inbound settings, then give a TestClient on an app built with them."""
    clients = []

    def make(**settings) -> TestClient:
        base = {
            "SENDGRID_INBOUND_AUTH": SG_AUTH,
            "POSTMARK_INBOUND_AUTH": PM_AUTH,
            "MAILGUN_SIGNING_KEY": MG_KEY,
            "SES_TOPIC_ARNS": TOPIC,
        }
        for k, v in {**base, **settings}.items():
            if v is None:
                env.delenv(k, raising=False)
            else:
                env.setenv(k, v)
        reset_caches()
        from app.web.factory import create_app

        c = TestClient(create_app())
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(configure):
    return configure()


def post(client, provider: str, path: str, headers: dict | None = None, body: bytes | None = None):
    p = payload(path)
    return client.post(
        f"/inbound/{provider}",
        content=p.body if body is None else body,
        headers={"Content-Type": p.content_type, **(headers or {})},
    )


def mailgun_signed(path: str, *, key: str = MG_KEY, ts: int | None = None, token: str | None = None) -> bytes:
    """The fixture with a fresh timestamp, token and signature, as Mailgun signs them."""
    body = (FIXTURES / path).read_bytes()
    ts = str(int(time.time()) if ts is None else ts)
    token = token or hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:50]
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    for name, value in (("timestamp", ts), ("token", token), ("signature", sig)):
        if path.endswith(".urlencoded"):
            body = re.sub(rf"(^|&){name}=[^&]*".encode(), rf"\g<1>{name}={value}".encode(), body)
        else:
            body = re.sub(
                rf'(name="{name}"\r\n\r\n)[^\r]*'.encode(), lambda m, v=value: m.group(1) + v.encode(), body
            )
    return body


SENDGRID = sorted(p.name for p in (FIXTURES / "sendgrid").iterdir())


@pytest.mark.parametrize("name", SENDGRID)
def test_every_sendgrid_payload_is_stored_with_its_raw_payload(client, name):
    r = post(client, "sendgrid", f"sendgrid/{name}", basic(SG_AUTH))
    assert r.status_code == 200 and r.json()["duplicate"] is False
    with session() as s:
        row = s.get(InboundMessage, r.json()["id"])
        assert row.provider == "sendgrid" and row.payload == payload(f"sendgrid/{name}").body
        assert row.payload_type.startswith("multipart/form-data")
        assert (row.raw != b"") == (name == "raw_mode.multipart")


def test_a_sendgrid_retry_is_a_duplicate_and_stores_nothing(client):
    first = post(client, "sendgrid", "sendgrid/parsed_utf8.multipart", basic(SG_AUTH)).json()
    again = post(client, "sendgrid", "sendgrid/parsed_utf8.multipart", basic(SG_AUTH))
    assert again.status_code == 200 and again.json() == {"id": first["id"], "duplicate": True}
    assert stored() == 1


@pytest.mark.parametrize(
    "provider, path", [("sendgrid", "sendgrid/parsed_utf8.multipart"), ("postmark", "postmark/inbound.json")]
)
@pytest.mark.parametrize("creds", [None, "sgparse:wrong", "garbage-without-colon", "Bearer x"])
def test_wrong_or_missing_basic_credentials_are_401_and_store_nothing(client, provider, path, creds):
    headers = (
        {} if creds is None else ({"Authorization": creds} if creds.startswith("Bearer") else basic(creds))
    )
    r = post(client, provider, path, headers)
    assert r.status_code == 401 and "Basic" in r.json()["error"] and "Basic" in r.headers["WWW-Authenticate"]
    assert stored() == 0


def test_an_unknown_provider_is_404(client):
    r = client.post("/inbound/sendgird", content=b"x")
    assert r.status_code == 404 and "sendgrid" in r.json()["error"]


def test_an_unconfigured_provider_is_404_in_production(configure, env):
    env.setenv("DONEBOX_ENV", "production")
    c = configure(SENDGRID_INBOUND_AUTH=None, MAILGUN_SIGNING_KEY=None, SES_TOPIC_ARNS=None)
    for provider, path in (
        ("sendgrid", "sendgrid/parsed_utf8.multipart"),
        ("mailgun", "mailgun/parsed.urlencoded"),
        ("ses", "ses/notification_base64.json"),
    ):
        r = post(c, provider, path)
        assert r.status_code == 404 and "not configured" in r.json()["error"]
    assert stored() == 0


def test_an_unconfigured_provider_is_accepted_with_a_loud_warning_in_development(configure, caplog):
    c = configure(SENDGRID_INBOUND_AUTH=None)
    with caplog.at_level(logging.WARNING, logger="donebox.webhooks"):
        r = post(c, "sendgrid", "sendgrid/parsed_utf8.multipart")
    assert r.status_code == 200 and stored() == 1
    assert "UNAUTHENTICATED" in caplog.text and "SENDGRID_INBOUND_AUTH" in caplog.text


@pytest.mark.parametrize(
    "path",
    ["mailgun/parsed.urlencoded", "mailgun/parsed_attachment.multipart", "mailgun/mime_koi8r.multipart"],
)
def test_signed_mailgun_posts_are_stored(client, path):
    r = post(client, "mailgun", path, body=mailgun_signed(path))
    assert r.status_code == 200 and r.json()["duplicate"] is False
    with session() as s:
        assert s.execute(select(func.count()).select_from(WebhookToken)).scalar() == 1


def test_mailgun_wrong_signature_stale_timestamp_and_replayed_token_are_401(client):
    path = "mailgun/parsed.urlencoded"
    r = post(client, "mailgun", path, body=mailgun_signed(path, key="not-the-key"))
    assert r.status_code == 401 and "signature" in r.json()["error"]
    r = post(client, "mailgun", path, body=mailgun_signed(path, ts=int(time.time()) - 3600))
    assert r.status_code == 401 and "stale" in r.json()["error"]
    assert post(client, "mailgun", path, body=(FIXTURES / path).read_bytes()).status_code == 401
    body = mailgun_signed(path, token="t" * 50)
    assert post(client, "mailgun", path, body=body).status_code == 200
    r = post(client, "mailgun", path, body=body)
    assert r.status_code == 401 and "replay" in r.json()["error"]
    assert stored() == 1


def test_a_mailgun_retry_with_a_new_token_is_a_duplicate(client):
    path = "mailgun/parsed.urlencoded"
    first = post(client, "mailgun", path, body=mailgun_signed(path)).json()
    again = post(client, "mailgun", path, body=mailgun_signed(path)).json()
    assert again == {"id": first["id"], "duplicate": True}


@pytest.mark.parametrize("name", ["inbound.json", "html_only.json", "raw_email.json"])
def test_postmark_documents_are_stored_and_retries_deduplicated_by_message_id(client, name):
    r = post(client, "postmark", f"postmark/{name}", basic(PM_AUTH))
    assert r.status_code == 200 and r.json()["duplicate"] is False
    assert post(client, "postmark", f"postmark/{name}", basic(PM_AUTH)).json()["duplicate"] is True
    assert stored() == 1


@pytest.mark.parametrize(
    "provider, body, ctype, auth",
    [
        ("sendgrid", b"not a form", "text/plain", basic(SG_AUTH)),
        ("mailgun", b'{"a": 1}', "application/json", {}),
        ("postmark", b"From: a@example.com", "text/plain", basic(PM_AUTH)),
    ],
)
def test_a_payload_of_the_wrong_media_type_is_415_and_stores_nothing(client, provider, body, ctype, auth):
    r = client.post(f"/inbound/{provider}", content=body, headers={"Content-Type": ctype, **auth})
    assert r.status_code == 415 and "Content-Type must be" in r.json()["error"]
    assert stored() == 0


@pytest.mark.parametrize(
    "provider, body, ctype, auth, reason",
    [
        ("sendgrid", b"--x\r\nbroken", "multipart/form-data; boundary=x", basic(SG_AUTH), "holds no message"),
        ("postmark", b"{broken", "application/json", basic(PM_AUTH), "not JSON"),
        ("postmark", b'{"Hello": 1}', "application/json", basic(PM_AUTH), "not a Postmark inbound document"),
    ],
)
def test_a_proven_payload_that_cannot_be_read_is_stored_failed_with_the_reason(
    client, provider, body, ctype, auth, reason
):
    # SendGrid drops a 4xx at once and Postmark stops on some: mail is never refused for its content
    def post_it():
        return client.post(f"/inbound/{provider}", content=body, headers={"Content-Type": ctype, **auth})

    first = post_it()
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert post_it().json() == {"id": first.json()["id"], "duplicate": True}  # a retry stores nothing new
    drain()
    with session() as s:
        row = s.get(InboundMessage, first.json()["id"])
        assert row.state == "failed" and reason in row.error and row.payload == body


def test_an_empty_body_is_400(client):
    r = client.post(
        "/inbound/postmark", content=b"  ", headers={"Content-Type": "application/json", **basic(PM_AUTH)}
    )
    assert r.status_code == 400 and stored() == 0


def test_a_multipart_body_over_the_limit_is_413_without_being_read_whole(configure):
    c = configure(MAX_INBOUND_BYTES="2000")
    p = payload("sendgrid/parsed_attachments.multipart")

    def chunks():  # no Content-Length: the server must stop reading once past the limit
        yield p.body
        for _ in range(10_000):
            yield b"X" * 1024

    r = c.post(
        "/inbound/sendgrid", content=chunks(), headers={"Content-Type": p.content_type, **basic(SG_AUTH)}
    )
    assert r.status_code == 413 and stored() == 0


def test_a_database_fault_answers_503_so_the_provider_retries(client, monkeypatch):
    import app.inbound.group_commit
    import app.web.hooks.inbound as web

    def down(*a, **kw):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(app.inbound.group_commit, "accept_many", down)  # the group-commit path
    monkeypatch.setattr(web, "store", down)  # the per-message path (Mailgun tokens)
    r = post(client, "postmark", "postmark/inbound.json", basic(PM_AUTH))
    assert r.status_code == 503 and "retry" in r.json()["error"]
    path = "mailgun/parsed.urlencoded"
    assert post(client, "mailgun", path, body=mailgun_signed(path)).status_code == 503
    assert stored() == 0


def test_the_same_mail_by_two_paths_is_stored_once(client):
    """SendGrid raw mode and Postmark's RawEmail of one mail share its Message-ID + recipient."""
    a = post(client, "sendgrid", "sendgrid/raw_mode.multipart", basic(SG_AUTH)).json()
    raw = (FIXTURES / "raw/windows-1252.eml").read_bytes()
    b = client.post(
        "/inbound/raw",
        content=raw.replace(
            b"Received:", b"Delivered-To: reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test\r\nReceived:", 1
        ),
        headers={"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"},
    ).json()
    assert b == {"id": a["id"], "duplicate": True}


def test_stored_payloads_are_processed_into_the_same_normalized_email(client):
    from app.inbound.process import load_email

    ids = {}
    for provider, path, auth in (
        ("sendgrid", "sendgrid/parsed_koi8-r.multipart", basic(SG_AUTH)),
        ("postmark", "postmark/inbound.json", basic(PM_AUTH)),
    ):
        ids[provider] = post(client, provider, path, auth).json()["id"]
    with session() as s:
        assert load_email(s.get(InboundMessage, ids["sendgrid"])).text.strip() == "Сделал отчёт по продажам."
        assert (
            load_email(s.get(InboundMessage, ids["postmark"])).mailbox_hash == "1-20261123-aaaaaaaaaaaaaaaa"
        )


def test_json_fixture_documents_are_valid():
    for path in (FIXTURES / "postmark").iterdir():
        assert isinstance(json.loads(path.read_text()), dict)


def test_mailgun_route_urls_ending_in_mime_are_accepted(client):
    path = "mailgun/mime_koi8r.multipart"
    p = payload(path)
    r = client.post(
        "/inbound/mailgun/mime", content=mailgun_signed(path), headers={"Content-Type": p.content_type}
    )
    assert r.status_code == 200
    with session() as s:
        assert b"Message-ID: <koi8r@mail.example.ru>" in s.get(InboundMessage, r.json()["id"]).raw


def test_the_parse_only_ceiling_authenticates_and_parses_but_stores_nothing(configure):
    client = configure()
    p = payload("sendgrid/parsed_utf8.multipart")
    url = "/dev/inbound/sendgrid/parse-only"
    headers = {"Content-Type": p.content_type}
    assert client.post(url, content=p.body, headers=headers).status_code == 401
    r = client.post(url, content=p.body, headers={**headers, **basic(SG_AUTH)})
    assert r.status_code == 200 and stored() == 0
    assert client.post("/dev/inbound/nope/parse-only", content=p.body, headers=headers).status_code == 404
    prod = configure(DONEBOX_ENV="production")
    assert prod.post(url, content=p.body, headers={**headers, **basic(SG_AUTH)}).status_code == 404


def test_the_webhook_hands_its_groups_over_and_drain_sends_what_the_window_holds(client, monkeypatch):
    monkeypatch.setattr(jobs_enqueue, "INBOUND_WINDOW_S", 3600.0)
    drain()  # what earlier tests left, sent and done
    monkeypatch.setattr(jobs_enqueue.inbound_batches, "_last", float("-inf"))  # a quiet spell
    sent: list[list[int]] = []
    real = jobs_enqueue.inbound_batches._send
    monkeypatch.setattr(jobs_enqueue.inbound_batches, "_send", lambda ids: (sent.append(ids), real(ids)))
    names = ("parsed_utf8.multipart", "parsed_koi8-r.multipart", "raw_mode.multipart")
    ids = [post(client, "sendgrid", f"sendgrid/{names[0]}", basic(SG_AUTH)).json()["id"]]
    # the first at once: its send thread may run late, and what came meanwhile would go with it,
    # so the others are posted once it went
    deadline = time.monotonic() + 10
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [ids]
    ids += [post(client, "sendgrid", f"sendgrid/{n}", basic(SG_AUTH)).json()["id"] for n in names[1:]]
    time.sleep(0.1)
    assert [i for group in sent for i in group] == ids[:1]  # the others held for the window
    drain()
    assert [i for group in sent for i in group] == ids and len(sent) == 2
    with session() as s:
        assert {s.get(InboundMessage, i).state for i in ids} <= {
            "processed",
            "ignored",
            "unverified",
            "failed",
        }
        assert all(s.get(InboundMessage, i).state != "received" for i in ids)
