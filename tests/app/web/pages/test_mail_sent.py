"""The message page shows the message as its transport received it, not a rendering of today's data."""

import zlib
from datetime import date, timedelta
from email.parser import BytesParser
from email.policy import default

from markupsafe import escape
from sqlalchemy import delete, select

from app.checkins import teams
from app.checkins.outgoing import create_digest
from app.db import session
from app.models import Entry, Member, OutboundContent, OutboundMessage, Team
from app.relay import composed, dkim, outbox, packing, render
from app.relay.pipeline import deliver
from app.relay.retention import purge
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from tests.app.web.conftest import sign_in
from tests.conftest import FIXED_NOW

MONDAY = date(2026, 11, 23)


def ada() -> Member:
    with session() as s:
        return s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()


def add_blocker(team, text: str) -> None:
    with session() as s:
        s.add(Entry(team_id=team.id, member_id=ada().id, day=MONDAY, text=text, kind="blocker"))


def sent_digest(team) -> tuple[int, MemoryTransport]:
    """Monday's digest with one blocker, signed (DKIM on for mail.test), tracked, sent through a
    memory transport."""
    dkim.generate(get_settings().dkim_dir, "mail.test", "sel")
    add_blocker(team, "Waiting on the bank")
    with session() as s:
        teams.update_team(s, team.id, now=FIXED_NOW, tracking=True)
        s.commit()
    with session() as s:
        mid, _ = create_digest(s, ada(), s.get(Team, team.id), MONDAY, now=FIXED_NOW, settings=get_settings())
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=FIXED_NOW) == "sent"
    return mid, t


def test_the_page_shows_the_digest_as_sent_after_the_day_changed(client, team, sent):
    mid, t = sent_digest(team)
    add_blocker(team, "And the auditors")  # the data changes after the digest went out
    with session() as s:
        _, now_text, _ = render.render_message(s, s.get(OutboundMessage, mid), get_settings())
    assert "BLOCKERS (2)" in now_text  # a rendering today would say two
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}").text
    assert "Content as sent" in page and "BLOCKERS (1)" in page and "BLOCKERS (2)" not in page
    assert "And the auditors" not in page
    html = client.get(f"/mail/outbound/{mid}/html")
    assert "sandbox" in html.headers["content-security-policy"]
    assert "1 blocker<" in html.text and "2 blockers" not in html.text
    # its tracked links are shown without a target: looking at the page is not the recipient's click
    assert 'href="http://donebox.test/t/c/' in t.sent[0].get_body(("html",)).get_content()
    assert "donebox.test/t/" not in html.text
    assert 'sandbox="" referrerpolicy="no-referrer"' in page


def test_the_headers_shown_are_the_delivered_messages_headers(client, team, sent):
    mid, t = sent_digest(team)
    delivered = BytesParser(policy=default).parsebytes(t.outgoing[0].raw)
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}").text
    table = page.split('<table id="headers">')[1].split("</table>")[0]
    rows = [r for r in table.split("\n") if r.startswith("<tr>")]
    expected = [f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in delivered.items()]
    assert rows == expected
    assert any(k == "DKIM-Signature" for k, _ in delivered.items())


def test_the_kept_bytes_are_what_the_transport_received_byte_for_byte(team):
    mid, t = sent_digest(team)
    (handed,) = t.outgoing
    assert handed.raw.startswith(b"DKIM-Signature:")  # signing was on
    with session() as s:
        assert outbox.content(s, mid) == handed.raw
        stored = s.get(OutboundContent, mid).raw_zlib
    assert len(stored) < len(handed.raw) and stored.startswith(packing.ZSTD_MAGIC)  # kept packed


def test_a_copy_an_earlier_version_kept_as_zlib_is_shown_as_it_was_sent(client, team, sent):
    mid, t = sent_digest(team)
    (handed,) = t.outgoing
    with session() as s:  # as versions before app.relay.packing wrote it
        s.get(OutboundContent, mid).raw_zlib = zlib.compress(handed.raw, 1)
        s.commit()
    with session() as s:
        assert outbox.content(s, mid) == handed.raw
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}").text
    assert "Content as sent" in page and "BLOCKERS (1)" in page


def test_after_retention_the_page_says_the_content_was_purged(client, team, sent):
    mid, _ = sent_digest(team)
    with session() as s:
        assert purge(s, now=FIXED_NOW + timedelta(days=46), days=45) == 1
        assert s.get(OutboundContent, mid) is None
        assert outbox.content(s, mid) is None
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}").text
    purged_on = (FIXED_NOW + timedelta(days=46)).date().isoformat()
    assert f"The content was purged on {purged_on}" in page
    assert "BLOCKERS" not in page and 'id="headers"' not in page and "<iframe" not in page


def test_a_message_sent_before_content_was_kept_says_so_instead_of_rendering(client, team, sent):
    mid, _ = sent_digest(team)
    with session() as s:  # as a message sent before migration 0013 left it
        s.execute(delete(OutboundContent).where(OutboundContent.message_id == mid))
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}").text
    assert "Content not kept: this message was sent before donebox kept" in page and "0013" in page
    assert "BLOCKERS" not in page and "<iframe" not in page
    assert client.get(f"/mail/outbound/{mid}/html").text == ""


def test_a_message_not_sent_yet_shows_a_labelled_preview(client, team, sent):
    add_blocker(team, "Waiting on the bank")
    with session() as s:
        mid, _ = create_digest(s, ada(), s.get(Team, team.id), MONDAY, now=FIXED_NOW, settings=get_settings())
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}").text
    assert "Preview: will be rendered when sent" in page and "BLOCKERS (1)" in page
    assert "Content as sent" not in page and 'id="headers"' not in page


def test_a_sign_in_link_is_never_kept(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    with session() as s:
        signin = s.execute(select(OutboundMessage).where(OutboundMessage.kind == "signin")).scalar_one()
        assert signin.state == "sent" and s.get(OutboundContent, signin.id) is None


def test_a_composed_message_not_sent_yet_is_previewed_as_the_application_composed_it(client, team, sent):
    raw = (
        b"From: Billing <billing@app.example>\r\nTo: ada@example.com\r\nSubject: Invoice 42\r\n"
        b"X-App-Ref: inv-42\r\n\r\nYour invoice is attached.\r\n"
    )
    with session() as s:
        body_id = composed.store(s, raw)
        mid, _ = outbox.create(
            s,
            now=FIXED_NOW,
            idempotency_key="api:composed-preview",
            kind="api",
            team_id=team.id,
            to_addr="ada@example.com",
            subject="Invoice 42",
            message_id=outbox.new_message_id("mail.test"),
            body_id=body_id,
            from_addr="billing@app.example",
        )
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/outbound/{mid}")
    assert page.status_code == 200
    assert "Preview: as the application composed it" in page.text and "Your invoice is attached." in page.text
    assert "inv-42" in page.text
    with session() as s:
        outbox.transition(s, mid, "cancelled", expected="queued", now=FIXED_NOW, detail="test")
    page = client.get(f"/mail/outbound/{mid}").text
    assert "Not sent (cancelled); as the application composed it" in page and "inv-42" in page
