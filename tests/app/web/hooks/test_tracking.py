import json
import re
from datetime import date

from sqlalchemy import select

from app.checkins import teams
from app.checkins.outgoing import create_digest
from app.db import session
from app.models import (
    Entry,
    InboundMessage,
    Member,
    MessageEvent,
    OutboundMessage,
    Suppression,
    Team,
)
from app.relay import suppressions
from app.relay.pipeline import deliver
from app.relay.tracking import make_token
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from jobs.broker import drain
from tests.app.relay.test_pipeline import reminder_for
from tests.conftest import FIXED_NOW

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def send_digest(with_link: str = "https://example.org/docs?a=1&b=2", *, tracked: bool = True):
    """Ada's digest of a day she wrote ``with_link``, made after the team set tracking to ``tracked``."""
    with session() as s:
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        team = s.get(Team, ada.team_id)
        teams.update_team(s, team.id, now=FIXED_NOW, tracking=tracked)
        s.add(Entry(team_id=team.id, member_id=ada.id, day=date(2026, 11, 23), text=f"Wrote {with_link}"))
        mid, _ = create_digest(s, ada, team, date(2026, 11, 23), now=FIXED_NOW, settings=get_settings())
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=FIXED_NOW) == "sent"
    return mid, t.sent[0]


def events(mid, kind):
    with session() as s:
        rows = s.execute(
            select(MessageEvent).where(MessageEvent.message_id == mid, MessageEvent.kind == kind)
        )
        return [json.loads(e.detail) for e in rows.scalars()]


def path(url: str) -> str:
    return url.replace(get_settings().base_url, "")


