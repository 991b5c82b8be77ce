"""GET /api/teams/{id}/participation and /api/teams/{id}/export: answers, shapes and refusals."""

import csv
import io
import json
from datetime import timedelta

import pytest

from app.checkins.times import local_date
from app.db import session
from app.models import Comment, Entry, utcnow
from app.relay.api_tokens import create_token
from tests.app.checkins.test_participation import FIRST, LAST, three_weeks


def auth(team_id=None, scopes=("read",)) -> dict:
    with session() as s:
        return {
            "Authorization": "Bearer " + create_token(s, "t", now=utcnow(), team_id=team_id, scopes=scopes)
        }


@pytest.fixture
def world(db):
    return three_weeks()


def test_participation_answers_each_member_and_the_team_over_the_span(client, world):
    r = client.get(
        f"/api/teams/{world['team']}/participation?from={FIRST}&to={LAST}", headers=auth(world["team"])
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["team_id"], body["from"], body["to"]) == (world["team"], FIRST.isoformat(), LAST.isoformat())
    assert body["team"]["days_asked"] == 41 and body["team"]["days_answered"] == 35
    assert body["team"]["answer_rate"] == pytest.approx(35 / 41)
    assert (body["team"]["current_streak"], body["team"]["best_streak"]) == (1, 6)
    bob = {m["name"]: m for m in body["members"]}["Bob"]
    assert bob == {
        "member_id": world["Bob"],
        "name": "Bob",
        "email": "bob@tally.example",
        "days_asked": 12,
        "days_answered": 11,
        "answer_rate": pytest.approx(11 / 12),
        "current_streak": 3,
        "best_streak": 8,
        "average_reply_s": pytest.approx(6300),
    }
    assert [m["name"] for m in body["members"]] == ["Ada", "Bob", "Cy"]
    assert len(body["days"]) == 21 and body["days"][3] == {"day": "2026-11-05", "asked": 3, "answered": 1}


def test_participation_defaults_to_the_last_30_days_of_the_team(client, world):
    body = client.get(f"/api/teams/{world['team']}/participation", headers=auth()).json()
    today = local_date(utcnow(), "UTC")
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert len(body["days"]) == 30


@pytest.mark.parametrize(
    "query, status, said",
    [
        ("from=2026-13-01", 400, "from must be YYYY-MM-DD"),
        ("to=yesterday", 400, "to must be YYYY-MM-DD"),
        ("from=0001-01-01", 422, "from must be from 1900-01-01"),
        ("from=2025-01-01&to=2026-01-02", 422, "is 367 days; at most 366"),
        ("from=2026-11-02&to=2026-11-01", 422, "from (2026-11-02) is after to (2026-11-01)"),
    ],
)
def test_participation_refuses_a_bad_span_naming_it(client, world, query, status, said):
    r = client.get(f"/api/teams/{world['team']}/participation?{query}", headers=auth(world["team"]))
    assert r.status_code == status and said in r.json()["error"], r.text


@pytest.mark.parametrize("path", ["participation", "export"])
def test_another_teams_token_gets_404_and_a_token_without_read_gets_403(client, world, team, path):
    r = client.get(f"/api/teams/{world['team']}/{path}", headers=auth(team.id))
    assert r.status_code == 404 and r.json() == {"error": "no such team"}
    r = client.get(f"/api/teams/{world['team']}/{path}", headers=auth(world["team"], ("send", "manage")))
    assert r.status_code == 403 and "'read' scope" in r.json()["error"]
    assert client.get(f"/api/teams/{world['team']}/{path}").status_code == 401


def test_export_streams_csv_json_and_ndjson_of_the_span(client, world):
    with session() as s:
        s.add(Entry(team_id=world["team"], member_id=world["Cy"], day=FIRST, text="@cmd run", kind="blocker"))
    h, base = auth(world["team"]), f"/api/teams/{world['team']}/export"
    r = client.get(f"{base}?from={FIRST}&to={FIRST}", headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "content-length" not in r.headers  # streamed: the length is not known before the end
    assert r.headers["content-disposition"] == (
        f'attachment; filename="donebox-team-{world["team"]}-2026-11-02-2026-11-02.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4 and {x["day"] for x in rows} == {"2026-11-02"}
    assert {(x["member"], x["kind"], x["text"]) for x in rows if x["kind"] == "blocker"} == {
        ("Cy", "blocker", "'@cmd run")
    }
    whole = client.get(f"{base}?format=json", headers=h)
    assert whole.headers["content-type"] == "application/json"
    entries = whole.json()
    # Ada's 14 answers, Bob's 11 (two posts on the 4th), Cy's 10, the weekend and paused notes, the blocker
    assert len(entries) == 14 + 12 + 10 + 2 + 1
    assert set(entries[0]) == {"id", "day", "member_id", "member", "email", "kind", "text", "created_at"} | {
        "status",
        "entry_id",
        "about_member_id",
    }
    lines = client.get(f"{base}?format=ndjson&from=2026-11-20", headers=h).text.splitlines()
    assert {json.loads(x)["day"] for x in lines} == {"2026-11-20"} and len(lines) == 3


def test_the_export_has_the_comments_and_the_status_of_goals_and_blockers(client, world):
    with session() as s:
        goal = Entry(team_id=world["team"], member_id=world["Cy"], day=FIRST, text="the report", kind="goal")
        blocker = Entry(
            team_id=world["team"], member_id=world["Cy"], day=FIRST, text="no key", kind="blocker",
            resolved_at=utcnow(),
        )  # fmt: skip
        s.add_all([goal, blocker])
        s.flush()
        s.add(
            Comment(
                team_id=world["team"], day=FIRST, entry_id=goal.id, author_id=world["Cy"], text="due Friday"
            )
        )
        goal_id, blocker_id = goal.id, blocker.id
    h, base = auth(world["team"]), f"/api/teams/{world['team']}/export"
    rows = list(csv.DictReader(io.StringIO(client.get(f"{base}?from={FIRST}&to={FIRST}", headers=h).text)))
    assert {(x["kind"], x["text"], x["status"]) for x in rows if x["member"] == "Cy"} >= {
        ("goal", "the report", "open"),
        ("blocker", "no key", "resolved"),
        ("comment", "due Friday", ""),
    }
    comment = next(x for x in rows if x["kind"] == "comment")
    assert comment["entry_id"] == str(goal_id) and rows[-1] == comment  # after the day's entries
    on_json = [x for x in client.get(f"{base}?format=json", headers=h).json() if x["kind"] == "comment"]
    assert [(x["text"], x["entry_id"], x["about_member_id"]) for x in on_json] == [
        ("due Friday", goal_id, None)
    ]
    assert blocker_id in {x["id"] for x in client.get(f"{base}?format=json", headers=h).json()}


@pytest.mark.parametrize(
    "query, status, said",
    [
        ("format=xlsx", 400, "format must be one of csv, json, ndjson"),
        ("from=2026-02-30", 400, "from must be YYYY-MM-DD"),
        ("to=9999-01-01", 422, "to must be from 1900-01-01 to 2999-12-31"),
        ("from=2026-11-03&to=2026-11-02", 422, "from (2026-11-03) is after to (2026-11-02)"),
    ],
)
def test_export_refuses_a_bad_format_or_span_naming_it(client, world, query, status, said):
    r = client.get(f"/api/teams/{world['team']}/export?{query}", headers=auth())
    assert r.status_code == status and said in r.json()["error"], r.text
