"""Any message through SMTP, end to end: an aiosmtplib client submits to the listener, the relay
delivers by SMTP to a local aiosmtpd sink; what arrives is what the application composed."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl

import aiosmtplib
import pytest
from sqlalchemy import select

from app.db import session
from app.models import OutboundMessage, SendingDomain, Team, TeamSettings, utcnow
from app.relay.api_tokens import create_token
from app.relay.pipeline import deliver_many
from app.relay.transports.smtp import SMTPTransport
from app.settings import get_settings
from tests.app.relay.composed_samples import (
    INVOICE_LINK,
    as_bytes,
    invoice,
    parsed,
    payloads,
    raw_parts,
    tiny_pdf,
    tiny_png,
)
from tests.app.relay.test_submission import Listener
from tests.app.relay.transports import smtp_server
from tests.app.web.sns_fake import tls_files


@pytest.fixture
def sink():
    c = smtp_server.start()
    yield c
    c.stop()


@pytest.fixture
def listener(db, env):
    with session() as s:
        s.add(SendingDomain(domain="app.example", verified_at=utcnow()))
    srv = Listener(get_settings(), lambda ids: None)
    srv.start()
    yield srv
    srv.stop()


def team_token(tracking: bool) -> str:
    with session() as s:
        team = Team(name="Billing", created_at=utcnow())
        s.add(team)
        s.flush()
        s.add(TeamSettings(team_id=team.id, tracking=tracking))
        return create_token(s, "billing app", now=utcnow(), team_id=team.id)


def submit(
    srv,
    token: str,
    raw: bytes,
    rcpts: list[str],
    host: str = "127.0.0.1",
    tls_context: ssl.SSLContext | None = None,
    mail_options: tuple[str, ...] = (),
) -> None:
    """``raw`` sent by a stdlib client authenticated with ``token``; over implicit TLS when a
    ``tls_context`` is given. The client closes its socket before returning."""
    if tls_context is None:
        client = smtplib.SMTP(host, srv.port, timeout=30)
    else:
        client = smtplib.SMTP_SSL(host, srv.port, context=tls_context, timeout=30)
    with client:
        client.login("app", token)
        client.sendmail("billing@app.example", rcpts, raw, mail_options=list(mail_options))


def deliver_all(sink) -> dict[str, bytes]:
    """Every queued message delivered to the sink over SMTP; {recipient: the bytes that arrived}."""
    with session() as s:
        ids = list(s.execute(select(OutboundMessage.id).order_by(OutboundMessage.id)).scalars())
    transport = SMTPTransport(f"smtp://127.0.0.1:{sink.port}?tls=none")
    try:
        states = deliver_many(ids, transport=transport)
    finally:
        transport.close()
    assert set(states.values()) == {"sent"}, states
    return {e.rcpt_tos[0]: e.original_content for e in sink.handler.envelopes}


RCPTS = ["customer@example.org", "accounts@example.org", "auditor@example.net"]


@pytest.mark.parametrize("tracking", [False, True], ids=["untracked", "tracked"])
def test_a_message_with_a_pdf_and_an_inline_image_arrives_as_composed_and_bcc_never_shows(
    listener, sink, tracking
):
    raw = as_bytes(invoice(bcc="auditor@example.net"))
    submit(listener, team_token(tracking), raw, RCPTS)
    got = deliver_all(sink)
    assert sorted(got) == sorted(RCPTS)  # the Bcc recipient gets it too
    for rcpt, data in got.items():
        assert b"Bcc:" not in data and b"auditor@example.net" not in data, rcpt
        mail = parsed(data)
        assert mail["From"] == "Billing <billing@app.example>" and mail["To"] == "customer@example.org"
        assert mail["Cc"] == "accounts@example.org" and mail["Reply-To"] == "support@app.example"
        assert mail["X-App-Ref"] == "inv-42" and mail["Subject"] == "Invoice 42"
        for kind in ("application/pdf", "image/png", "text/plain"):
            (before,) = raw_parts(raw, kind)
            assert before in data, kind  # headers and encoded body, byte for byte
        assert payloads(data, "application/pdf") == [tiny_pdf()]
        assert payloads(data, "image/png") == [tiny_png()]
        html = mail.get_body(("html",)).get_content()
        assert 'src="cid:logo@app.example"' in html
        if tracking:
            assert INVOICE_LINK not in html and "/t/c/" in html and "/t/o/" in html
            assert mail["List-Unsubscribe"]
        else:
            (before,) = raw_parts(raw, "text/html")
            assert before in data and "/t/o/" not in html and "List-Unsubscribe" not in mail
    with session() as s:
        links = {r.links for r in s.execute(select(OutboundMessage)).scalars()}
    assert links == ({json.dumps([INVOICE_LINK])} if tracking else {""})


def test_an_8bit_utf8_body_and_an_smtputf8_recipient_are_accepted_and_delivered(listener, sink):
    raw = (
        "From: Billing <billing@app.example>\r\nTo: Jörg <jörg@example.org>\r\nSubject: Grüße\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        "\r\nGrüße aus Köln, 直接.\r\n"
    ).encode()
    submit(listener, team_token(False), raw, ["jörg@example.org"], mail_options=("BODY=8BITMIME", "SMTPUTF8"))
    deliver_all(sink)
    (envelope,) = sink.handler.envelopes
    assert envelope.rcpt_tos == ["jörg@example.org"] and envelope.smtp_utf8
    assert "BODY=8BITMIME" in envelope.mail_options
    assert envelope.original_content.endswith(raw)  # 8-bit, as submitted, after our headers


def test_a_utf8_recipient_without_smtputf8_is_refused_with_the_reason(listener):
    async def go():
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener.port, start_tls=False) as c:
            await c.login("app", team_token(False))
            await c.mail("billing@app.example")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as e:
                await c.rcpt("jörg@example.org", encoding="utf-8")
            return e.value

    refused = asyncio.run(go())
    assert refused.code == 553 and "SMTPUTF8" in refused.message


def test_implicit_tls_serves_submission_with_a_self_signed_certificate(db, env, tmp_path):
    cert, key, ca = tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    with session() as s:
        s.add(SendingDomain(domain="app.example", verified_at=utcnow()))
    srv = Listener(get_settings(), lambda ids: None, context=context, implicit_tls=True)
    srv.start()
    try:
        client_context = ssl.create_default_context(cafile=str(ca))
        submit(
            srv,
            team_token(False),
            as_bytes(invoice()),
            ["customer@example.org"],
            host="localhost",  # the name the certificate is for
            tls_context=client_context,
        )
    finally:
        srv.stop()
    with session() as s:
        assert [r.to_addr for r in s.execute(select(OutboundMessage)).scalars()] == ["customer@example.org"]
