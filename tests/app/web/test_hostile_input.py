"""Hostile requests, one regression test each: bodies are read only after the token or session is
proven and only up to their limit; HEAD changes nothing; bad values get a 4xx with the reason.

The body tests drive the ASGI app directly with a body that is produced lazily and counted as the
app takes it, so "read nothing" is measured, not assumed (tests/e2e/test_body_limits_real.py
measures the same against a real uvicorn process).
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from sqlalchemy import select

from app.db import session
from app.models import Entry, MessageEvent, Suppression, User
from app.relay.tracking import make_token
from app.settings import get_settings
from app.web.common import MAX_JSON_DEPTH, BadInput, load_json
from tests.app.web.api.test_api import mid, token_for
from tests.app.web.conftest import csrf_of, sign_in
from tests.app.web.hooks.test_tracking import BROWSER, events, path, send_digest
from tests.conftest import reset_caches

MB = 1024 * 1024
CHUNK = 64 * 1024


class Upload:
    """A request body of ``size`` bytes handed to the app in chunks; counts what the app took."""

    def __init__(self, size: int):
        self.size, self.taken = size, 0

    async def receive(self):
        chunk = min(CHUNK, self.size - self.taken)
        self.taken += chunk
        return {"type": "http.request", "body": b"a" * chunk, "more_body": self.taken < self.size}


def drive(app, method: str, url: str, headers: dict, upload: Upload, declare: bool = True):
    """(status, headers) of one request to the ASGI ``app``; ``declare``: send Content-Length."""
    target, _, query = url.partition("?")
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append(
        (b"content-length", str(upload.size).encode()) if declare else (b"transfer-encoding", b"chunked")
    )
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"donebox.test"), *raw],
        "client": ("127.0.0.1", 1),
        "server": ("donebox.test", 80),
    }
    started = {}

    async def send(message):
        if message["type"] == "http.response.start":
            started["status"] = message["status"]
            started["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}

    asyncio.run(app(scope, upload.receive, send))
    return started["status"], started["headers"]


@pytest.fixture
def app(client):
    return client.app


def cookie(client) -> dict:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())}


# ---------------------------------------------------------------- item 3: authenticate before reading


def test_an_api_post_without_a_live_token_is_refused_with_nothing_of_its_body_read(app, team):
    for headers in ({}, {"Authorization": "Bearer dbx_nope"}):
        for declare in (True, False):
            up = Upload(100 * MB)
            status, got = drive(app, "POST", f"/api/teams/{team.id}/entries", headers, up, declare)
            assert (status, up.taken) == (401, 0), (headers, declare)
            assert got["connection"] == "close"  # uvicorn closes instead of reading the rest


def test_an_authenticated_api_body_past_its_limit_is_413_as_soon_as_it_passes(app, team):
    h = {**token_for(), "Content-Type": "application/json"}
    up = Upload(100 * MB)
    status, got = drive(app, "POST", "/api/messages", h, up)  # declared: refused before reading
    assert (status, up.taken, got["connection"]) == (413, 0, "close")
    up = Upload(100 * MB)
    status, _ = drive(app, "POST", "/api/messages", h, up, declare=False)  # no length: counted
    limit = get_settings().api_message_max_bytes  # a MAX_MESSAGE_BYTES message in base64, and the rest
    assert status == 413 and limit < up.taken <= limit + CHUNK
    up = Upload(100 * MB)
    status, _ = drive(app, "POST", "/api/suppressions", h, up, declare=False)  # any other route: 1 MiB
    assert status == 413 and get_settings().api_max_bytes < up.taken <= get_settings().api_max_bytes + CHUNK


def test_api_max_bytes_sets_the_json_limit_and_max_message_bytes_that_of_messages(env, team):
    env.setenv("API_MAX_BYTES", "1000")
    env.setenv("MAX_MESSAGE_BYTES", "1500")  # messages: 4/3 of it (base64) + API_MAX_BYTES = 3000
    reset_caches()
    from starlette.testclient import TestClient

    from app.web.factory import create_app

    with TestClient(create_app()) as c:
        body = {"address": "x" * 2000 + "@example.com"}
        r = c.post("/api/suppressions", json=body, headers=token_for())
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]
        body = {"to": "x@example.com", "subject": "s", "text": "t" * 3000}
        r = c.post("/api/messages", json=body, headers=token_for())
        assert r.status_code == 413 and "3000 bytes" in r.json()["error"]
        r = c.post("/api/messages/batch", json={"messages": [body]}, headers=token_for())
        assert r.status_code == 413 and "3000 bytes" in r.json()["error"]
        r = c.post("/api/messages", json={**body, "text": "t" * 1400}, headers=token_for())
        assert r.status_code == 202


def test_a_form_post_without_a_session_is_sent_to_signin_with_nothing_read(app, team):
    ctype = {"Content-Type": "application/x-www-form-urlencoded"}
    up = Upload(100 * MB)
    status, got = drive(app, "POST", f"/teams/{team.id}/entries", ctype, up)
    assert (status, up.taken) == (303, 0) and got["location"].startswith("/signin")
    for url in ("/signin", "/signin/abc", "/signout"):  # no form of ours was ever loaded: 403
        up = Upload(100 * MB)
        assert drive(app, "POST", url, ctype, up, declare=False)[0] == 403 and up.taken == 0


def test_a_signed_out_session_cookie_gets_nothing_read(client, app, team, sent):
    sign_in(client, sent, "bob@example.com")
    stale = cookie(client)
    with session() as s:
        s.execute(select(User).where(User.email == "bob@example.com")).scalar_one().session_epoch += 1
    up = Upload(100 * MB)
    ctype = {"Content-Type": "application/x-www-form-urlencoded", **stale}
    status, _ = drive(app, "POST", f"/teams/{team.id}/entries", ctype, up)
    assert (status, up.taken) == (303, 0)


def test_a_signed_in_form_past_form_max_bytes_is_413(client, app, team, sent):
    sign_in(client, sent, "bob@example.com")
    ctype = {"Content-Type": "application/x-www-form-urlencoded", **cookie(client)}
    up = Upload(100 * MB)
    status, _ = drive(app, "POST", f"/teams/{team.id}/entries", ctype, up, declare=False)
    limit = get_settings().form_max_bytes
    assert status == 413 and limit < up.taken <= limit + CHUNK
    r = client.post(
        f"/teams/{team.id}/entries", data={"csrf": csrf_of(client, "/"), "text": "x" * (limit + 1)}
    )
    assert r.status_code == 413 and f"larger than {limit} bytes" in r.text
    with session() as s:
        assert s.execute(select(Entry)).first() is None


def test_form_max_bytes_sets_the_form_limit(env, team, sent):
    env.setenv("FORM_MAX_BYTES", "2000")
    reset_caches()
    from starlette.testclient import TestClient

    from app.web.factory import create_app

    with TestClient(create_app()) as c:
        sign_in(c, sent, "bob@example.com")
        r = c.post(f"/teams/{team.id}/entries", data={"csrf": csrf_of(c, "/"), "text": "y" * 3000})
        assert r.status_code == 413
        r = c.post(f"/teams/{team.id}/entries", data={"csrf": csrf_of(c, "/"), "text": "shipped"})
        assert r.status_code == 200  # followed the 303 to the day page
    with session() as s:
        assert [e.text for e in s.execute(select(Entry)).scalars()] == ["shipped"]


def test_a_multipart_form_is_read_from_memory_and_a_file_in_it_is_refused(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    boundary = "b0undary"
    fields = {"csrf": csrf_of(client, "/"), "text": "multipart works"}
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    r = client.post(
        f"/teams/{team.id}/entries",
        content=f"{body}--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"/teams/{team.id}/entries",
        data={"csrf": csrf_of(client, "/"), "text": "x"},
        files={"upload": ("a.bin", b"z" * 1000)},
    )
    assert r.status_code == 400
    with session() as s:
        assert [e.text for e in s.execute(select(Entry)).scalars()] == ["multipart works"]


def test_an_inbound_webhook_with_a_wrong_secret_is_refused_with_nothing_read(app, team):
    h = {"Authorization": "Bearer wrong", "Content-Type": "message/rfc822"}
    for declare in (True, False):
        up = Upload(100 * MB)
        assert drive(app, "POST", "/inbound/raw", h, up, declare)[0] == 401 and up.taken == 0
    up = Upload(100 * MB)  # the right token, past MAX_INBOUND_BYTES: the limit it always had
    h["Authorization"] = "Bearer test-inbound-token"
    assert drive(app, "POST", "/inbound/raw", h, up, declare=False)[0] == 413
    assert up.taken <= get_settings().max_inbound_bytes + CHUNK


def test_an_unsubscribe_post_reads_its_body_only_for_a_valid_token_and_only_4_kib(app, team):
    mid_, _ = send_digest()
    up = Upload(100 * MB)
    assert drive(app, "POST", "/t/u/1.u.AAAAAAAAAAAAAAAAAAAAAA", {}, up, declare=False)[0] == 404
    assert up.taken == 0
    up = Upload(100 * MB)
    url = f"/t/u/{make_token(get_settings().secret_key, mid_, 'u')}"
    assert drive(app, "POST", url, {}, up, declare=False)[0] == 413 and up.taken <= 4096 + CHUNK
    with session() as s:
        assert s.execute(select(Suppression)).first() is None


# ---------------------------------------------------------------- item 4: only POST changes state


def test_head_of_an_unsubscribe_link_unsubscribes_nobody(client, team):
    mid_, msg = send_digest()
    url = path(re.search(r"<(http[^>]+/t/u/[^>]+)>", msg["List-Unsubscribe"]).group(1))
    for method in ("HEAD", "GET", "HEAD"):
        assert client.request(method, url, headers={"User-Agent": BROWSER}).status_code == 200
    with session() as s:
        assert s.execute(select(Suppression)).first() is None
    assert events(mid_, "unsubscribe") == []
    assert client.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200
    with session() as s:
        assert [x.email for x in s.execute(select(Suppression)).scalars()] == ["ada@example.com"]


def test_head_of_the_pixel_or_a_click_link_records_nothing_and_get_records_the_hit(client, team):
    mid_, msg = send_digest()
    html = msg.get_body(("html",)).get_content()
    click = path(re.findall(r'href="([^"]+/t/c/[^"]+)"', html)[0])
    pixel = path(re.findall(r'src="([^"]+/t/o/[^"]+)"', html)[0])
    assert client.head(pixel, headers={"User-Agent": BROWSER}).status_code == 200
    r = client.head(click, headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "http://donebox.test/"
    with session() as s:
        kinds = list(s.execute(select(MessageEvent.kind).where(MessageEvent.message_id == mid_)).scalars())
    assert "open" not in kinds and "click" not in kinds
    client.get(pixel, headers={"User-Agent": BROWSER})
    client.get(click, headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert len(events(mid_, "open")) == 1 and len(events(mid_, "click")) == 1


# ---------------------------------------------------------------- item 9: no 500 from bad input


@pytest.fixture
def h(team):
    return token_for(team.id)


@pytest.mark.parametrize(
    ("text", "why"), [("a\x00b", "NUL"), ("a\ud800b", "surrogate"), ("\udfff", "surrogate")]
)
def test_nul_or_a_lone_surrogate_in_json_text_is_422_naming_the_field(client, team, h, text, why):
    body = json.dumps({"member_id": mid("bob@example.com"), "text": text}).encode()
    r = client.post(
        f"/api/teams/{team.id}/entries", content=body, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "'text'" in r.json()["error"] and why in r.json()["error"]
    body = json.dumps({"to": "x@example.com", "subject": "s", "text": "t", "context": {text: 1}}).encode()
    r = client.post(
        "/api/messages", content=body, headers={**token_for(), "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "key" in r.json()["error"]
    with session() as s:
        assert s.execute(select(Entry)).first() is None


def test_nul_in_a_form_field_or_a_query_parameter_is_422_naming_it(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    r = client.post(f"/teams/{team.id}/entries", data={"csrf": csrf_of(client, "/"), "text": "a\x00b"})
    assert r.status_code == 422 and "&#39;text&#39; contains a NUL" in r.text
    sign_in(client, sent, "ada@example.com")
    r = client.get("/mail/outbound?to=a%00b")
    assert r.status_code == 422 and "&#39;to&#39; contains a NUL" in r.text
    r = client.get("/api/messages?state=%00", headers=token_for())
    assert r.status_code == 422 and "'state' contains a NUL" in r.json()["error"]


def test_ids_of_2_to_the_31_and_more_are_404_in_paths_and_422_in_bodies(client, team, h, sent):
    for big in (2**31, 2**63, 10**30):
        assert client.get(f"/api/entries/{big}", headers=h).status_code == 404
        assert client.get(f"/api/teams/{big}/members", headers=h).status_code == 404
        assert client.delete(f"/api/messages/{big}", headers=token_for()).status_code == 404
        body = {"to": "x@example.com", "subject": "s", "text": "t", "team_id": big}
        r = client.post("/api/messages", json=body, headers=token_for())
        assert r.status_code == 422 and "team_id" in r.json()["error"]
    sign_in(client, sent, "ada@example.com")
    for url in (f"/teams/{2**31}", f"/teams/{team.id}/members/{2**63}", f"/mail/inbound/{2**31}"):
        assert client.get(url).status_code == 404, url
    r = client.post(
        f"/teams/{team.id}/settings/me/pauses/{2**63}/remove", data={"csrf": csrf_of(client, "/")}
    )
    assert r.status_code == 404


@pytest.mark.parametrize(
    "send_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-02T00:00:00Z"]
)
def test_a_send_at_out_of_range_is_422(client, team, send_at):
    body = {"to": "x@example.com", "subject": "s", "text": "t", "send_at": send_at}
    r = client.post("/api/messages", json=body, headers=token_for())
    assert r.status_code == 422 and "send_at" in r.json()["error"]


def test_days_out_of_range_are_422_on_pages_and_in_the_api(client, team, h, sent):
    body = {"member_id": mid("bob@example.com"), "text": "x", "day": "0001-01-01"}
    r = client.post(f"/api/teams/{team.id}/entries", json=body, headers=h)
    assert r.status_code == 422 and "day" in r.json()["error"]
    assert client.get(f"/api/teams/{team.id}/entries?day=9999-12-31", headers=h).status_code == 422
    sign_in(client, sent, "ada@example.com")
    assert client.get(f"/teams/{team.id}?day=0001-01-01").status_code == 422
    assert client.get("/mail/outbound?until=9999-12-31").status_code == 422
    r = client.post(
        f"/teams/{team.id}/settings/me",
        data={
            "csrf": csrf_of(client, "/"),
            "action": "pause",
            "first_day": "2026-01-01",
            "last_day": "9999-12-31",
        },
    )
    assert r.status_code == 422


def test_json_deeper_than_the_bound_is_400_and_needs_no_token_to_be_harmless(client, team, h):
    assert load_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None
    for raw in (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(BadInput) as e:
            load_json(raw)
        assert e.value.status == 400 and "deeper" in e.value.reason
    deep = b'{"member_id": 1, "text": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # within the 64 KiB
    url, ctype = f"/api/teams/{team.id}/entries", {"Content-Type": "application/json"}
    assert client.post(url, content=deep, headers=ctype).status_code == 401
    r = client.post(url, content=deep, headers={**h, **ctype})
    assert r.status_code == 400 and "deeper than 64" in r.json()["error"]
    r = client.post("/events/sendgrid", content=deep, headers=ctype)  # no secret in development
    assert r.status_code == 400


BOMB = b"From: " + b"(\r\n " * 3000 + b"\r\nTo: " + b"<@a,@b:" * 3000 + b"\r\nSubject: hi\r\n\r\nthe body\r\n"


def test_the_inbound_pages_of_an_address_parser_bomb_show_the_raw_text(client, team, sent):
    from app.accounts.users import make_operator
    from app.inbound.accept import accept
    from app.models import utcnow

    with session() as s:
        iid, _ = accept(s, provider="raw", raw=BOMB, key="bomb", now=utcnow())
        make_operator(s, "ada@example.com", now=utcnow())
    sign_in(client, sent, "ada@example.com")
    r = client.get(f"/mail/inbound/{iid}")
    assert r.status_code == 200 and "the body" in r.text
    assert client.get(f"/mail/inbound/{iid}/html").status_code == 200
    r = client.get(f"/api/inbound/{iid}", headers=token_for())
    assert r.status_code == 200


def test_a_message_the_parser_gives_up_on_is_shown_raw_with_a_note(client, team, sent, monkeypatch):
    # the parser never raises on the corpus or the fuzzers; should a new shape make it, the page
    # shows the stored bytes with a note rather than a 500
    from app.accounts.users import make_operator
    from app.inbound.accept import accept
    from app.models import utcnow
    from app.web.pages import mail

    with session() as s:
        iid, _ = accept(s, provider="raw", raw=b"Subject: hi\r\n\r\nthe body\r\n", key="k", now=utcnow())
        make_operator(s, "ada@example.com", now=utcnow())

    def gives_up(row):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(mail, "load_email", gives_up)
    sign_in(client, sent, "ada@example.com")
    r = client.get(f"/mail/inbound/{iid}")
    assert r.status_code == 200 and "cannot be parsed" in r.text and "the body" in r.text
