"""Every route of the app, hit with a battery of hostile values, answers without a 5xx.

The routes are enumerated from app.web.routes (pages, the JSON API, webhooks, tracking), so a
new route is walked without touching this file. The client is signed in as an admin who is
also an operator and carries an instance API token, so the values reach the handlers instead
of stopping at the door. Field and parameter names come from each handler's own source (the
``.get("name")`` calls), plus the JSON API's shapes.
"""

from __future__ import annotations

import inspect
import json
import re
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from app.accounts.users import make_operator
from app.db import session
from app.models import utcnow
from app.relay.api_tokens import create_token

# strings: NUL, lone surrogates, ids past 32 bits, negative ids, dates out of range, huge text
TEXTS = (
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    str(2**31),
    str(2**63),
    "9" * 40,
    "-1",
    "0",
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "x" * 70_000,
    "",
    "\r\n",
)
DEEP = "[" * 100_000 + "]" * 100_000  # past any recursion limit
JSON_VALUES = (*TEXTS, 2**31, 2**63, -1, 10**30, 1.5, True, None, [], {}, {"a": [[[[1]]]]})
INT_IDS = (str(2**31), str(2**63), "9" * 30, "0")
STR_IDS = ("%00", "%ED%A0%80", "x" * 5000, "..%2F..")
# a valid JSON body per API route, so one hostile field at a time reaches the handler
API_BODIES = {
    "/api/teams/{team_id}/entries": lambda w: {"member_id": w["bob"], "text": "shipped"},
    "/api/entries/{entry_id}": lambda w: {"text": "changed"},
    "/api/messages": lambda w: {"to": "x@example.com", "subject": "s", "text": "t"},
    "/api/messages/batch": lambda w: {"messages": [{"to": "x@example.com", "subject": "s", "text": "t"}]},
}
API_FIELDS = ("member_id", "text", "kind", "day", "to", "subject", "html", "template", "context")
API_FIELDS += ("send_at", "idempotency_key", "batch_id", "team_id", "from", "cc", "bcc", "reply_to")
API_FIELDS += ("model", "headers", "attachments", "tags", "metadata", "messages")
_GETS = re.compile(r'\.get\(\s*"(\w+)"')
_ACTIONS = re.compile(r'action\s*==\s*"(\w+)"')
_QUERY = re.compile(r"(\w+_Q)\.read")


def _encode(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _form(fields: dict) -> bytes:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in fields.items()).encode()


def _names(endpoint) -> tuple[list[str], list[str]]:
    """(the names the handler reads with .get, the actions it compares to) from its source."""
    fn = inspect.unwrap(endpoint)
    fn = getattr(fn, "func", fn)  # functools.partial
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        return [], []
    names = set(_GETS.findall(src)) - {"uid", "epoch", "flash", "csrf", "authorization", "content-type"}
    module = inspect.getmodule(fn)
    for q in _QUERY.findall(src):  # the API's IntQuery/DateQuery/... objects
        names.add(getattr(module, q).name)
    return sorted(names), sorted(set(_ACTIONS.findall(src)))


BOMB = (  # an address-parser bomb in From and To, a NUL and a lone surrogate's bytes in the body
    b"From: " + b"(\r\n " * 3000 + b"\r\nTo: " + b"<@a,@b:" * 3000 + b"\r\nSubject: =?utf-8?b?7aCA?=\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>a\x00b \xed\xa0\x80</p>\r\n"
)


def _world(team_id: int) -> dict:
    from app.inbound.accept import accept
    from tests.app.web.test_routes import _world as objects

    _, eids, ids = objects(team_id)
    with session() as s:
        make_operator(s, "ada@example.com", now=utcnow())
        api = create_token(s, "walk", now=utcnow())
        bomb, _ = accept(s, provider="raw", raw=BOMB, key="bomb", now=utcnow())
    return {**ids, "eid": eids["ada@example.com"], "tid": team_id, "api": api, "iid": bomb}


def _path(path: str, w: dict, **override) -> str:
    values = {
        "tid": w["tid"],
        "team_id": w["tid"],
        "mid": w["mid_msg"] if path.startswith("/mail/") else w["bob"],
        "eid": w["eid"],
        "entry_id": w["eid"],
        "iid": w["iid"],
        "sid": w["sid"],
        "token_id": w["token_id"],
        "webhook_id": w["webhook_id"],
        "did": w["did"],
        "delivery_id": w["delivery_id"],
        "dest_id": w["dest_id"],
        "channel_id": w["dest_id"],
        "endpoint_id": w["webhook_id"],
        "pause_id": w["pauses"]["ada@example.com"],
        "id": w["iid"] if path.startswith("/api/inbound/") else w["mid_msg"],
        "batch_id": "b1",
        "index": 0,
        "address": "gone@example.com",
        "domain": "example.org",
        "provider": "sendgrid",
        "token": "x",
        "key": "x",
        **override,
    }
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(values[m.group(1)]), path)


