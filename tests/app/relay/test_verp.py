"""Mail From a sending domain, end to end: signed with the domain's keys (verified by dkimpy against
the local DNS server), sent with a VERP envelope sender, and a bounce to that address finds it."""

from __future__ import annotations

import dkim as dkimpy
import dns.nameserver
import dns.resolver
import pytest
from sqlalchemy import select

from app.db import session
from app.models import InboundMessage, OutboundMessage, Sender, SendingDomain, Suppression
from app.relay import domains, outbox, verp
from app.relay.pipeline import deliver
from app.relay.transports import close_all
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from parsers.providers import Payload
from tests.app.inbound.test_process import accept_and_process
from tests.app.relay.test_domains import publish, verify
from tests.app.relay.transports import smtp_server
from tests.conftest import FIXED_NOW

SECRET = "test-secret-key-0123456789-abcdefXYZ"
NOW_TS = int(FIXED_NOW.timestamp())


@pytest.fixture
def sink(db):
    """An aiosmtpd sink on loopback, the one Sender."""
    c = smtp_server.start()
    with session() as s:
        s.add(Sender(name="sink", url=f"smtp://127.0.0.1:{c.port}?tls=none"))
    yield c
    close_all()
    c.stop()


def send_from(sink, from_addr: str, to: str = "ada@example.com") -> int:
    """An API message From ``from_addr`` through the SMTP sink; its id."""
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=FIXED_NOW,
            idempotency_key=f"t:{from_addr}:{to}",
            kind="api",
            to_addr=to,
            subject="Your invoice",
            template="api",
            context={"text": "Thanks.", "html": "<p>Thanks.</p>"},
            message_id=outbox.new_message_id("mail.test"),
            from_addr=from_addr,
        )
    assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    return mid


