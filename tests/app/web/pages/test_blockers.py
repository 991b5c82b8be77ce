"""Open blockers on the team's day page: listed until resolved, by their author or an admin (CSRF)."""

from sqlalchemy import select

from app.checkins import entries
from app.checkins.times import local_date
from app.db import session
from app.models import Entry, Member, Notice, utcnow
from tests.app.web.conftest import post, sign_in


def write(email: str, text: str) -> int:
    """``email``'s entry of today, written on the page's path (entries.add); its id."""
    with session() as s:
        m = s.execute(select(Member).where(Member.email == email)).scalar_one()
        (e,) = entries.add(s, m, local_date(utcnow(), "Europe/Berlin"), text, "done", now=utcnow())
        return e.id


def resolved(eid: int) -> tuple:
    with session() as s:
        e = s.get(Entry, eid)
        return e.resolved_at is not None, e.resolved_by


def test_an_open_blocker_is_resolved_on_the_day_page_by_its_author_or_an_admin_only(client, team, sent):
    bobs = write("bob@example.com", "Blocked: waiting on the design review")
    adas = write("ada@example.com", "Blocked: no staging database @bob")
    with session() as s:  # the admin hears of Bob's blocker; Bob of Ada's mention (not of her blocker)
        told = sorted(s.execute(select(Notice.kind, Notice.entry_id)).all())
    assert told == [("blocker", bobs), ("mention", adas)]

    sign_in(client, sent, "olga@example.com")  # an observer sees them and may not resolve
    page = client.get(f"/teams/{team.id}").text
    assert 'id="open-blockers"' in page and "waiting on the design review" in page
    assert f"/entries/{bobs}/resolve" not in page
    assert post(client, f"/teams/{team.id}/entries/{bobs}/resolve").status_code == 403

    sign_in(client, sent, "bob@example.com")
    page = client.get(f"/teams/{team.id}").text
    assert f"/entries/{bobs}/resolve" in page and f"/entries/{adas}/resolve" not in page
    r = post(client, f"/teams/{team.id}/entries/{adas}/resolve")
    assert r.status_code == 403 and "Only its author or an admin resolves a blocker." in r.text
    no_csrf = client.post(f"/teams/{team.id}/entries/{bobs}/resolve", follow_redirects=False)
    assert no_csrf.status_code == 403 and resolved(bobs) == (False, None)
    assert post(client, f"/teams/{team.id}/entries/{bobs}/resolve").status_code == 303
    assert resolved(bobs) == (True, _member_id("bob@example.com"))

    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{team.id}").text
    assert "waiting on the design review" in page  # still an entry of the day
    assert f"/entries/{bobs}/resolve" not in page and f"/entries/{adas}/resolve" in page
    assert post(client, f"/teams/{team.id}/entries/{adas}/resolve").status_code == 303
    assert 'id="open-blockers"' not in client.get(f"/teams/{team.id}").text
    done = write("ada@example.com", "shipped")
    refused = post(client, f"/teams/{team.id}/entries/{done}/resolve")
    assert refused.status_code == 400 and "is not a blocker" in refused.text
    assert post(client, f"/teams/{team.id}/entries/999999/resolve").status_code == 404


def _member_id(email: str) -> int:
    with session() as s:
        return s.execute(select(Member.id).where(Member.email == email)).scalar_one()
