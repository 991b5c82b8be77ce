"""Every provider's ``verify`` (and ``verify_events``): the right secret passes, a wrong one is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from parsers.providers import PROVIDERS, AuthError, Forbidden, Payload, PayloadError, Provider

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))


def basic(secret: str) -> tuple[dict, bytes]:
    return {"authorization": "Basic " + base64.b64encode(secret.encode()).decode()}, b"{}"


def mailgun(key: str, ts: str = TS, token: str = "t" * 50) -> tuple[dict, bytes]:
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    body = urlencode({"timestamp": ts, "token": token, "signature": sig, "recipient": "a@b.example"})
    return {"content-type": "application/x-www-form-urlencoded"}, body.encode()


def sns(arns: tuple[str, ...]) -> tuple[dict, bytes]:
    return {"content-type": "text/plain"}, json.dumps({"Type": "Notification", "TopicArn": arns[0]}).encode()


def bearer(token: str) -> tuple[dict, bytes]:
    return {"authorization": "Bearer " + token}, b"From: a@b.example\r\n\r\nhi\r\n"


# provider -> (the secret, a wrong secret, a request proven with the right one)
INBOUND = {
    "sendgrid": ("sg:right", "sg:wrong", basic),
    "postmark": ("pm:right", "pm:wrong", basic),
    "mailgun": ("key-right", "key-wrong", mailgun),
    "ses": (("arn:aws:sns:us-east-1:1:right",), ("arn:aws:sns:us-east-1:1:other",), sns),
    "raw": ("right-token", "wrong-token", bearer),
}

KEY, OTHER = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def public(key) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_events(_secret: str, ts: str = TS, body: bytes = b"[]") -> tuple[dict, bytes]:
    sig = KEY.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "x-twilio-email-event-webhook-signature": base64.b64encode(sig).decode(),
        "x-twilio-email-event-webhook-timestamp": ts,
    }, body


def mailgun_events(key: str, ts: str = TS, token: str = "e" * 50) -> tuple[dict, bytes]:
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": {}}
    return {"content-type": "application/json"}, json.dumps(body).encode()


EVENTS = {
    "sendgrid": (public(KEY), public(OTHER), sendgrid_events),
    "mailgun": ("key-right", "key-wrong", mailgun_events),
    "postmark": ("pm:events", "pm:wrong", basic),
    "ses": (("arn:aws:sns:us-east-1:1:events",), ("arn:aws:sns:us-east-1:1:inbound",), sns),
}


def test_every_webhook_provider_has_a_case_here():
    assert set(INBOUND) == {p.name for p in PROVIDERS.values() if p.webhook}
    assert set(EVENTS) == {p.name for p in PROVIDERS.values() if p.event_setting}


@pytest.mark.parametrize("name", sorted(INBOUND))
def test_verify_accepts_the_right_secret_and_refuses_a_wrong_one(name):
    right, wrong, sign = INBOUND[name]
    headers, body = sign(right)
    PROVIDERS[name].verify(headers, body, right, now=NOW)
    with pytest.raises(AuthError):
        PROVIDERS[name].verify(headers, body, wrong, now=NOW)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_verify_events_accepts_the_right_secret_and_refuses_a_wrong_one(name):
    right, wrong, sign = EVENTS[name]
    headers, body = sign(right)
    PROVIDERS[name].verify_events(headers, body, right, now=NOW)
    with pytest.raises(AuthError):
        PROVIDERS[name].verify_events(headers, body, wrong, now=NOW)


@pytest.mark.parametrize("name", ["sendgrid", "postmark", "raw"])
def test_header_proofs_refuse_a_request_without_credentials(name):
    with pytest.raises(AuthError, match="missing"):
        PROVIDERS[name].verify({}, b"", INBOUND[name][0], now=NOW)


def test_a_stale_or_future_mailgun_timestamp_is_refused_even_when_signed():
    for ts in (str(int(NOW.timestamp()) - 301), str(int(NOW.timestamp()) + 301)):
        headers, body = mailgun("key", ts=ts)
        with pytest.raises(AuthError, match="stale Mailgun timestamp"):
            PROVIDERS["mailgun"].verify(headers, body, "key", now=NOW, max_age_s=300)
    headers, body = mailgun("key", ts="soon")
    with pytest.raises(AuthError, match="malformed Mailgun timestamp"):
        PROVIDERS["mailgun"].verify(headers, body, "key", now=NOW)


def test_mailgun_without_signature_fields_is_refused_and_its_token_is_the_replay_token():
    headers = {"content-type": "application/x-www-form-urlencoded"}
    with pytest.raises(AuthError, match="missing Mailgun signature fields"):
        PROVIDERS["mailgun"].verify(headers, b"recipient=a%40b.example", "key", now=NOW)
    headers, body = mailgun("key", token="once")
    assert PROVIDERS["mailgun"].replay_token(Payload(body, headers["content-type"])) == "once"
    assert PROVIDERS["sendgrid"].replay_token(Payload(b"", "")) == ""


def test_a_stale_sendgrid_event_signature_is_refused():
    headers, body = sendgrid_events("", ts=str(int(NOW.timestamp()) - 3600))
    with pytest.raises(AuthError, match="stale SendGrid event timestamp"):
        PROVIDERS["sendgrid"].verify_events(headers, body, public(KEY), now=NOW, max_age_s=300)


def test_an_unpinned_sns_topic_is_forbidden_and_names_the_setting():
    headers, body = sns(("arn:other",))
    with pytest.raises(Forbidden, match="SES_TOPIC_ARNS") as e:
        PROVIDERS["ses"].verify(headers, body, ("arn:mine",), now=NOW)
    assert e.value.status == 403
    with pytest.raises(Forbidden, match="SES_EVENT_TOPIC_ARNS"):
        PROVIDERS["ses"].verify_events(headers, body, ("arn:mine",), now=NOW)
    with pytest.raises(PayloadError):
        PROVIDERS["ses"].verify(headers, b"[]", ("arn:mine",), now=NOW)


def test_a_provider_that_does_not_say_how_to_verify_fails_closed():
    class Quiet(Provider):
        name = "quiet"

    with pytest.raises(AuthError):
        Quiet().verify({}, b"", "secret", now=NOW)


def test_the_attributes_say_what_differs():
    raw, ses, mailgun_ = PROVIDERS["raw"], PROVIDERS["ses"], PROVIDERS["mailgun"]
    assert raw.content_types == ("message/rfc822",) and raw.created_status == 202
    assert not raw.stores_payload and not raw.open_in_development
    assert ses.via_sns and ses.body_signed and mailgun_.body_signed
    assert not PROVIDERS["imap"].webhook and PROVIDERS["imap"].setting == ""
    assert PROVIDERS["sendgrid"].challenge.startswith("Basic") and not raw.challenge
