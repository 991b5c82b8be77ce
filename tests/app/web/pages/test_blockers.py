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
    assert (
        r.status_code == 403
        and "Only its author, an admin or the blocker owner resolves a blocker." in r.text
    )
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


def test_a_blocker_owner_set_on_the_page_the_api_or_the_command_line_resolves_blockers(
    client, team, sent, capsys
):
    from app.checkins import teams
    from app.cli import main
    from tests.app.web.api.test_scopes import auth, make
    from tests.app.web.pages.test_settings import TEAM_FORM

    bob, olga = _member_id("bob@example.com"), _member_id("olga@example.com")
    with session() as s:  # a member of another team
        other = teams.create_team(s, "Other", "UTC", admin_email="eve@example.com", now=utcnow())
        eve = s.execute(select(Member.id).where(Member.team_id == other.id)).scalar_one()

    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{team.id}/settings").text
    assert 'id="blocker_owner"' in page and f'<option value="{bob}">Bob</option>' in page
    refused = post(client, f"/teams/{team.id}/settings", {**TEAM_FORM, "blocker_owner": str(eve)})
    assert refused.status_code == 422 and 'id="blocker_owner-error"' in refused.text
    assert "not a member of this team" in refused.text
    assert (
        post(client, f"/teams/{team.id}/settings", {**TEAM_FORM, "blocker_owner": str(bob)}).status_code
        == 303
    )
    assert f'<option value="{bob}" selected>' in client.get(f"/teams/{team.id}/settings").text

    olgas = write("olga@example.com", "Blocked: no access to the shared drive")
    with session() as s:  # the owner hears of it, not the admin
        assert s.execute(select(Notice.kind, Notice.member_id)).all() == [("blocker", bob)]
    sign_in(client, sent, "bob@example.com")  # the owner, not an admin, resolves Olga's blocker
    assert f"/entries/{olgas}/resolve" in client.get(f"/teams/{team.id}").text
    assert post(client, f"/teams/{team.id}/entries/{olgas}/resolve").status_code == 303
    assert resolved(olgas) == (True, bob)

    token = auth(make(team.id))
    r = client.patch(f"/api/teams/{team.id}/settings", json={"blocker_owner": eve}, headers=token)
    assert (
        r.status_code == 400 and "blocker_owner" in r.json()["error"] and "not a member" in r.json()["error"]
    )
    r = client.patch(f"/api/teams/{team.id}/settings", json={"blocker_owner": "bob"}, headers=token)
    assert r.status_code == 400 and "blocker_owner" in r.json()["error"]
    r = client.patch(f"/api/teams/{team.id}/settings", json={"blocker_owner": olga}, headers=token)
    assert r.status_code == 200 and r.json()["blocker_owner"] == olga
    r = client.patch(f"/api/teams/{team.id}/settings", json={"blocker_owner": None}, headers=token)
    assert r.status_code == 200 and r.json()["blocker_owner"] is None
    assert client.get(f"/api/teams/{team.id}/settings", headers=token).json()["blocker_owner"] is None

    assert main(["team-settings", str(team.id), "--blocker-owner", str(eve)]) == 2
    assert "not a member of this team" in capsys.readouterr().err
    assert main(["team-settings", str(team.id), "--blocker-owner", str(olga)]) == 0
    assert f"blocker_owner={olga}" in capsys.readouterr().out
    bobs = write("bob@example.com", "Blocked: the build is red")
    sign_in(client, sent, "olga@example.com")  # an observer named owner resolves too
    assert post(client, f"/teams/{team.id}/entries/{bobs}/resolve").status_code == 303
    assert main(["team-settings", str(team.id), "--blocker-owner", "0"]) == 0
    assert "blocker_owner=\n" in capsys.readouterr().out
