"""POST /events/sendgrid: the Signed Event Webhook (ECDSA P-256 over timestamp + body), every event
kind's effect, retries, malformed bodies and our own faults."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from app.db import session
from app.models import MessageEvent, OutboundMessage, Suppression
from app.settings import SettingsError, load
from tests.app.relay.test_feedback import sent
from tests.app.web.hooks.test_inbound_providers import configure  # noqa: F401 - fixture
from tests.parsers.test_events import sendgrid_batch

KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


def signed(body: bytes, ts: int | None = None, key=KEY) -> dict:
    ts = str(int(time.time()) if ts is None else ts)
    sig = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


@pytest.fixture
def client(configure):  # noqa: F811
    return configure(SENDGRID_EVENT_PUBLIC_KEY=PUBLIC)


def post(client, body: bytes, headers: dict | None = None):
    return client.post("/events/sendgrid", content=body, headers=signed(body) if headers is None else headers)


def messages() -> dict[str, int]:
    """Three sent messages, as the fixture batch names them."""
    return {
        "ada": sent("a", to="ada@example.com", provider_id="X1mAbCdEfGhIjKlMnOpQrS"),
        "bob": sent("b", to="bob@example.com"),
        "olga": sent("c", to="olga@example.com"),
    }


def states() -> dict[str, str]:
    with session() as s:
        return dict(s.execute(select(OutboundMessage.to_addr, OutboundMessage.state)).all())


def suppressed() -> dict[str, str]:
    with session() as s:
        return dict(s.execute(select(Suppression.email, Suppression.reason)).all())


def provider_events() -> int:
    with session() as s:
        return s.execute(
            select(func.count()).select_from(MessageEvent).where(MessageEvent.provider_event_id.is_not(None))
        ).scalar()


def test_a_signed_batch_moves_messages_and_suppresses_hard_bounces(client):
    ids = messages()
    r = post(client, sendgrid_batch(**ids))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 5,
        "applied": 5,
        "moved": 2,
        "suppressed": 1,
        "duplicates": 0,
        "unknown": 0,
    }
    assert states() == {
        "ada@example.com": "delivered",
        "bob@example.com": "bounced",
        "olga@example.com": "sent",
    }
    assert suppressed() == {"bob@example.com": "bounce"}  # "blocked" and "deferred" are events only
    assert provider_events() == 5


def test_a_retried_batch_creates_nothing_new(client):
    ids = messages()
    body = sendgrid_batch(**ids)
    post(client, body)
    again = post(client, body)  # SendGrid retries with a fresh signature and timestamp
    assert again.status_code == 200 and again.json()["duplicates"] == 5 and again.json()["applied"] == 0
    assert provider_events() == 5


def test_an_event_without_our_id_is_matched_by_sendgrids_message_id(client):
    messages()
    body = json.dumps(
        [
            {
                "event": "delivered",
                "email": "ada@example.com",
                "sg_message_id": "X1mAbCdEfGhIjKlMnOpQrS.filter1.0",
            }
        ]
    ).encode()
    assert post(client, body).json()["moved"] == 1 and states()["ada@example.com"] == "delivered"


def test_events_about_unknown_messages_are_counted_and_answered_200(client):
    r = post(client, sendgrid_batch(ada=91, bob=92, olga=93))
    assert r.status_code == 200 and r.json()["unknown"] == 5 and provider_events() == 0


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (lambda body: signed(body, key=ec.generate_private_key(ec.SECP256R1())), "does not verify"),
        (lambda body: signed(body + b" "), "does not verify"),  # signed a different body
        (lambda body: signed(body, ts=int(time.time()) - 3600), "stale"),
        (lambda body: signed(body, ts=int(time.time()) + 3600), "stale"),
        (lambda body: {"Content-Type": "application/json"}, "Signed Event Webhook"),
        (lambda body: {**signed(body), "X-Twilio-Email-Event-Webhook-Signature": "%%%"}, "malformed"),
        (lambda body: {**signed(body), "X-Twilio-Email-Event-Webhook-Timestamp": "soon"}, "malformed"),
    ],
)
def test_an_unproven_request_is_401_and_changes_nothing(client, headers, why):
    ids = messages()
    body = sendgrid_batch(**ids)
    r = post(client, body, headers(body))
    assert r.status_code == 401 and why in r.json()["error"]
    assert provider_events() == 0 and suppressed() == {}
    assert set(states().values()) == {"sent"}


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"{", "not JSON"), (b'{"event": "open"}', "not an array"), (b"[1]", "not an object")],
)
def test_a_malformed_body_is_400_with_the_reason_and_nothing_is_written(client, body, why):
    ids = messages()
    good = json.loads(sendgrid_batch(**ids))
    r = post(client, body)
    assert r.status_code == 400 and why in r.json()["error"]
    # one bad event spoils the batch: nothing of it is applied
    r = post(client, json.dumps([*good, "junk"]).encode())
    assert r.status_code == 400 and provider_events() == 0 and set(states().values()) == {"sent"}


def test_no_key_is_404_in_production(configure, env):  # noqa: F811
    env.setenv("DONEBOX_ENV", "production")
    c = configure(SENDGRID_EVENT_PUBLIC_KEY=None)
    body = sendgrid_batch()
    r = post(c, body)
    assert r.status_code == 404 and "SENDGRID_EVENT_PUBLIC_KEY" in r.json()["error"]


def test_no_key_in_development_accepts_with_a_loud_warning(configure, caplog):  # noqa: F811
    c = configure(SENDGRID_EVENT_PUBLIC_KEY=None)
    ids = messages()
    with caplog.at_level(logging.WARNING, logger="donebox.events"):
        r = post(c, sendgrid_batch(**ids), {"Content-Type": "application/json"})
    assert r.status_code == 200 and "UNAUTHENTICATED" in caplog.text


def test_our_own_fault_is_503_so_sendgrid_retries(client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import app.relay.feedback

    def broken(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    ids = messages()
    monkeypatch.setattr(app.relay.feedback, "apply_events", broken)
    r = post(client, sendgrid_batch(**ids))
    assert r.status_code == 503 and "retry" in r.json()["error"]


def test_a_key_that_is_not_an_ecdsa_p256_key_stops_the_start(tmp_path):
    base = {"DONEBOX_ENV": "development", "VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 20}
    for bad in ("not base64!", base64.b64encode(b"not DER").decode()):
        with pytest.raises(SettingsError, match="SENDGRID_EVENT_PUBLIC_KEY"):
            load({**base, "SENDGRID_EVENT_PUBLIC_KEY": bad})
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load({**base, "SENDGRID_EVENT_PUBLIC_KEY": pem.decode()}).sendgrid_event_public_key
    assert "SENDGRID_EVENT_PUBLIC_KEY" not in repr(load({**base, "SENDGRID_EVENT_PUBLIC_KEY": PUBLIC}))
