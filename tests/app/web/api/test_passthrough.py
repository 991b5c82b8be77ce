"""GET/PUT /api/relay/pass-through: the relay's pass-through mode by API token (read, manage scopes)."""

from app.db import session
from app.relay import passthrough
from tests.app.relay.test_passthrough import NOW, api_row, kinds, send
from tests.app.web.api.test_scopes import auth, make

URL = "/api/relay/pass-through"


def test_an_operator_token_reads_and_switches_pass_through_and_bulk_mail_follows(client, team):
    token = auth(make())
    r = client.get(URL, headers=token)
    assert r.status_code == 200
    assert r.json() == {
        "mode": "auto",
        "active": False,
        "since": None,
        "oldest_waiting_s": None,
        "evaluated_at": None,
        "threshold_s": 300,
        "off_below_s": 150,
        "switched_on": 0,
        "passed_through": 0,
        "mode_by": None,
        "mode_at": None,
    }
    r = client.put(URL, json={"mode": "on"}, headers=token)
    assert r.status_code == 200
    body = r.json()
    assert (body["mode"], body["active"], body["switched_on"], body["mode_by"]) == (
        "on",
        True,
        1,
        "API token 'app'",
    )
    assert body["since"] == body["mode_at"] and body["since"]
    bulk = api_row("bulk", at=NOW, batch_id="nl-1")
    assert send([bulk], NOW)[0] == {bulk: "sent"} and "pass_through" in kinds(bulk)
    assert client.get(URL, headers=token).json()["passed_through"] == 1

    r = client.put(URL, json={"mode": "auto"}, headers=token)
    assert (r.status_code, r.json()["mode"], r.json()["active"]) == (200, "auto", False)
    later = api_row("later", at=NOW, batch_id="nl-1")
    assert send([later], NOW)[0] == {later: "sent"} and "pass_through" not in kinds(later)


def test_switching_needs_the_manage_scope_on_a_token_of_every_team_and_reading_the_read_scope(client, team):
    for scopes in (("read",), ("send",), ("send", "read")):
        r = client.put(URL, json={"mode": "on"}, headers=auth(make(None, *scopes)))
        assert r.status_code == 403 and "'manage' scope" in r.json()["error"]
    r = client.get(URL, headers=auth(make(None, "send", "manage")))
    assert r.status_code == 403 and "'read' scope" in r.json()["error"]
    assert client.get(URL, headers=auth(make(team.id, "read"))).status_code == 200
    team_token = auth(make(team.id, "manage"))
    r = client.put(URL, json={"mode": "on"}, headers=team_token)
    assert r.status_code == 403 and "token of every team" in r.json()["error"]
    assert client.get(URL).status_code == 401
    with session() as s:
        assert passthrough.current(s).active is False and passthrough.current(s).mode == "auto"


def test_a_bad_mode_is_refused_naming_the_field(client, team):
    token = auth(make())
    for body, reason in (
        ({"mode": "sometimes"}, "mode must be one of auto, on, off"),
        ({}, "mode is required"),
        ({"mode": 1}, "mode must be a string"),
    ):
        r = client.put(URL, json=body, headers=token)
        assert r.status_code == 400 and reason in r.json()["error"], r.json()
    r = client.put(
        URL, content=b"mode=on", headers={**token, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
