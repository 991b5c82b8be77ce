"""Mailgun's and Postmark's event webhooks -> DeliveryEvents, and Mailgun's body signature.

The fixtures under tests/fixtures/{mailgun,postmark}_events/ are written from the providers'
documented payloads; ``{message_id}`` and ``{donebox_id}`` are filled in per test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.providers import PROVIDERS, AuthError, EventError, Payload

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def mailgun_data(name: str, message_id: str = "m1@mail.test", donebox_id: str = "") -> dict:
    text = (FIXTURES / "mailgun_events" / name).read_text()
    return json.loads(text.replace("{message_id}", message_id).replace("{donebox_id}", donebox_id))


def mailgun_body(data: dict, *, key: str = KEY, ts: int | None = None, token: str = "") -> bytes:
    ts_text = str(int(NOW.timestamp()) if ts is None else ts)
    token = token or hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:50]
    sig = hmac.new(key.encode(), (ts_text + token).encode(), hashlib.sha256).hexdigest()
    doc = {"signature": {"timestamp": ts_text, "token": token, "signature": sig}, "event-data": data}
    return json.dumps(doc).encode()


def postmark_body(name: str, donebox_id: str = "7") -> bytes:
    text = (FIXTURES / "postmark_events" / name).read_text()
    return text.replace("{donebox_id}", donebox_id).encode()


def mg(body: bytes) -> list:
    return PROVIDERS["mailgun"].parse_events(Payload(body, "application/json"))


def pm(body: bytes) -> list:
    return PROVIDERS["postmark"].parse_events(Payload(body, "application/json"))


@pytest.mark.parametrize(
    ("name", "kind", "recipient"),
    [
        ("delivered.json", "delivered", "ada@example.com"),
        ("failed_permanent.json", "bounce", "bob@example.com"),
        ("failed_temporary.json", "deferred", "olga@example.com"),
        ("complained.json", "complaint", "ada@example.com"),
        ("opened.json", "open", "ada@example.com"),
        ("clicked.json", "click", "ada@example.com"),
        ("unsubscribed.json", "unsubscribe", "ada@example.com"),
    ],
)
def test_every_mailgun_event_kind_maps_to_ours_with_our_message_id(name, kind, recipient):
    (e,) = mg(mailgun_body(mailgun_data(name)))
    assert (e.source, e.kind, e.recipient) == ("mailgun", kind, recipient)
    assert e.message_ids == ("<m1@mail.test>",)
    assert e.event_id.startswith("mailgun:") and e.event_id.split(":")[2].isdigit()
    assert e.at is not None and e.at.tzinfo is not None and e.at.year == 2026
    assert e.raw["event"] == mailgun_data(name)["event"]


def test_a_mailgun_bounce_keeps_the_smtp_answer_and_severity():
    (e,) = mg(mailgun_body(mailgun_data("failed_permanent.json")))
    assert e.detail["status"] == "550" and "does not exist" in e.detail["response"]
    assert (e.detail["severity"], e.detail["reason"]) == ("permanent", "bounce")


def test_mailgun_opens_and_clicks_keep_the_user_agent_and_url():
    (o,) = mg(mailgun_body(mailgun_data("opened.json")))
    (c,) = mg(mailgun_body(mailgun_data("clicked.json")))
    assert "Thunderbird" in o.detail["user_agent"] and o.detail["ip"] == "203.0.113.9"
    assert c.detail["url"] == "https://donebox.test/teams/1/digest"


@pytest.mark.parametrize(
    ("reason", "kind", "cause"),
    [
        ("suppress-bounce", "dropped", "bounce"),
        ("suppress-complaint", "dropped", "complaint"),
        ("suppress-unsubscribe", "dropped", "unsubscribe"),
        ("old", "soft_bounce", ""),
        ("espblock", "soft_bounce", ""),
        ("generic", "bounce", ""),
    ],
)
def test_a_permanent_mailgun_failure_is_read_by_its_reason(reason, kind, cause):
    data = dict(mailgun_data("failed_permanent.json"), reason=reason)
    (e,) = mg(mailgun_body(data))
    assert (e.kind, e.cause) == (kind, cause)


def test_the_donebox_id_user_variable_names_our_message():
    (e,) = mg(mailgun_body(mailgun_data("delivered.json", donebox_id="42")))
    assert e.outbound_id == 42
    (e,) = mg(mailgun_body(mailgun_data("delivered.json", donebox_id="42; drop")))
    assert e.outbound_id is None


def test_a_retried_mailgun_event_has_the_same_id_and_another_event_another():
    data = mailgun_data("delivered.json")
    first, again = mg(mailgun_body(data, token="a" * 50)), mg(mailgun_body(data, token="b" * 50))
    assert first[0].event_id == again[0].event_id == "mailgun:dlv-Q3xN8rTb2mKpW7aY:1795950000"
    (other,) = mg(mailgun_body(dict(data, timestamp=data["timestamp"] + 86400)))  # same id, next day
    assert other.event_id != first[0].event_id


def test_mailgun_events_we_do_not_act_on_give_nothing():
    assert mg(mailgun_body(dict(mailgun_data("delivered.json"), event="stored"))) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b'{"signature": {}}', "no 'event-data'"),
        (b'{"event-data": []}', "no 'event-data'"),
        (b'{"event-data": {"recipient": "a@b.example"}}', "no 'event' name"),
    ],
)
def test_a_malformed_mailgun_body_is_an_event_error(body, why):
    with pytest.raises(EventError, match=why):
        mg(body)


def test_mailgun_event_signature_right_key_fresh_timestamp():
    body = mailgun_body(mailgun_data("delivered.json"))
    PROVIDERS["mailgun"].verify_events({}, body, KEY, now=NOW)
    assert PROVIDERS["mailgun"].event_replay_token(Payload(body)) == json.loads(body)["signature"]["token"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (mailgun_body({"event": "delivered"}, key="key-other"), "wrong Mailgun signature"),
        (mailgun_body({"event": "delivered"}, ts=int(NOW.timestamp()) - 3600), "stale"),
        (mailgun_body({"event": "delivered"}, ts=int(NOW.timestamp()) + 3600), "stale"),
        (json.dumps({"event-data": {"event": "delivered"}}).encode(), "missing the Mailgun 'signature'"),
        (json.dumps({"signature": {"timestamp": "1", "token": "t"}}).encode(), "missing Mailgun signature"),
        (
            json.dumps({"signature": {"timestamp": "soon", "token": "t", "signature": "ab"}}).encode(),
            "malformed",
        ),
    ],
)
def test_a_forged_or_stale_mailgun_event_is_refused(body, why):
    with pytest.raises(AuthError, match=why):
        PROVIDERS["mailgun"].verify_events({}, body, KEY, now=NOW, max_age_s=300)


def test_a_body_signature_copied_onto_other_event_data_still_verifies_which_is_why_tokens_are_remembered():
    good = json.loads(mailgun_body(mailgun_data("delivered.json")))
    forged = json.dumps({**good, "event-data": mailgun_data("complained.json")}).encode()
    PROVIDERS["mailgun"].verify_events({}, forged, KEY, now=NOW)  # the endpoint refuses it by its token


def test_a_signature_object_with_lone_surrogates_is_refused_not_a_crash():
    body = json.dumps({"signature": {"timestamp": "1", "token": "\ud800", "signature": "ab"}}).encode()
    with pytest.raises(AuthError, match="wrong Mailgun signature"):
        PROVIDERS["mailgun"].verify_events({}, body, KEY, now=NOW)


def test_a_subaccount_event_verifies_with_the_primary_accounts_key():
    doc = json.loads(mailgun_body(mailgun_data("delivered.json"), key="key-subaccount"))
    sig = doc["signature"]
    sig["parent-signature"] = hmac.new(
        KEY.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256
    ).hexdigest()
    PROVIDERS["mailgun"].verify_events({}, json.dumps(doc).encode(), KEY, now=NOW)


@pytest.mark.parametrize(
    ("name", "kind", "recipient", "event_id"),
    [
        (
            "delivery.json",
            "delivered",
            "ada@example.com",
            "postmark:delivery:6c1a3f0e-9b2d-4e57-a8c4-1f0d2e3b4a5c:ada@example.com",
        ),
        ("bounce_hard.json", "bounce", "bob@example.com", "postmark:bounce:3719847120"),
        ("bounce_transient.json", "deferred", "olga@example.com", "postmark:bounce:3719847188"),
        ("spam_complaint.json", "complaint", "ada@example.com", "postmark:spamcomplaint:3719850001"),
        ("open.json", "open", "ada@example.com", "postmark:open:sha256:"),
        ("click.json", "click", "ada@example.com", "postmark:click:sha256:"),
        ("subscription_change.json", "unsubscribe", "ada@example.com", "postmark:subscriptionchange:sha256:"),
    ],
)
def test_every_postmark_record_maps_to_ours_with_our_id_from_metadata(name, kind, recipient, event_id):
    (e,) = pm(postmark_body(name))
    assert (e.source, e.kind, e.recipient, e.outbound_id) == ("postmark", kind, recipient, 7)
    assert e.event_id.startswith(event_id)
    assert e.at is not None and e.at.tzinfo is not None and e.at.year == 2026
    assert e.provider_id and e.raw["RecordType"] == json.loads(postmark_body(name))["RecordType"]


def test_a_postmark_bounce_keeps_the_details_but_not_the_bounced_message():
    (e,) = pm(postmark_body("bounce_hard.json"))
    assert "550 5.1.1" in e.detail["response"] and e.detail["type"] == "HardBounce"
    assert "Content" not in e.raw and e.at == datetime(2026, 11, 30, 18, 3, 40, 103455, tzinfo=UTC)


def test_postmark_opens_and_clicks_keep_the_user_agent_and_link():
    (o,) = pm(postmark_body("open.json"))
    (c,) = pm(postmark_body("click.json"))
    assert "Thunderbird" in o.detail["user_agent"]
    assert c.detail["url"] == "https://donebox.test/teams/1/digest"


def test_a_retried_postmark_record_has_the_same_id():
    for name in ("open.json", "click.json", "delivery.json", "bounce_hard.json"):
        assert pm(postmark_body(name))[0].event_id == pm(postmark_body(name))[0].event_id


@pytest.mark.parametrize(
    ("bounce_type", "kind"),
    [
        ("BadEmailAddress", "bounce"),
        ("SoftBounce", "soft_bounce"),
        ("DnsError", "soft_bounce"),
        ("SpamNotification", "soft_bounce"),
        ("Unsubscribe", "unsubscribe"),
        ("SpamComplaint", "complaint"),
        ("ManuallyDeactivated", "dropped"),
        ("SomethingNew", "soft_bounce"),
        ("AutoResponder", None),
    ],
)
def test_a_postmark_bounce_is_read_by_its_type(bounce_type, kind):
    doc = json.loads(postmark_body("bounce_hard.json"))
    events = pm(json.dumps(dict(doc, Type=bounce_type)).encode())
    assert [e.kind for e in events] == ([kind] if kind else [])


def test_a_postmark_reactivation_or_a_bounce_suppression_change_gives_nothing():
    doc = json.loads(postmark_body("subscription_change.json"))
    assert pm(json.dumps(dict(doc, SuppressSending=False)).encode()) == []
    assert pm(json.dumps(dict(doc, SuppressionReason="HardBounce")).encode()) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"not json", "not JSON"), (b"[]", "not an object"), (b'{"MessageID": "x"}', "no RecordType")],
)
def test_a_malformed_postmark_body_is_an_event_error(body, why):
    with pytest.raises(EventError, match=why):
        pm(body)


def test_postmark_events_are_proven_by_basic_auth():
    good = {"authorization": "Basic " + base64.b64encode(b"pm:events").decode()}
    PROVIDERS["postmark"].verify_events(good, b"{}", "pm:events", now=NOW)
    with pytest.raises(AuthError, match="wrong"):
        PROVIDERS["postmark"].verify_events(good, b"{}", "pm:other", now=NOW)
    with pytest.raises(AuthError, match="missing"):
        PROVIDERS["postmark"].verify_events({}, b"{}", "pm:events", now=NOW)


SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = (
    SCALAR
    | st.lists(SCALAR, max_size=3)
    | st.dictionaries(
        st.text(max_size=12), SCALAR | st.dictionaries(st.text(max_size=12), SCALAR), max_size=4
    )
)
FIELDS = st.sampled_from(
    [
        "event",
        "id",
        "timestamp",
        "severity",
        "reason",
        "recipient",
        "message",
        "user-variables",
        "delivery-status",
        "client-info",
        "url",
        "RecordType",
        "Type",
        "ID",
        "MessageID",
        "Metadata",
        "Recipient",
        "Email",
        "BouncedAt",
        "SuppressSending",
        "SuppressionReason",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(FIELDS, JSON, max_size=8),
    st.sampled_from(["delivered", "failed", "opened", "Bounce", "Delivery", "SubscriptionChange"]),
)
def test_any_json_gives_events_or_an_event_error_never_anything_else(doc, name):
    data = {"event": name, **doc} if "event" not in doc else doc
    record = {"RecordType": name, **doc} if "RecordType" not in doc else doc
    for parse, body in ((mg, {"event-data": data}), (pm, record)):
        try:
            events = parse(json.dumps(body).encode())
        except EventError:
            continue
        for e in events:
            for text in (e.event_id, e.recipient, e.provider_id, *e.message_ids):
                assert "\x00" not in text
                text.encode("utf-8")  # no lone surrogate: a database takes it
            assert e.at is None or e.at.tzinfo is not None
