"""Hostile content in replies, subjects, names and HTML parts: no page and no digest can run it."""

from sqlalchemy import select

from app.db import session
from app.models import InboundMessage, Member, Team, utcnow
from jobs.broker import drain
from tests.app.web.conftest import AUTH, post, sign_in
from tests.app.web.pages.test_browser import team_today
from tests.app.web.pages.xss import PAYLOADS, executable_constructs


def _mail(to: str, subject: str, text: str, html: str, msgid: str) -> bytes:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"] = "bob@example.com"
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = msgid
    m.set_content(text)
    m.add_alternative(html, subtype="html")
    return bytes(m)


def hostile_world(client, team_id: int) -> list[int]:
    """Every payload as a reply line, a subject, a member name and HTML; the inbound ids."""
    from app.checkins.reply_tokens import reply_address

    with session() as s:
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        bob.name = PAYLOADS[1]
        s.get(Team, team_id).name = "Rocket " + PAYLOADS[0]
        bob_id = bob.id
    to = reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", bob_id, team_today(team_id))
    ids = []
    body = "\n".join(PAYLOADS) + "\n"
    for i, subject in enumerate(PAYLOADS):
        raw = _mail(
            to, subject, body if i == 0 else f"line {i}: {subject}", "<p>hi</p>" + subject, f"<x{i}@t>"
        )
        r = client.post("/inbound/raw", content=raw, headers=AUTH)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    drain()
    with session() as s:
        states = set(s.execute(select(InboundMessage.state)).scalars())
    assert states == {"processed"}, states
    return ids


def pages(team_id: int, ids: list[int]) -> list[str]:
    with session() as s:
        bob = s.execute(select(Member.id).where(Member.email == "bob@example.com")).scalar_one()
    urls = [
        "/",
        f"/teams/{team_id}",
        f"/teams/{team_id}/search?q=alert",
        f"/teams/{team_id}/search?tag=img",
        f"/teams/{team_id}/search?q=%3Cscript%3E",
        f"/teams/{team_id}/members/{bob}",
        f"/teams/{team_id}/settings",
        f"/teams/{team_id}/settings/members",
        f"/teams/{team_id}/settings/me",
        "/mail/inbound",
        "/mail/outbound",
        "/mail/suppressions",
    ]
    for iid in ids:
        urls += [f"/mail/inbound/{iid}", f"/mail/inbound/{iid}/html"]
    return urls


def test_no_page_shows_an_executable_construct_from_hostile_mail(client, team, sent):
    ids = hostile_world(client, team.id)
    sign_in(client, sent, "ada@example.com")
    post(client, f"/teams/{team.id}/entries", {"text": "\n".join(PAYLOADS)})
    checked = 0
    for url in pages(team.id, ids):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.headers["content-type"].lower().endswith("charset=utf-8"), url  # never sniffed as UTF-7
        if not url.endswith("/html"):
            assert '<meta charset="utf-8">' in r.text, url
        assert executable_constructs(r.text) == [], url
        checked += 1
    page = client.get(f"/teams/{team.id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert checked == 12 + 2 * len(PAYLOADS)


def test_no_digest_carries_an_executable_construct(client, team, sent):
    from app.checkins.outgoing import digest_now
    from app.settings import get_settings
    from jobs.enqueue import enqueue_deliveries

    hostile_world(client, team.id)
    with session() as s:
        ids = digest_now(s, now=utcnow(), settings=get_settings(), day=team_today(team.id))
    sent.clear()
    enqueue_deliveries(ids)
    drain()
    assert len(sent) == 3
    for msg in sent:
        html = msg.get_body(("html",)).get_content()
        assert "alert(1)" in html and executable_constructs(html) == []
    # the digest as the mail pages show it
    sign_in(client, sent, "ada@example.com")
    from app.models import OutboundMessage

    with session() as s:
        mid = s.execute(select(OutboundMessage.id).where(OutboundMessage.kind == "digest")).scalars().first()
    for url in (f"/mail/outbound/{mid}", f"/mail/outbound/{mid}/html", "/mail/outbound"):
        assert executable_constructs(client.get(url).text) == [], url


def test_the_checker_finds_what_it_should():
    for html in (
        "<script>1</script>",
        "<img src=x onerror=alert(1)>",
        '<a href=" javascript:alert(1)">x</a>',
        '<iframe src="https://evil.example"></iframe>',
        '<meta http-equiv="refresh" content="0">',
        '<p style="background:url(javascript:alert(1))">x</p>',
    ):
        assert executable_constructs(html), html
    assert executable_constructs('<iframe sandbox="" src="/mail/inbound/1/html"></iframe><p>ok</p>') == []
