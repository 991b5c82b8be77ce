"""/api/domains: add (keys made, records answered), verify against the local DNS server, list, remove."""

from app.db import session
from app.models import Team
from app.relay.api_tokens import create_token
from tests.app.web.api.test_messages import token
from tests.conftest import FIXED_NOW


def serve(local_dns, domain: dict, *, skip: tuple[str, ...] = ()) -> None:
    """Publish the records an API answer names on the local DNS server (all but ``skip``)."""
    for r in domain["records"]:
        if r["key"] not in skip:
            local_dns.records[(r["name"], r["type"])] = [r["value"]]
    local_dns.records[("reply.test", "MX")] = ["10 mx.reply.test"]


def other_team() -> int:
    with session() as s:
        t = Team(name="Other")
        s.add(t)
        s.flush()
        return t.id


def test_a_domain_is_added_verified_listed_and_removed(local_dns, client, team):
    h = token(team.id)
    r = client.post("/api/domains", json={"domain": "Example.ORG"}, headers=h)
    assert r.status_code == 201
    body = r.json()
    assert (body["domain"], body["team_id"], body["verified"]) == ("example.org", team.id, False)
    assert {x["key"] for x in body["records"]} == {
        "dkim:donebox-ed25519",
        "dkim:donebox-rsa",
        "spf",
        "dmarc",
        "return_path",
    }
    assert {x["status"] for x in body["records"]} == {"unchecked"}
    serve(local_dns, body, skip=("dkim:donebox-rsa",))
    r = client.post("/api/domains/example.org/verify", headers=h)
    assert r.status_code == 200
    assert (r.json()["verified"], r.json()["missing"]) == (False, ["dkim:donebox-rsa"])
    serve(local_dns, body)
    verified = client.post("/api/domains/example.org/verify", headers=h).json()
    assert verified["verified"] and verified["missing"] == [] and verified["verified_at"]
    listed = client.get("/api/domains", headers=h).json()["items"]
    assert [(d["domain"], d["verified"]) for d in listed] == [("example.org", True)]
    r = client.delete("/api/domains/example.org", headers=h)
    assert r.status_code == 200 and r.json() == {"domain": "example.org"}
    assert client.get("/api/domains", headers=h).json() == {"items": []}


def test_errors_name_the_field(client, team):
    h = token(team.id)
    cases = [
        ({}, 400, "domain is required"),
        ({"domain": 5}, 400, "domain must be a string"),
        ({"domain": "not a domain"}, 400, "domain: "),
        ({"domain": "mail.test"}, 400, "domain: mail.test is MAIL_FROM's domain"),
        ({"domain": "example.org", "team_id": 99999}, 404, "team_id: no team 99999"),
        ({"domain": "example.org", "team_id": 2**40}, 404, f"team_id: no team {2**40}"),
    ]
    for body, status, reason in cases:
        r = client.post("/api/domains", json=body, headers=h)
        assert (r.status_code, r.json()["error"][: len(reason)]) == (status, reason), body
    assert client.post("/api/domains", json={"domain": "example.org"}, headers=h).status_code == 201
    r = client.post("/api/domains", json={"domain": "example.org"}, headers=h)
    assert (r.status_code, r.json()["error"]) == (409, "domain: example.org is a sending domain already")
    r = client.post("/api/domains/nowhere.example/verify", headers=h)
    assert r.status_code == 404 and r.json()["error"].startswith("domain: nowhere.example is not")


def test_a_teams_token_reaches_its_own_and_every_teams_domains_only(client, team):
    other = other_team()
    admin = token()  # every team
    assert (
        client.post(
            "/api/domains", json={"domain": "other.example", "team_id": other}, headers=admin
        ).status_code
        == 201
    )
    assert (
        client.post("/api/domains", json={"domain": "shared.example"}, headers=admin).json()["team_id"]
        is None
    )
    h = token(team.id)
    assert [d["domain"] for d in client.get("/api/domains", headers=h).json()["items"]] == ["shared.example"]
    assert client.post("/api/domains/other.example/verify", headers=h).status_code == 404
    assert client.delete("/api/domains/other.example", headers=h).status_code == 404
    assert client.delete("/api/domains/shared.example", headers=h).status_code == 404  # not its own
    r = client.post("/api/domains", json={"domain": "mine.example", "team_id": other}, headers=h)
    assert (r.status_code, r.json()["error"]) == (404, f"team_id: no team {other}")
    assert len(client.get("/api/domains", headers=admin).json()["items"]) == 2


def test_changing_domains_needs_the_manage_scope_and_listing_them_read(client, team):
    with session() as s:
        raw = create_token(s, "sender", now=FIXED_NOW, team_id=team.id, scopes=("send", "read"))
        sender = create_token(s, "send only", now=FIXED_NOW, team_id=team.id, scopes=("send",))
    h = {"Authorization": f"Bearer {raw}"}
    r = client.post("/api/domains", json={"domain": "example.org"}, headers=h)
    assert r.status_code == 403 and "manage" in r.json()["error"]
    assert (
        client.post("/api/domains", json={"domain": "example.org"}, headers=token(team.id)).status_code == 201
    )
    for method, path in (("POST", "/api/domains/example.org/verify"), ("DELETE", "/api/domains/example.org")):
        r = client.request(method, path, headers=h)
        assert r.status_code == 403 and "manage" in r.json()["error"]
    assert [d["domain"] for d in client.get("/api/domains", headers=h).json()["items"]] == ["example.org"]
    assert client.get("/api/domains", headers={"Authorization": f"Bearer {sender}"}).status_code == 403
