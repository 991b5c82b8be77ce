"""/api/suppressions: list, add, remove, import and export, and what a team's token reaches."""

import csv
import io
from datetime import timedelta

from app.db import session
from app.models import Team, utcnow
from app.relay import suppressions
from tests.app.web.api.test_messages import token


def other_team() -> int:
    with session() as s:
        t = Team(name="Other")
        s.add(t)
        s.flush()
        return t.id


def entry(address: str, reason: str = "bounce", team_id=None, **kw) -> None:
    with session() as s:
        assert suppressions.add(s, address, reason, detail="seeded", team_id=team_id, now=utcnow(), **kw)


def csv_post(client, text: str, headers: dict, content_type: str = "text/csv"):
    return client.post(
        "/api/suppressions/import",
        content=text.encode(),
        headers={**headers, "Content-Type": content_type},
    )


def test_an_address_is_added_listed_and_removed(client, team):
    h = token(team.id)
    r = client.post("/api/suppressions", json={"address": "Ada@Example.com", "reason": "manual"}, headers=h)
    assert r.status_code == 201
    body = r.json()
    assert (body["address"], body["reason"], body["team_id"], body["active"]) == (
        "ada@example.com",
        "manual",
        team.id,
        True,
    )
    assert body["expires_at"] is None and "test" in body["detail"]
    listed = client.get("/api/suppressions", headers=h).json()
    assert [i["address"] for i in listed["items"]] == ["ada@example.com"] and listed["next_before"] is None
    r = client.delete("/api/suppressions/ada@example.com", headers=h)
    assert r.status_code == 200 and r.json() == {"address": "ada@example.com", "reason": "manual"}
    assert client.get("/api/suppressions", headers=h).json()["items"] == []
    with session() as s:
        assert suppressions.lookup(s, "ada@example.com") is None


def test_an_entry_with_an_expiry_stops_suppressing_after_it(client, team):
    soon = (utcnow() + timedelta(days=2)).isoformat()
    r = client.post(
        "/api/suppressions", json={"address": "bob@example.com", "expires_at": soon}, headers=token()
    )
    assert r.status_code == 201 and r.json()["expires_at"] is not None
    with session() as s:
        assert suppressions.reasons(s, ["bob@example.com"], now=utcnow()) == {"bob@example.com": "manual"}
        assert suppressions.reasons(s, ["bob@example.com"], now=utcnow() + timedelta(days=3)) == {}


def test_errors_name_the_field(client, team):
    h = token(team.id)
    cases = [
        ({"address": "not an address"}, 400, "address"),
        ({"address": "a@example.com", "reason": "spam"}, 400, "reason"),
        ({"address": "a@example.com", "expires_at": "tomorrow"}, 400, "expires_at"),
        ({"address": "a@example.com", "expires_at": "2001-01-01T00:00:00Z"}, 400, "expires_at"),
        ({"reason": "manual"}, 400, "address"),
        ({"address": "a@example.com", "team_id": 999999}, 404, "team_id"),
    ]
    for body, status, name in cases:
        r = client.post("/api/suppressions", json=body, headers=h)
        assert (r.status_code, r.json()["error"].startswith(name)) == (status, True), (body, r.json())
    r = client.get("/api/suppressions?reason=spam", headers=h)
    assert r.status_code == 400 and "reason" in r.json()["error"]


def test_adding_what_is_there_is_a_409_and_the_paging_follows_before(client, team):
    h = token()
    for i in range(3):
        assert (
            client.post("/api/suppressions", json={"address": f"p{i}@example.com"}, headers=h).status_code
            == 201
        )
    r = client.post("/api/suppressions", json={"address": "p0@example.com"}, headers=h)
    assert r.status_code == 409 and r.json()["error"].startswith("address:")
    page = client.get("/api/suppressions?limit=2", headers=h).json()
    assert [i["address"] for i in page["items"]] == ["p2@example.com", "p1@example.com"]
    rest = client.get(f"/api/suppressions?limit=2&before={page['next_before']}", headers=h).json()
    assert [i["address"] for i in rest["items"]] == ["p0@example.com"] and rest["next_before"] is None
    found = client.get("/api/suppressions?q=p1&reason=manual", headers=h).json()["items"]
    assert [i["address"] for i in found] == ["p1@example.com"]


