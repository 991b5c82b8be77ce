"""Composed messages (body_id) through deliver_many: the stored bytes, plus only what the relay owns."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app.db import session
from app.models import OutboundBody, OutboundMessage
from app.relay import composed, outbox, packing
from app.relay.pipeline import COMPOSED_KEPT_MAX_BYTES, deliver, deliver_many
from app.relay.retention import purge
from app.relay.tracking import verify_token
from app.relay.transports.memory import MemoryTransport
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
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW


def composed_rows(raw: bytes, to: list[str], *, track: bool = False, message_id: str = "") -> list[int]:
    """One stored body and a queued row per recipient, as the SMTP and API ways in make them."""
    mid = message_id or outbox.new_message_id("mail.test")
    ids = []
    with session() as s:
        body_id = composed.store(s, raw, now=NOW)
        for addr in to:
            new, _ = outbox.create(
                s,
                now=NOW,
                idempotency_key=f"api:{body_id}:{addr}",
                kind="api",
                to_addr=addr,
                subject="Invoice 42",
                context=json.dumps({"_track": True} if track else {}),
                message_id=mid,
                body_id=body_id,
                from_addr="billing@app.example",
                lease_until=NOW + timedelta(minutes=5),
            )
            ids.append(new)
    return ids


def row(mid: int) -> OutboundMessage:
    with session() as s:
        return s.get(OutboundMessage, mid)


def test_a_composed_message_goes_out_as_stored_with_our_message_id_only_when_it_has_none(db):
    bare = as_bytes(invoice())
    (mid,) = composed_rows(bare, ["customer@example.org"], message_id="<ours.1@mail.test>")
    own = as_bytes(invoice(message_id="<theirs.7@app.example>"))
    (mid2,) = composed_rows(own, ["customer@example.org"], message_id="<theirs.7@app.example>")
    t = MemoryTransport()
    assert deliver_many([mid, mid2], transport=t, now=NOW) == {mid: "sent", mid2: "sent"}
    first, second = (o.raw for o in t.outgoing)
    assert parsed(first).get_all("Message-ID") == ["<ours.1@mail.test>"]
    assert parsed(second).get_all("Message-ID") == ["<theirs.7@app.example>"]
    for sent, stored in ((first, bare), (second, own)):
        assert sent.endswith(stored)  # untracked: the application's bytes, whole, after our headers
        got = parsed(sent)
        assert got["From"] == "Billing <billing@app.example>" and got["Reply-To"] == "support@app.example"
        assert got["Cc"] == "accounts@example.org" and got["X-App-Ref"] == "inv-42"
        assert got["Date"] and "List-Unsubscribe" not in got
    assert row(mid).state == "sent" and row(mid).links == ""


def test_a_bcc_header_is_never_sent_on(db):
    raw = as_bytes(invoice(bcc="auditor@example.net"))
    ids = composed_rows(raw, ["customer@example.org", "auditor@example.net"])
    t = MemoryTransport()
    deliver_many(ids, transport=t, now=NOW)
    assert [o.rcpt_to for o in t.outgoing] == ["customer@example.org", "auditor@example.net"]
    for o in t.outgoing:
        assert b"\nBcc:" not in o.raw and not o.raw.startswith(b"Bcc:") and b"auditor@" not in o.raw


def test_tracking_rewrites_the_html_part_only_and_leaves_every_other_part_byte_identical(db):
    raw = as_bytes(invoice())
    (mid,) = composed_rows(raw, ["customer@example.org"], track=True)
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "sent"
    sent = t.outgoing[0].raw
    st = get_settings()
    html = parsed(sent).get_body(("html",)).get_content()
    assert INVOICE_LINK not in html and f"{st.base_url}/t/c/" in html and f"{st.base_url}/t/o/" in html
    token = html.split("/t/c/")[1].split('"')[0]
    assert verify_token(st.secret_key, token, "c").index == 0
    assert json.loads(row(mid).links) == [INVOICE_LINK]
    assert 'src="cid:logo@app.example"' in html
    got = parsed(sent)
    assert got["List-Unsubscribe"] and got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for kind in ("application/pdf", "image/png", "text/plain"):
        (before,) = raw_parts(raw, kind)
        assert before in sent  # the raw part, headers and encoded body, as stored
    assert payloads(sent, "application/pdf") == [tiny_pdf()]
    assert payloads(sent, "image/png") == [tiny_png()]


def test_links_of_several_html_parts_are_recorded_in_order_with_their_own_indexes(db):
    raw = (
        b"From: billing@app.example\r\nTo: c@example.org\r\nSubject: two\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n'
        b'--b1\r\nContent-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"PGEgaHJlZj0iaHR0cHM6Ly9vbmUuZXhhbXBsZS8iPm9uZTwvYT4=\r\n"
        b'--b1\r\nContent-Type: text/html; charset="iso-8859-1"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b'<p>Gr=FC=DFe <a href=3D"https://two.example/">two</a></p>\r\n'
        b'--b1\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename="page.html"\r\n\r\n'
        b'<a href="https://attached.example/">not tracked</a>\r\n'
        b"--b1--\r\nepilogue\r\n"
    )
    (mid,) = composed_rows(raw, ["c@example.org"], track=True)
    t = MemoryTransport()
    deliver(mid, transport=t, now=NOW)
    sent = t.outgoing[0].raw
    one, two, attached = payloads(sent, "text/html")
    assert json.loads(row(mid).links) == ["https://one.example/", "https://two.example/"]
    st = get_settings()
    tokens = [p.split(b"/t/c/")[1].split(b'"')[0].decode() for p in (one, two)]
    assert [verify_token(st.secret_key, tok, "c").index for tok in tokens] == [0, 1]
    assert "Grüße".encode("iso-8859-1") in two
    assert attached == b'<a href="https://attached.example/">not tracked</a>'
    assert sent.endswith(b"--b1--\r\nepilogue\r\n") and b"\r\npreamble\r\n--b1\r\n" in sent


def test_a_body_an_earlier_version_stored_as_zlib_goes_out_as_it_was_composed(db):
    raw = as_bytes(invoice())
    (mid,) = composed_rows(raw, ["customer@example.org"])
    with session() as s:
        body = s.get(OutboundBody, row(mid).body_id)
        assert body.raw_zlib.startswith(packing.ZSTD_MAGIC)  # stored packed
        body.raw_zlib = zlib.compress(raw, 6)  # as versions before app.relay.packing stored it
        s.commit()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "sent"
    (sent,) = t.outgoing
    assert sent.raw.endswith(raw.split(b"\r\n\r\n", 1)[1])  # the composed body, unchanged


def test_a_composed_message_whose_body_was_purged_fails_with_the_reason(db):
    (mid,) = composed_rows(as_bytes(invoice()), ["customer@example.org"])
    with session() as s:
        s.delete(s.get(OutboundBody, row(mid).body_id))
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "failed"
    assert t.outgoing == [] and "body is gone" in row(mid).error


def test_retention_purges_a_body_once_no_unsent_message_needs_it(db):
    done, waiting = composed_rows(as_bytes(invoice()), ["a@example.org", "b@example.org"])
    deliver(done, transport=MemoryTransport(), now=NOW)
    later = NOW + timedelta(days=46)
    with session() as s:
        purge(s, now=later, days=45)
    assert row(waiting).state == "queued"
    with session() as s:  # b@ may still be sent: its body stays
        assert composed.load(s, row(waiting).body_id) is not None
    deliver(waiting, transport=MemoryTransport(), now=later)
    with session() as s:
        purge(s, now=later + timedelta(days=1), days=45)
    with session() as s:
        assert s.execute(select(OutboundBody)).first() is None


def test_a_single_part_html_message_is_tracked_in_place_with_its_other_headers_as_they_were(db):
    raw = (
        b"From: billing@app.example\r\nTo: c@example.org\r\nSubject: one part\r\nX-Folded: a\r\n b\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        b'<p><a href="https://one.example/">one</a></p>\r\n'
    )
    (mid,) = composed_rows(raw, ["c@example.org"], track=True)
    t = MemoryTransport()
    deliver(mid, transport=t, now=NOW)
    sent = t.outgoing[0].raw
    head = b"From: billing@app.example\r\nTo: c@example.org\r\nSubject: one part\r\nX-Folded: a\r\n b\r\n"
    assert (
        head + b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        in sent
    )
    assert b"7bit" not in sent
    (html,) = payloads(sent, "text/html")
    assert b"/t/c/" in html and b"/t/o/" in html and b"https://one.example/" not in html
    assert json.loads(row(mid).links) == ["https://one.example/"]


MIXED = (
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/html\r\n\r\n<p>a</p>\r\n"
    b"--b1x\r\nnot a delimiter: another boundary's prefix\r\n"
    b" --b1 not at the start of a line\r\n"
    b"--b1\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: text/html\r\n\r\n<p>attached mail</p>\r\n"
    b"--b1--\r\n"
)


def test_only_html_leaves_are_found_not_attached_messages_nor_lookalike_delimiters():
    marked = composed.edit_html(MIXED, lambda html: html.replace("<p>", "<p class=x>"))
    assert marked.count(b"class=3Dx") == 1 and b"<p>attached mail</p>" in marked
    assert b"--b1x\r\nnot a delimiter" in marked and b" --b1 not at the start of a line" in marked


@given(st.binary(max_size=400) | st.sampled_from([MIXED, MIXED[:-8], MIXED.replace(b'"b1"', b"")]))
def test_reading_any_bytes_never_raises_and_an_unchanged_html_leaves_them_as_they_were(raw):
    assert composed.edit_html(raw, lambda html: None) == raw
    composed.edit_html(raw, lambda html: html + "<img>")


def test_a_small_composed_copy_is_kept_as_sent_and_a_large_one_is_not_multiplied_per_recipient(db):
    small = as_bytes(invoice())
    m = invoice()
    m.add_attachment(b"\x00" * (COMPOSED_KEPT_MAX_BYTES + 1), maintype="application", subtype="octet-stream")
    large = as_bytes(m)
    (kept,) = composed_rows(small, ["a@example.org"])
    both = composed_rows(large, ["b@example.org", "c@example.org"])
    t = MemoryTransport()
    deliver_many([kept, *both], transport=t, now=NOW)
    body_id = row(both[0]).body_id
    with session() as s:
        assert outbox.content(s, kept) == t.outgoing[0].raw
        assert [outbox.content(s, mid) for mid in both] == [None, None]
        assert composed.load(s, body_id) == large  # what they were sent from stays
