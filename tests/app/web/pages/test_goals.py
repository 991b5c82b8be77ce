"""Open goals on the member's page and the team's day page, closed from the web (CSRF, no confirmation)."""

from datetime import timedelta

from sqlalchemy import select

from app.checkins import teams
from app.checkins.times import local_date
from app.db import session
from app.models import Entry, Member, utcnow
from tests.app.web.conftest import post, sign_in


def goals_of(team, email: str, *texts: str) -> list[int]:
    """Goals of ``email`` set yesterday (the team asks the standup questions); their ids."""
    yesterday = local_date(utcnow(), team.timezone) - timedelta(days=1)
    with session() as s:
        teams.update_team(s, team.id, now=utcnow(), questions="standup")
        m = s.execute(select(Member).where(Member.email == email)).scalar_one()
        rows = [
            Entry(team_id=team.id, member_id=m.id, day=yesterday, text=t, kind="goal", question=1)
            for t in texts
        ]
        s.add_all(rows)
        s.flush()
        return [e.id for e in rows]


def closed(eid: int) -> tuple:
    with session() as s:
        e = s.get(Entry, eid)
        return e.closed_as, e.closed_on


def test_a_member_closes_their_goal_from_their_page(client, team, sent):
    write, call = goals_of(team, "bob@example.com", "Write the docs", "Call the bank")
    sign_in(client, sent, "bob@example.com")
    assert closed(write) == ("", None)  # open
    with session() as s:
        bob_id = s.get(Entry, write).member_id
    page = client.get(f"/teams/{team.id}/members/{bob_id}")
    assert "Open goals" in page.text and "Write the docs" in page.text
    assert f'action="/teams/{team.id}/goals/{write}/close"' in page.text
    r = post(
        client,
        f"/teams/{team.id}/goals/{write}/close",
        {"how": "done", "back": f"/teams/{team.id}/members/{bob_id}"},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/teams/{team.id}/members/{bob_id}"
    assert closed(write)[0] == "done"
    page = client.get(f"/teams/{team.id}/members/{bob_id}")
    assert "Goal closed." in page.text
    assert "Write the docs" not in page.text.split('id="open-goals"')[1].split("</ul>")[0]
    # carried: closed, and a goal of today again, still open
    assert post(client, f"/teams/{team.id}/goals/{call}/close", {"how": "carried"}).status_code == 303
    how, on = closed(call)
    assert how == "carried"
    with session() as s:
        again = s.execute(select(Entry).where(Entry.text == "Call the bank", Entry.id != call)).scalar_one()
        assert again.kind == "goal" and again.closed_on is None and again.day == on


def test_the_day_page_shows_open_goals_and_an_admin_may_close_them(client, team, sent):
    (goal,) = goals_of(team, "bob@example.com", "Ship the release")
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{team.id}")
    assert "Goals still open" in page.text and "Ship the release" in page.text
    assert post(client, f"/teams/{team.id}/goals/{goal}/close", {"how": "done"}).status_code == 303
    assert closed(goal)[0] == "done"
    assert "Ship the release" not in client.get(f"/teams/{team.id}").text


def test_closing_a_goal_is_refused_without_csrf_by_another_member_or_with_a_bad_how(client, team, sent):
    (goal,) = goals_of(team, "ada@example.com", "Hire a designer")
    sign_in(client, sent, "bob@example.com")
    url = f"/teams/{team.id}/goals/{goal}/close"
    assert client.post(url, data={"how": "done"}, follow_redirects=False).status_code == 403  # no CSRF
    assert post(client, url, {"how": "done"}).status_code == 403  # not Bob's, and Bob is no admin
    sign_in(client, sent, "ada@example.com")
    bad = post(client, url, {"how": "maybe"})
    assert bad.status_code == 400 and "how must be one of done, carried" in bad.text
    assert post(client, f"/teams/{team.id}/goals/999999/close", {"how": "done"}).status_code == 404
    with session() as s:
        done = Entry(team_id=team.id, member_id=s.get(Entry, goal).member_id, day=utcnow().date(), text="x")
        s.add(done)
        s.flush()
        done_id = done.id
    r = post(client, f"/teams/{team.id}/goals/{done_id}/close", {"how": "done"})
    assert r.status_code == 400 and "is not a goal" in r.text
    assert closed(goal) == ("", None)


def test_a_goal_written_on_the_web_answers_the_teams_question_about_next(client, team, sent):
    goals_of(team, "bob@example.com")  # the standup questions
    sign_in(client, sent, "bob@example.com")
    today = local_date(utcnow(), team.timezone).isoformat()
    form = {"day": today, "text": "Ship 2.5\nBlocked: the release train", "kind": "goal"}
    assert post(client, f"/teams/{team.id}/entries", form).status_code == 303
    with session() as s:
        rows = s.execute(select(Entry.text, Entry.kind, Entry.question).order_by(Entry.id)).all()
    assert [tuple(r) for r in rows] == [("Ship 2.5", "goal", 1), ("the release train", "blocker", 2)]
    assert "Ship 2.5" in client.get(f"/teams/{team.id}").text.split('id="open-goals"')[1]