def test_a_team_token_sees_and_changes_only_its_teams_entries(client, team):
    other = other_team()
    entry("ours@example.com", team_id=team.id)
    entry("theirs@example.com", team_id=other)
    entry("everyones@example.com")  # instance-wide
    h = token(team.id)
    assert [i["address"] for i in client.get("/api/suppressions", headers=h).json()["items"]] == [
        "ours@example.com"
    ]
    assert client.get(f"/api/suppressions?team_id={other}", headers=h).status_code == 404
    for address in ("theirs@example.com", "everyones@example.com"):
        assert client.delete(f"/api/suppressions/{address}", headers=h).status_code == 404
        r = client.post("/api/suppressions", json={"address": address}, headers=h)
        assert r.status_code == 409 and r.json()["error"].startswith("address:")
    r = client.post("/api/suppressions", json={"address": "new@example.com", "team_id": other}, headers=h)
    assert r.status_code == 404
    assert "theirs@example.com" not in client.get("/api/suppressions/export", headers=h).text
    with session() as s:  # nothing of theirs changed
        assert suppressions.lookup(s, "theirs@example.com").team_id == other
        assert suppressions.lookup(s, "everyones@example.com").team_id is None
    # the operator-wide token reaches everything
    everyone = token()
    listed = client.get("/api/suppressions", headers=everyone).json()["items"]
    assert {i["address"] for i in listed} == {
        "ours@example.com",
        "theirs@example.com",
        "everyones@example.com",
    }
    assert [
        i["address"]
        for i in client.get(f"/api/suppressions?team_id={other}", headers=everyone).json()["items"]
    ] == ["theirs@example.com"]
    assert client.delete("/api/suppressions/theirs@example.com", headers=everyone).status_code == 200


def test_a_csv_import_takes_the_good_lines_and_reports_the_bad_by_number(client, team):
    entry("weak@example.com", "unsubscribe", team_id=team.id)
    text = (
        "address,reason,expires_at\n"
        "one@example.com\n"
        "not-an-address\n"
        "two@example.com,bounce\n"
        "three@example.com,whatever\n"
        "\n"
        f"four@example.com,manual,{(utcnow() + timedelta(days=5)).isoformat()}\n"
        "five@example.com,manual,yesterday\n"
        "weak@example.com,complaint\n"
        "six@example.com,manual,,extra\n"
    )
    r = csv_post(client, text, token(team.id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["imported"], body["unchanged"], body["more_errors"]) == (4, 0, 0)
    assert [e.split(":")[0] for e in body["errors"]] == ["line 3", "line 5", "line 8", "line 10"]
    assert (
        "address" in body["errors"][0] and "reason" in body["errors"][1] and "expires_at" in body["errors"][2]
    )
    with session() as s:
        got = {
            e.email: (e.reason, e.team_id, e.expires_at is not None)
            for e in suppressions.page(s, team_ids=None)
        }
    assert got == {
        "one@example.com": ("manual", team.id, False),
        "two@example.com": ("bounce", team.id, False),
        "four@example.com": ("manual", team.id, True),
        "weak@example.com": ("complaint", team.id, False),
    }


def test_a_csv_import_with_nothing_good_or_not_csv_is_refused(client, team):
    h = token()
    r = csv_post(client, "nope\nstill nope\n", h)
    assert r.status_code == 400 and "line 1" in r.json()["error"] and "line 2" in r.json()["error"]
    assert csv_post(client, "a@example.com\n", h, "application/json").status_code == 415
    big = "a@example.com\n" * (suppressions.MAX_IMPORT_BYTES // 14 + 1)
    assert csv_post(client, big, h).status_code == 413


def test_a_team_token_cannot_import_over_another_teams_entry(client, team):
    entry("theirs@example.com", team_id=other_team())
    r = csv_post(client, "theirs@example.com,manual\nmine@example.com\n", token(team.id))
    assert r.status_code == 200
    assert r.json()["imported"] == 1 and r.json()["errors"][0].startswith("line 1: address:")


def test_an_export_imports_back_to_the_same_list(client, team):
    later = utcnow().replace(microsecond=0) + timedelta(days=3)
    entry("a@example.com", "bounce")
    entry("b@example.com", "manual", expires_at=later)
    with session() as s:
        suppressions.add(
            s,
            "old@example.com",
            "soft_bounce",
            expires_at=utcnow() - timedelta(days=1),
            now=utcnow() - timedelta(days=9),
        )
    h = token()
    r = client.get("/api/suppressions/export", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["address", "reason", "expires_at"]
    assert "old@example.com" not in r.text  # expired: it suppresses nothing
    exported = r.text
    for address in ("a@example.com", "b@example.com"):
        client.delete(f"/api/suppressions/{address}", headers=h)
    r = csv_post(client, exported, h)
    assert r.status_code == 200 and r.json()["errors"] == [], r.json()
    again = client.get("/api/suppressions/export", headers=h).text
    assert again == exported
    assert ["b@example.com", "manual", later.isoformat()] in rows
