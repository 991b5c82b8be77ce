"""GET /api/inbound/{id} and /api/inbound?state=: bearer API tokens, team scoping, the documented shape."""

from __future__ import annotations

import base64

import pytest

from app.db import session
from app.models import Member, Team
from app.relay.api_tokens import create_token
from jobs.broker import drain
from tests.app.web.hooks.test_inbound_providers import SG_AUTH, configure  # noqa: F401 - fixture
from tests.conftest import FIXED_NOW
from tests.parsers.test_providers import payload

FIELDS = {
    "id", "provider", "message_id", "from", "from_name", "to", "cc", "subject", "date", "text", "html",
    "reply_text", "attachments", "inline", "spf", "dkim", "state", "error", "member_id", "entries",
    "cut_at", "cut_rule", "cut_confidence",
}  # fmt: skip


def token(team_id: int | None = None) -> dict:
    with session() as s:
        return {"Authorization": "Bearer " + create_token(s, "test", now=FIXED_NOW, team_id=team_id)}


def post_sendgrid(client, path: str, to: str | None = None) -> int:
    p = payload(path)
    body = p.body
    if to is not None:
        body = body.replace(b"reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test", to.encode())
    if to and "elsewhere" in to:  # a stranger writing to some other address: nobody we know
        body = body.replace(b"ada@example.com", b"eve@example.org")
    auth = "Basic " + base64.b64encode(SG_AUTH.encode()).decode()
    r = client.post(
        "/inbound/sendgrid", content=body, headers={"Content-Type": p.content_type, "Authorization": auth}
    )
    assert r.status_code == 200
    drain()
    return r.json()["id"]


@pytest.fixture
def client(configure):  # noqa: F811
    return configure()


def two_teams() -> tuple[int, int, int]:
    """(team A, team B, Ada of team A)."""
    from app.checkins.reply_tokens import reply_address

    with session() as s:
        a, b = Team(name="A"), Team(name="B")
        s.add_all([a, b])
        s.flush()
        ada = Member(team_id=a.id, email="ada@example.com", name="Ada")
        s.add(ada)
        s.flush()
        return (
            a.id,
            b.id,
            ada.id,
            reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", ada.id, FIXED_NOW.date()),
        )


def test_a_processed_message_reads_back_with_every_documented_field(client):
    _, _, ada, addr = two_teams()
    iid = post_sendgrid(client, "sendgrid/parsed_attachments.multipart", to=addr)
    r = client.get(f"/api/inbound/{iid}", headers=token())
    assert r.status_code == 200
    doc = r.json()
    assert FIELDS <= set(doc)
    assert doc["state"] == "processed" and doc["member_id"] == ada and doc["from"] == "ada@example.com"
    assert doc["attachments"] == [
        {
            "index": 0,
            "filename": "report.pdf",
            "raw_filename": "report.pdf",
            "content_type": "application/pdf",
            "size": 45,
        },
        {
            "index": 1,
            "filename": "notes.txt",
            "raw_filename": "notes.txt",
            "content_type": "text/plain",
            "size": 12,
        },
    ]
    assert doc["inline"] == []
    assert (
        doc["reply_text"] == "See the report attached."
        and doc["entries"][0]["text"] == "See the report attached."
    )
    assert doc["spf"] == "pass" and doc["date"] == "2026-11-23T16:53:04+00:00"
    assert (doc["cut_at"], doc["cut_rule"], doc["cut_confidence"]) == (None, "", "high")  # nothing was cut


def test_the_list_filters_by_state(client):
    _, _, _, addr = two_teams()
    ok = post_sendgrid(client, "sendgrid/parsed_utf8.multipart", to=addr)
    stray = post_sendgrid(client, "sendgrid/parsed_koi8-r.multipart", to="nobody@elsewhere.example")
    everything = client.get("/api/inbound", headers=token()).json()["items"]
    assert [i["id"] for i in everything] == [stray, ok]
    unverified = client.get("/api/inbound?state=unverified", headers=token()).json()["items"]
    assert [i["id"] for i in unverified] == [stray]
    assert client.get("/api/inbound?state=failed", headers=token()).json()["items"] == []
    assert client.get("/api/inbound?state=bogus", headers=token()).status_code == 400


def test_a_team_token_sees_only_its_teams_messages(client):
    team_a, team_b, _, addr = two_teams()
    mine = post_sendgrid(client, "sendgrid/parsed_utf8.multipart", to=addr)
    stray = post_sendgrid(client, "sendgrid/parsed_koi8-r.multipart", to="nobody@elsewhere.example")
    a, b = token(team_a), token(team_b)
    assert client.get(f"/api/inbound/{mine}", headers=a).status_code == 200
    assert client.get(f"/api/inbound/{mine}", headers=b).status_code == 404
    assert client.get(f"/api/inbound/{stray}", headers=a).status_code == 404
    assert [i["id"] for i in client.get("/api/inbound", headers=a).json()["items"]] == [mine]
    assert client.get("/api/inbound", headers=b).json()["items"] == []


@pytest.mark.parametrize("auth", [None, "Bearer dbx_not-a-token", "Basic abc"])
def test_no_or_a_wrong_token_is_401(client, auth):
    headers = {"Authorization": auth} if auth else {}
    assert client.get("/api/inbound/1", headers=headers).status_code == 401
    assert client.get("/api/inbound", headers=headers).status_code == 401


def test_an_unknown_id_is_404(client):
    assert client.get("/api/inbound/999999", headers=token()).status_code == 404
    assert client.get("/api/inbound/abc", headers=token()).status_code == 404


def test_ids_beyond_the_column_range_are_not_found_rather_than_a_server_error(db, env):
    from starlette.testclient import TestClient

    from app.db import session
    from app.models import utcnow
    from app.relay.api_tokens import create_token
    from app.web.factory import create_app

    with session() as s:
        token = create_token(s, "range", now=utcnow())
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app()) as c:
        assert c.get("/api/inbound/2147483648", headers=auth).status_code == 404
        assert c.get("/api/inbound/0", headers=auth).status_code == 404
        assert c.get("/api/inbound?before=99999999999", headers=auth).status_code == 400


def test_cancelling_a_message_id_beyond_the_column_range_is_not_found(db, env):
    from starlette.testclient import TestClient

    from app.db import session
    from app.models import utcnow
    from app.relay.api_tokens import create_token
    from app.web.factory import create_app

    with session() as s:
        token = create_token(s, "range", now=utcnow())
    with TestClient(create_app()) as c:
        r = c.delete("/api/messages/2147483648", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404
