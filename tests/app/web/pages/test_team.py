from datetime import timedelta

from sqlalchemy import select

from app.checkins import entries
from app.checkins.entries import month_ago
from app.checkins.times import local_date
from app.db import session
from app.models import Entry, Member, utcnow
from tests.app.web.conftest import post, sign_in


def today():
    return local_date(utcnow(), "Europe/Berlin")


def member(email):
    with session() as s:
        return s.execute(select(Member).where(Member.email == email)).scalar_one()


def write(email, text, day=None, kind="done"):
    with session() as s:
        m = s.execute(select(Member).where(Member.email == email)).scalar_one()
        return [e.id for e in entries.add(s, m, day or today(), text, kind, now=utcnow())]


def test_the_day_shows_entries_by_member_with_goals_blockers_tags_and_mentions(client, team, sent):
    write("ada@example.com", "shipped #search with @bob")
    write("ada@example.com", "review the release", kind="goal")
    write("bob@example.com", "waiting on the DNS change", kind="blocker")
    sign_in(client, sent, "olga@example.com")
    page = client.get(f"/teams/{team.id}").text
    assert "Ada" in page and "Bob" in page
    assert '<span class="goal">Goal:</span> review the release' in page
    assert '<span class="blocker">Blocked:</span> waiting on the DNS change' in page
    assert f'<a class="tag" href="/teams/{team.id}/search?tag=search">#search</a>' in page
    assert f'<a class="mention" href="/teams/{team.id}/search?mention=bob">@bob</a>' in page


def test_a_past_day_is_shown_and_the_day_parameter_is_checked(client, team, sent):
    yesterday = today() - timedelta(days=1)
    write("bob@example.com", "yesterday's thing", day=yesterday)
    sign_in(client, sent, "bob@example.com")
    assert "yesterday&#39;s thing" in client.get(f"/teams/{team.id}?day={yesterday}").text
    assert "yesterday&#39;s thing" not in client.get(f"/teams/{team.id}").text
    assert client.get(f"/teams/{team.id}?day=soon").status_code == 400


def test_search_finds_entries_by_words_tags_and_mentions_and_follows_edits(client, team, sent):
    a = write("ada@example.com", "migrated the billing database #infra")[0]
    write("bob@example.com", "wrote the onboarding guide for @ada")
    sign_in(client, sent, "bob@example.com")
    url = f"/teams/{team.id}/search"
    assert "billing database" in client.get(url, params={"q": "billing"}).text
    assert "billing" not in client.get(url, params={"q": "onboarding"}).text
    assert "billing" in client.get(url, params={"tag": "infra"}).text
    assert "onboarding guide" in client.get(url, params={"mention": "ada"}).text
    # operators of FTS syntax in the query are plain words, never a 500
    for q in ('"', "AND OR NOT", "billing*", "a:b", "(", "NEAR(", "'; DROP TABLE entry; --"):
        assert client.get(url, params={"q": q}).status_code == 200
    with session() as s:
        entries.update(s, s.get(Entry, a), "migrated the invoices store", "done")
    assert "invoices" in client.get(url, params={"q": "invoices"}).text
    assert "invoices" not in client.get(url, params={"q": "billing"}).text


def test_search_never_shows_another_teams_entries(client, team, sent):
    from tests.app.web.test_routes import other_team

    other_team()
    write("zed@other.example", "secret billing plan")
    write("bob@example.com", "public billing work")
    sign_in(client, sent, "bob@example.com")
    page = client.get(f"/teams/{team.id}/search", params={"q": "billing"}).text
    assert "public billing" in page and "secret" not in page


def test_a_member_adds_an_entry_from_the_web(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    r = post(client, f"/teams/{team.id}/entries", {"text": "- one\n- two #web", "kind": "done"})
    assert r.status_code == 303
    with session() as s:
        rows = s.execute(select(Entry.text, Entry.tags, Entry.day).order_by(Entry.id)).all()
    assert [(t, g) for t, g, _ in rows] == [("one", ""), ("two #web", "web")] and rows[0][2] == today()


def test_an_empty_or_future_entry_is_refused_with_a_reason(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    r = post(client, f"/teams/{team.id}/entries", {"text": "  "})
    assert r.status_code == 422 and "empty" in r.text
    future = (today() + timedelta(days=2)).isoformat()
    assert post(client, f"/teams/{team.id}/entries", {"text": "x", "day": future}).status_code == 422
    assert post(client, f"/teams/{team.id}/entries", {"text": "x", "kind": "boast"}).status_code == 422


def test_an_observer_cannot_add_entries(client, team, sent):
    sign_in(client, sent, "olga@example.com")
    assert post(client, f"/teams/{team.id}/entries", {"text": "x"}).status_code == 403


def test_a_member_edits_and_deletes_their_own_entry_but_not_others(client, team, sent):
    mine = write("bob@example.com", "first draft")[0]
    theirs = write("ada@example.com", "ada's entry")[0]
    sign_in(client, sent, "bob@example.com")
    base = f"/teams/{team.id}/entries"
    assert client.get(f"{base}/{mine}/edit").status_code == 200
    assert post(client, f"{base}/{mine}/edit", {"text": "final #v2", "kind": "goal"}).status_code == 303
    with session() as s:
        e = s.get(Entry, mine)
        assert (e.text, e.kind, e.tags) == ("final #v2", "goal", "v2")
    assert client.get(f"{base}/{theirs}/edit").status_code == 403
    assert post(client, f"{base}/{theirs}/edit", {"text": "hijack"}).status_code == 403
    assert post(client, f"{base}/{theirs}/delete").status_code == 403
    assert post(client, f"{base}/{mine}/delete", {"confirm": "yes"}).status_code == 303
    with session() as s:
        assert s.get(Entry, mine) is None and s.get(Entry, theirs).text == "ada's entry"


def test_a_members_history_lists_their_days(client, team, sent):
    write("bob@example.com", "old work", day=today() - timedelta(days=30))
    write("bob@example.com", "new work")
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{team.id}/members/{member('bob@example.com').id}").text
    assert page.index("new work") < page.index("old work")


def test_on_this_day_shows_a_week_a_month_and_a_year_ago(client, team, sent):
    t = today()
    write("bob@example.com", "week-old thing", day=t - timedelta(days=7))
    write("bob@example.com", "month-old thing", day=month_ago(t))
    write("bob@example.com", "year-old thing", day=month_ago(t, 12))
    sign_in(client, sent, "bob@example.com")
    page = client.get(f"/teams/{team.id}").text
    assert "On this day" in page
    for label, text in (("A week ago", "week-old"), ("A month ago", "month-old"), ("A year ago", "year-old")):
        assert label in page and text in page


def test_month_ago_clamps_to_the_end_of_the_month():
    from datetime import date

    assert month_ago(date(2026, 3, 31)) == date(2026, 2, 28)
    assert month_ago(date(2028, 2, 29), 12) == date(2027, 2, 28)
    assert month_ago(date(2026, 1, 15)) == date(2025, 12, 15)