def dns_txt(local_dns):
    """dkimpy's dnsfunc: the TXT record, asked of the local DNS server with dnspython."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", local_dns.port)]

    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)

    return lookup


def signatures(raw: bytes, dnsfunc) -> dict[bytes, bool]:
    """{algorithm: verified} of each DKIM-Signature of ``raw``."""
    d = dkimpy.DKIM(raw)
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    out = {}
    for i, value in enumerate(sigs):
        tags = dict(t.strip().split(b"=", 1) for t in value.replace(b"\r\n", b"").split(b";") if b"=" in t)
        assert tags[b"d"] == b"example.org"
        out[tags[b"a"]] = dkimpy.DKIM(raw).verify(idx=i, dnsfunc=dnsfunc)
    return out


def domain_published(local_dns) -> int:
    with session() as s:
        did = domains.add(s, "example.org", None, get_settings(), now=FIXED_NOW).id
    publish(local_dns, did)
    verify(did)
    return did


def test_mail_from_a_sending_domain_is_signed_with_its_keys_and_dkimpy_verifies_both(
    db, local_dns, sink, monkeypatch
):
    domain_published(local_dns)
    mid = send_from(sink, "Billing <billing@example.org>")
    (env,) = sink.handler.envelopes
    raw = env.original_content
    assert b"From: Billing <billing@example.org>" in raw
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS + 60)
    assert signatures(raw, dns_txt(local_dns)) == {b"rsa-sha256": True, b"ed25519-sha256": True}
    # the envelope sender is the message's VERP address on the domain's return-path host
    local, _, host = env.mail_from.partition("@")
    assert host == "bounces.example.org" and local.startswith("bounces+")
    assert verp.message_of([env.mail_from], SECRET) == (mid, "")


def test_a_signature_fails_once_the_published_key_is_another(db, local_dns, sink, monkeypatch):
    domain_published(local_dns)
    send_from(sink, "billing@example.org")
    raw = sink.handler.envelopes[0].original_content
    local_dns.records[("donebox-ed25519._domainkey.example.org", "TXT")] = [
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    ]
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS + 60)
    assert signatures(raw, dns_txt(local_dns)) == {b"rsa-sha256": True, b"ed25519-sha256": False}


def test_mail_from_mail_from_has_its_verp_address_on_the_return_path_domain(db, sink):
    mid = send_from(sink, "")
    (env,) = sink.handler.envelopes
    assert env.mail_from == verp.address(mid, "reply.test", SECRET)
    assert b"From: donebox <donebox@mail.test>" in env.original_content


def dsn_to(address: str, recipient: str = "ada@example.com") -> bytes:
    """A bounce that quotes nothing of the original: no Message-ID, no headers, no In-Reply-To."""
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: {address}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n--b--\r\n"
    ).encode()


def state(mid: int) -> str:
    with session() as s:
        return s.get(OutboundMessage, mid).state


def suppressed() -> list[str]:
    with session() as s:
        return list(s.execute(select(Suppression.email)).scalars())


def test_a_bounce_quoting_nothing_sent_to_the_verp_address_bounces_the_right_message(db, local_dns, sink):
    domain_published(local_dns)
    first = send_from(sink, "billing@example.org", to="bob@example.com")
    mid = send_from(sink, "billing@example.org", to="ada@example.com")
    envelope = sink.handler.envelopes[1].mail_from
    row = accept_and_process("raw", Payload(dsn_to(envelope), "message/rfc822"))
    assert row.state == "ignored" and "1 message(s) moved" in row.error
    assert (state(mid), state(first)) == ("bounced", "sent")
    assert suppressed() == ["ada@example.com"]


def test_a_tampered_verp_token_changes_nothing_and_is_noted(db, sink):
    mid = send_from(sink, "")
    envelope = sink.handler.envelopes[0].mail_from
    local, _, host = envelope.partition("@")
    i = len("bounces+") + 1  # a character of the id
    tampered = local[:i] + ("a" if local[i] != "a" else "b") + local[i + 1 :] + "@" + host
    row = accept_and_process("raw", Payload(dsn_to(tampered), "message/rfc822"))
    assert state(mid) == "sent" and suppressed() == []
    assert f"VERP address '{tampered}': bad signature, ignored" in row.error
    with session() as s:
        assert s.get(InboundMessage, row.id).state == "ignored"


def test_a_token_naming_another_message_than_the_recipient_changes_nothing(db, sink):
    mid = send_from(sink, "", to="ada@example.com")
    other = verp.address(mid, "reply.test", SECRET)
    row = accept_and_process("raw", Payload(dsn_to(other, recipient="mallory@example.com"), "message/rfc822"))
    assert state(mid) == "sent" and suppressed() == []
    assert row.state == "ignored"


@pytest.mark.parametrize("local", ["bounces+", "bounces+!!", "bounces+aaaa", "bounces+" + "a" * 40])
def test_verp_addresses_that_are_not_ours_name_no_message(local):
    found, note = verp.message_of([f"{local}@reply.test"], SECRET)
    assert found is None and note.endswith("ignored")
    assert verp.message_of(["ada@example.com"], SECRET) == (None, "")


def test_a_verp_token_is_short_and_round_trips_for_any_id():
    for mid in (1, 255, 256, 2**31 - 1):
        address = verp.address(mid, "Reply.Test", SECRET)
        assert address.endswith("@reply.test") and len(address.partition("@")[0]) <= 40
        assert verp.message_of([address.upper()], SECRET) == (mid, "")
    assert verp.message_of([verp.address(7, "reply.test", "another secret")], SECRET)[0] is None
    last = verp.address(7, "reply.test", SECRET).partition("@")[0]
    for c in "abcdefghijklmnopqrstuvwxyz234567":  # only the one spelling of the token is ours
        if c != last[-1]:
            assert verp.message_of([f"{last[:-1]}{c}@reply.test"], SECRET)[0] is None


def test_an_unknown_sending_domain_row_is_never_needed_for_mail_from(db):
    with session() as s:
        assert s.execute(select(SendingDomain)).first() is None
    signing = domains.signing.get("mail.test", get_settings())
    assert signing.return_path_host == "reply.test" and signing.keys == []


def test_a_bounce_posted_to_the_inbound_webhook_finds_its_message_by_the_verp_address(db, sink):
    from starlette.testclient import TestClient

    from app.web.factory import create_app
    from jobs.broker import drain
    from tests.app.web.conftest import AUTH

    mid = send_from(sink, "")
    envelope = sink.handler.envelopes[0].mail_from
    with TestClient(create_app()) as client:
        r = client.post("/inbound/raw", content=dsn_to(envelope), headers=AUTH)
        assert r.status_code == 202
        drain()
    assert state(mid) == "bounced" and suppressed() == ["ada@example.com"]
    with session() as s:
        assert s.get(InboundMessage, r.json()["id"]).state == "ignored"


def test_a_plain_text_bounce_naming_no_recipient_finds_both_by_the_verp_address(db, sink):
    mid = send_from(sink, "")
    envelope = sink.handler.envelopes[0].mail_from
    text = (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {envelope}\r\nSubject: failure notice\r\n\r\n"
        "Sorry, we were unable to deliver your message. This is a permanent error.\r\n"
        "550 5.1.1 mailbox unavailable\r\n"
    ).encode()
    row = accept_and_process("raw", Payload(text, "message/rfc822"))
    assert row.state == "ignored" and state(mid) == "bounced"
    assert suppressed() == ["ada@example.com"]
