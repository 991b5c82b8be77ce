"""Any message from a team's own verified domain, through the JSON API and through SMTP: a PDF and an
inline image arrive at a local aiosmtpd sink byte-identical, with the From, Cc, Reply-To and custom
headers intact, no Bcc header anywhere, and DKIM signatures (RSA and Ed25519) that dkimpy verifies
against the TXT records the local DNS server serves."""

from __future__ import annotations

import base64

import pytest
from starlette.testclient import TestClient

from app.db import session
from app.models import Sender
from app.relay.transports import close_all
from app.web.factory import create_app
from jobs.broker import drain
from tests.app.relay.composed_samples import (
    as_bytes,
    invoice,
    parsed,
    payloads,
    raw_parts,
    tiny_pdf,
    tiny_png,
)
from tests.app.relay.test_submission import Listener
from tests.app.relay.test_submission_delivery import RCPTS, deliver_all, submit, team_token
from tests.app.relay.test_verp import dns_txt, domain_published, signatures
from tests.app.relay.transports import smtp_server

FROM = "billing@example.org"


@pytest.fixture
def sink(db, local_dns):
    """The sending domain example.org published in the local DNS and verified; an aiosmtpd sink on
    loopback as the one Sender."""
    domain_published(local_dns)
    c = smtp_server.start()
    with session() as s:
        s.add(Sender(name="sink", url=f"smtp://127.0.0.1:{c.port}?tls=none"))
    yield c
    close_all()
    c.stop()


def check(got: dict[str, bytes], local_dns) -> None:
    """What every recipient got: the composed message, signed for example.org, no Bcc."""
    assert sorted(got) == sorted(RCPTS)  # the Bcc recipient gets it too
    for rcpt, data in got.items():
        assert b"Bcc:" not in data and b"auditor@example.net" not in data, rcpt
        mail = parsed(data)
        assert mail["From"] == f"Billing <{FROM}>" and mail["To"] == "customer@example.org"
        assert mail["Cc"] == "accounts@example.org" and mail["Reply-To"] == "support@app.example"
        assert mail["X-App-Ref"] == "inv-42" and mail["Subject"] == "Invoice 42"
        assert payloads(data, "application/pdf") == [tiny_pdf()]
        assert payloads(data, "image/png") == [tiny_png()]
        assert 'src="cid:logo@app.example"' in mail.get_body(("html",)).get_content()
        assert signatures(data, dns_txt(local_dns)) == {b"rsa-sha256": True, b"ed25519-sha256": True}


def test_an_api_message_with_a_pdf_and_an_inline_image_arrives_intact_and_signed(sink, local_dns):
    token = team_token(tracking=False)
    body = {
        "from": {"email": FROM, "name": "Billing"},
        "to": "customer@example.org",
        "cc": "accounts@example.org",
        "bcc": ["auditor@example.net"],
        "reply_to": "support@app.example",
        "subject": "Invoice 42",
        "text": "Your invoice is attached.\n",
        "html": '<html><body><p>Your invoice <img src="cid:logo@app.example"></p></body></html>',
        "headers": {"X-App-Ref": "inv-42"},
        "attachments": [
            {
                "filename": "invoice-42.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(tiny_pdf()).decode(),
            },
            {
                "filename": "logo.png",
                "content_type": "image/png",
                "content": base64.b64encode(tiny_png()).decode(),
                "content_id": "logo@app.example",
            },
        ],
    }
    with TestClient(create_app()) as client:  # its in-process workers deliver through the sink
        r = client.post("/api/messages", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
        assert len(r.json()["ids"]) == 3
        drain(timeout_s=60)
    check({e.rcpt_tos[0]: e.original_content for e in sink.handler.envelopes}, local_dns)
    # the PDF's encoded part is the one the API composed, byte for byte, in every copy
    pdf_parts = {raw_parts(e.original_content, "application/pdf")[0] for e in sink.handler.envelopes}
    assert len(pdf_parts) == 1


def test_an_smtp_message_with_a_pdf_and_an_inline_image_arrives_intact_and_signed(sink, local_dns, env):
    from app.settings import get_settings

    raw = as_bytes(invoice(from_addr=FROM, bcc="auditor@example.net"))
    srv = Listener(get_settings(), lambda ids: None)
    srv.start()
    try:
        submit(srv, team_token(tracking=False), raw, RCPTS)
    finally:
        srv.stop()
    got = deliver_all(sink)
    check(got, local_dns)
    for data in got.values():
        for kind in ("application/pdf", "image/png", "text/plain", "text/html"):
            (before,) = raw_parts(raw, kind)
            assert before in data, kind  # headers and encoded body as submitted