def _routes():
    from app.web.routes import routes

    destructive = ("delete", "remove", "revoke", "signout", "reprocess")
    out = []
    for r in routes:
        for method in sorted(r.methods or ()):
            last = method != "GET" and any(d in r.path for d in destructive)
            out.append((last, method != "GET", r.path, method, r.endpoint))
    return [x[2:] for x in sorted(out, key=lambda x: x[:2])]


def _requests(w: dict, csrf: str):
    """(method, url, headers, body) for every route and hostile value."""
    api = {"Authorization": f"Bearer {w['api']}"}
    for path, method, endpoint in _routes():
        names, actions = _names(endpoint)
        headers = dict(api) if path.startswith("/api/") else {}
        if method in ("HEAD", "GET") or method == "DELETE":
            yield method, _path(path, w), headers, None  # the objects of the world (the bomb among them)
            for param in re.findall(r"\{(\w+):(\w+)\}", path):
                for value in INT_IDS if param[1] == "int" else STR_IDS:
                    yield method, _path(path, w, **{param[0]: value}), headers, None
            for name in names:
                for value in TEXTS:
                    query = f"{_encode(name)}={_encode(value[:20_000])}"  # httpx refuses URLs past 64 KiB
                    yield method, f"{_path(path, w)}?{query}", headers, None
            continue
        url = _path(path, w)
        if path.startswith("/api/"):
            base = API_BODIES.get(re.sub(r":\w+\}", "}", path), lambda w: {})(w)
            json_headers = {**headers, "Content-Type": "application/json"}
            for field in API_FIELDS:
                for value in JSON_VALUES:
                    yield method, url, json_headers, json.dumps({**base, field: value}).encode()
            for raw in (DEEP, "[]", '{"\\u0000": 1}', '{"\\ud800": 1}', "\x00", "nul\x00", "{"):
                yield method, url, json_headers, raw.encode("utf-8", "surrogatepass")
            continue
        if path.startswith(("/inbound/", "/events/", "/dev/inbound/")):
            for name in ("sendgrid", "mailgun", "postmark", "ses", "raw", "%00", "x" * 500):
                hook = _path(path, w, provider=name)
                for ctype, raw in (
                    ("application/json", DEEP),
                    ("application/json", '{"\\u0000": "\\ud800"}'),
                    ("text/plain", DEEP),
                    ("application/x-www-form-urlencoded", "a=%00&b=%ED%A0%80"),
                    ("message/rfc822", "From: " + "(" * 5000 + "\r\n\r\nx"),
                ):
                    yield method, hook, {"Content-Type": ctype}, raw.encode()
            continue
        form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
        for variant in [{}] + [{"action": a} for a in actions]:
            for name in names:
                for value in TEXTS:
                    yield method, url, form_headers, _form({"csrf": csrf, **variant, name: value})
        yield method, url, {"Content-Type": "multipart/form-data; boundary=x"}, b"--x\r\n\x00"
        yield method, url, form_headers, _form({"csrf": csrf, "csrf2": "\x00"}) + b"&csrf=%00"


def test_no_route_answers_a_hostile_value_with_a_5xx(local_dns, db, team, sent):
    # DNS checks (a domain's verify) ask a local server with no records, not the network's resolver
    from app.web.factory import create_app
    from tests.app.web.conftest import csrf_of, sign_in

    w = _world(team.id)
    failures, count = [], 0
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        sign_in(client, sent, "ada@example.com")
        csrf = csrf_of(client, "/")
        for method, url, headers, body in _requests(w, csrf):
            r = client.request(method, url, headers=headers, content=body, follow_redirects=False)
            count += 1
            if r.status_code >= 500:
                failures.append(f"{method} {url[:120]} {body[:80] if body else ''!r}: {r.status_code}")
    assert count > 1000
    assert not failures, f"{len(failures)} of {count} requests answered 5xx:\n" + "\n".join(failures[:60])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_walk_reaches_every_route(method):
    from app.web.routes import routes

    walked = {path for path, m, _ in _routes() if m == method}
    assert walked == {r.path for r in routes if method in (r.methods or ())}