def test_a_digest_has_an_open_pixel_signed_click_links_and_one_click_unsubscribe(client, team):
    mid, msg = send_digest()
    html = msg.get_body(("html",)).get_content()
    clicks = re.findall(r'href="([^"]+/t/c/[^"]+)"', html)
    (pixel,) = re.findall(r'src="([^"]+/t/o/[^"]+)"', html)
    assert clicks and "example.org" not in "".join(clicks)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.match(
        r"\s*<mailto:unsubscribe\+[0-9]+\.m\.[0-9a-f]{32}@reply\.test>,\s+<http://donebox\.test/t/u/.+>",
        msg["List-Unsubscribe"],
    )
    with session() as s:
        recorded = json.loads(s.get(OutboundMessage, mid).links)
    assert recorded == ["http://donebox.test/"]  # the template's own link; entry text is never a link

    r = client.get(path(pixel), headers={"User-Agent": BROWSER})
    assert (
        r.status_code == 200
        and r.headers["content-type"] == "image/gif"
        and "no-store" in r.headers["cache-control"]
    )
    client.get(path(pixel), headers={"User-Agent": GMAIL_PROXY})
    assert [(e["ua"], e["machine"]) for e in events(mid, "open")] == [(BROWSER, False), (GMAIL_PROXY, True)]

    r = client.get(path(clicks[0]), headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "http://donebox.test/"
    assert events(mid, "click")[0]["url"] == "http://donebox.test/"


def test_a_click_token_cannot_be_forged_or_pointed_elsewhere(client, team):
    mid, _ = send_digest()
    secret = get_settings().secret_key
    assert client.get(f"/t/c/{make_token(secret, mid, 'c', 7)}", follow_redirects=False).status_code == 404
    assert (
        client.get(f"/t/c/{make_token('other-secret', mid, 'c', 0)}", follow_redirects=False).status_code
        == 404
    )
    assert client.get(f"/t/c/{make_token(secret, mid, 'o')}", follow_redirects=False).status_code == 404
    assert client.get("/t/c/1.c0.x?url=https://evil.example", follow_redirects=False).status_code == 404
    assert client.get(f"/t/o/{make_token(secret, 999999, 'o')}").status_code == 404
    assert events(mid, "click") == []


def test_get_only_asks_and_post_unsubscribes_once(client, team):
    mid, msg = send_digest()
    url = re.search(r"<(http[^>]+/t/u/[^>]+)>", msg["List-Unsubscribe"]).group(1)
    r = client.get(path(url), headers={"User-Agent": "Mimecast link scanner"})
    assert r.status_code == 200 and "<form" in r.text
    with session() as s:
        assert s.execute(select(Suppression)).first() is None
    for _ in range(2):
        r = client.post(path(url), content=b"List-Unsubscribe=One-Click", headers={"User-Agent": BROWSER})
        assert r.status_code == 200 and "unsubscribed" in r.text
    with session() as s:
        (sup,) = s.execute(select(Suppression)).scalars()
    assert (sup.email, sup.reason) == ("ada@example.com", "unsubscribe")
    assert [e["via"] for e in events(mid, "unsubscribe")] == ["one-click", "one-click"]
    assert deliver(reminder_for(), transport=MemoryTransport(), now=FIXED_NOW) == "suppressed"


def test_a_one_click_unsubscribe_goes_on_the_list_and_never_replaces_a_complaint(client, team):
    mid, msg = send_digest()
    url = re.search(r"<(http[^>]+/t/u/[^>]+)>", msg["List-Unsubscribe"]).group(1)
    with session() as s:
        suppressions.add(s, "ada@example.com", "complaint", detail="arf", now=FIXED_NOW)
    r = client.post(path(url), content=b"List-Unsubscribe=One-Click", headers={"User-Agent": BROWSER})
    assert r.status_code == 200
    with session() as s:
        sup = suppressions.lookup(s, "ada@example.com")
    assert (sup.reason, sup.detail) == ("complaint", "arf")
    assert [e["via"] for e in events(mid, "unsubscribe")] == ["one-click"]  # still recorded


def test_reminders_are_not_tracked_unless_the_team_says_so(client, team):
    t = MemoryTransport()
    deliver(reminder_for(), transport=t, now=FIXED_NOW)
    html = t.sent[0].get_body(("html",)).get_content()
    assert "/t/o/" not in html and "/t/c/" not in html and t.sent[0]["List-Unsubscribe"]
    with session() as s:
        teams.update_team(s, team.id, now=FIXED_NOW, tracking=True)
    deliver(reminder_for("bob@example.com"), transport=t, now=FIXED_NOW)
    assert "/t/o/" in t.sent[1].get_body(("html",)).get_content()
    _, digest = send_digest(tracked=False)
    assert "/t/o/" not in digest.get_body(("html",)).get_content() and digest["List-Unsubscribe"]


def test_mail_to_the_list_unsubscribe_mailto_address_unsubscribes(client, team):
    mid, msg = send_digest()
    mailto = re.search(r"<mailto:([^>]+)>", msg["List-Unsubscribe"]).group(1)
    forged = re.sub(r"\.[0-9a-f]+@", "." + "0" * 32 + "@", mailto)
    assert forged != mailto
    token = get_settings().inbound_raw_token

    def mail(to: str) -> dict:
        raw = f"From: ada@example.com\r\nTo: {to}\r\nSubject: unsubscribe\r\nMessage-ID: <{to}>\r\n\r\n\r\n"
        r = client.post(
            "/inbound/raw",
            content=raw.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"},
        )
        assert r.status_code in (200, 202), r.text
        drain()  # the in-process workers' process_inbound
        with session() as s:
            row = s.get(InboundMessage, r.json()["id"])
            return {"state": row.state, "error": row.error}

    assert mail(forged) == {
        "state": "ignored",
        "error": f"unsubscribe request to {forged}: its token does not verify (nothing changed)",
    }
    with session() as s:
        assert s.execute(select(Suppression)).first() is None
    assert mail(mailto.upper()) == {  # mail systems may change the case of the local part
        "state": "ignored",
        "error": "unsubscribe request (List-Unsubscribe mailto): ada@example.com is suppressed",
    }
    with session() as s:
        (sup,) = s.execute(select(Suppression)).scalars()
    assert (sup.email, sup.reason) == ("ada@example.com", "unsubscribe")
    assert sup.detail == f"message {mid} via mailto"
    assert [e["via"] for e in events(mid, "unsubscribe")] == ["mailto"]
