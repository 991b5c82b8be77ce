"""Comments (replies to the digest) in the JSON API: a team's by day or span, an entry's in the entry."""

from datetime import UTC, date, datetime

from sqlalchemy import select

from app.db import session
from app.models import Comment, Entry, Member
from tests.app.web.api.test_api import token_for
from tests.app.web.api.test_scopes import auth, make
from tests.app.web.test_routes import other_team

AT = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)


def comments_of(team_id: int) -> dict[str, int]:
    """Bob's entry of the 20th, and three comments on it, on Ada and on the 21st; ids by name."""
    with session() as s:
        people = dict(s.execute(select(Member.name, Member.id).where(Member.team_id == team_id)).all())
        e = Entry(team_id=team_id, member_id=people["Bob"], day=date(2026, 11, 20), text="Shipped the export")
        s.add(e)
        s.flush()
        ids = {"entry": e.id, **people}
        for name, day, entry_id, member_id, author, text in (
            ("on_entry", date(2026, 11, 20), e.id, None, people["Ada"], "Which customers asked?"),
            (
                "on_member",
                date(2026, 11, 20),
                None,
                people["Ada"],
                people["Bob"],
                "Ada, thanks for the review",
            ),
            ("on_day", date(2026, 11, 21), None, None, people["Olga"], "A quiet Saturday"),
        ):
            c = Comment(
                team_id=team_id,
                day=day,
                entry_id=entry_id,
                member_id=member_id,
                author_id=author,
                text=text,
                created_at=AT,
            )
            s.add(c)
            s.flush()
            ids[name] = c.id
        return ids


def test_a_teams_comments_are_listed_by_day_or_span_newest_first_and_an_entry_carries_its_own(client, team):
    ids = comments_of(team.id)
    h = auth(make(team.id, "read"))
    base = f"/api/teams/{team.id}/comments"
    everything = client.get(base, headers=h).json()
    assert [c["id"] for c in everything["comments"]] == [ids["on_day"], ids["on_member"], ids["on_entry"]]
    assert everything["next_before"] is None
    on_entry = everything["comments"][-1]
    assert on_entry == {
        "id": ids["on_entry"],
        "team_id": team.id,
        "day": "2026-11-20",
        "author_id": ids["Ada"],
        "on": "entry",
        "entry_id": ids["entry"],
        "member_id": None,
        "text": "Which customers asked?",
        "inbound_id": None,
        "created_at": "2026-11-24T08:30:00+00:00",
    }
    assert {c["on"]: (c["entry_id"], c["member_id"]) for c in everything["comments"]} == {
        "entry": (ids["entry"], None),
        "member": (None, ids["Ada"]),
        "day": (None, None),
    }
    day = client.get(base, headers=h, params={"day": "2026-11-20"}).json()["comments"]
    assert [c["id"] for c in day] == [ids["on_member"], ids["on_entry"]]
    span = client.get(base, headers=h, params={"from": "2026-11-21", "to": "2026-11-30"}).json()["comments"]
    assert [c["id"] for c in span] == [ids["on_day"]]
    assert client.get(base, headers=h, params={"day": "2026-11-22"}).json()["comments"] == []
    first = client.get(base, headers=h, params={"limit": "2"}).json()  # pages by before=
    assert [c["id"] for c in first["comments"]] == [ids["on_day"], ids["on_member"]]
    rest = client.get(base, headers=h, params={"limit": "2", "before": first["next_before"]}).json()
    assert [c["id"] for c in rest["comments"]] == [ids["on_entry"]] and rest["next_before"] is None

    entry = client.get(f"/api/entries/{ids['entry']}", headers=h).json()
    assert entry["text"] == "Shipped the export" and entry["comments"] == [on_entry]
    listed = client.get(f"/api/teams/{team.id}/entries", headers=h).json()["entries"]
    assert "comments" not in listed[0]  # the list stays one read


def test_bad_comment_queries_are_a_400_naming_the_field(client, team):
    h = auth(make(team.id, "read"))
    base = f"/api/teams/{team.id}/comments"
    for params, field in (
        ({"day": "2026-13-01"}, "day"),
        ({"day": "yesterday"}, "day"),
        ({"from": "2026-11-31"}, "from"),
        ({"to": "x"}, "to"),
        ({"day": "2026-11-20", "from": "2026-11-01"}, "day"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"before": "0"}, "before"),
    ):
        r = client.get(base, headers=h, params=params)
        assert r.status_code == 400 and field in r.json()["error"], (params, r.text)


def test_a_span_in_the_wrong_order_is_a_422_as_in_the_export(client, team):
    h = auth(make(team.id, "read"))
    params = {"from": "2026-11-21", "to": "2026-11-20"}
    for path in ("comments", "export"):
        r = client.get(f"/api/teams/{team.id}/{path}", headers=h, params=params)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"] == "from (2026-11-21) is after to (2026-11-20)"


def test_another_teams_token_or_one_without_read_is_refused(client, team):
    ids = comments_of(team.id)
    foreign = token_for(other_team())
    assert client.get(f"/api/teams/{team.id}/comments", headers=foreign).status_code == 404
    assert client.get(f"/api/entries/{ids['entry']}", headers=foreign).status_code == 404
    assert client.get(f"/api/teams/{team.id}/comments").status_code == 401
    r = client.get(f"/api/teams/{team.id}/comments", headers=auth(make(team.id, "send")))
    assert r.status_code == 403 and "read" in r.json()["error"]
    instance = client.get(f"/api/teams/{team.id}/comments", headers=token_for())  # reaches every team
    assert len(instance.json()["comments"]) == 3
