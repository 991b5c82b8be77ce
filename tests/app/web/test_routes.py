"""Access control, table-driven: every page route x every role x our team and a foreign team.

Every route of app/web/routes.py is either a page (wrapped in ``page(need=...)``) checked here,
or listed in PUBLIC with the test that covers it; a new route that is neither fails the suite.
"""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import session
from app.models import (
    ApiToken,
    ChatDestination,
    Entry,
    InboundMessage,
    Member,
    MemberPause,
    OutboundMessage,
    SendingDomain,
    Suppression,
    Team,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)

# route families other parts of donebox own and test: the JSON API (bearer tokens, test_api), inbound
# webhooks (provider secrets) and tracking links (signed tokens)
PUBLIC_PREFIXES = ("/api/", "/inbound/", "/t/")
PUBLIC = {
    "/healthz": "test_inbound_raw",
    "/metrics": "test_metrics",
    "/signin": "test_signin",
    "/signin/{token}": "test_signin",
    "/signout": "test_signin",
    "/events/{provider}": "test_events_sendgrid, test_events_ses, test_webhooks",
    "/dev/inbox": "test_dev_inbox",
    "/dev/inbox/{key}": "test_dev_inbox",
    "/dev/inbox/{key}/reply": "test_dev_inbox",
    "/dev/remind": "test_dev_inbox",
    "/dev/digest": "test_dev_inbox",
    "/dev/inbound/{provider}/parse-only": "test_inbound_providers",
}
ROLES = ("anonymous", "outsider", "observer", "member", "admin", "operator")
EMAIL = {
    "outsider": "zed@other.example",
    "observer": "olga@example.com",
    "member": "bob@example.com",
    "admin": "ada@example.com",
    "operator": "root@example.com",
}
RANK = {"observer": 0, "member": 1, "admin": 2}
OWN_ENTRY = ("/entries", "/entries/{eid}/edit", "/entries/{eid}/delete")
OWN_MEMBER = ("/settings/me", "/settings/me/mail", "/settings/me/pauses/{pause_id}/remove")


def other_team() -> int:
    """A second team with one admin, zed@other.example; its id."""
    with session() as s:
        t = Team(name="Other", timezone="UTC")
        s.add(t)
        s.flush()
        s.add(Member(team_id=t.id, email="zed@other.example", name="Zed", role="admin"))
        s.flush()
        return t.id


def page_routes():
    from app.web.routes import routes

    out = []
    for r in routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)
        if path in PUBLIC or path.startswith(PUBLIC_PREFIXES):
            continue
        for method in sorted(r.methods - {"HEAD"}):
            out.append((method, path, r.endpoint))
    return out


def test_every_route_is_a_checked_page_or_listed_as_public():
    from app.web.routes import routes

    for r in routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)
        if path in PUBLIC or path.startswith(PUBLIC_PREFIXES):
            continue
        assert hasattr(r.endpoint, "need"), f"{path} is neither a page(...) nor in PUBLIC"


def expected(method: str, path: str, need, role: str, foreign: bool) -> str:
    """'ok', 'signin', 403 or 404 for ``role`` on this route."""
    if role == "anonymous":
        return "signin"
    if path.startswith("/teams/{tid}"):
        if role == "operator":
            rank = RANK["admin"]
        elif foreign != (role == "outsider"):  # the outsider is in the foreign team only
            return 404
        else:
            rank = RANK["admin"] if role == "outsider" else RANK[role]
        if rank < RANK[need]:
            return 403
        # the objects in paths (members, entries, tokens) are our team's; the outsider's entry is theirs
        theirs = role == "outsider" and ("{eid}" in path or "{pause_id}" in path)
        if (
            foreign
            and not theirs
            and any(
                p in path
                for p in (
                    "{mid}",
                    "{eid}",
                    "{token_id}",
                    "{pause_id}",
                    "{webhook_id}",
                    "{delivery_id}",
                    "{dest_id}",
                )
            )
        ):
            return 404
        if role == "operator" and (path.endswith(OWN_ENTRY) or path.endswith(OWN_MEMBER)):
            return 403  # an operator visiting a team has no entries or schedule in it
        return "ok"
    if path.startswith("/mail/inbound/{iid}") and need is None:
        # the original of a reply (bob's): its author, the team's admins, operators; another member of
        # the team is told why not, anyone else finds nothing (app.inbound.corrections.who_may)
        return {"observer": 403, "outsider": 404}.get(role, "ok")
    if need == "operator":
        return "ok" if role == "operator" else 403
    if need == "mail":
        if role in ("observer", "member"):
            return 403
        if role == "outsider" and "{" in path:
            return 404  # another team's message, inbound or suppression
        return "ok"
    return "ok"  # need None: signed in is enough


def _world(team_id: int):
    """Objects the routes point at, all in our team; and a foreign team."""
    from app.accounts.users import make_operator
    from app.checkins.entries import add
    from app.inbound.accept import accept
    from app.relay.api_tokens import create_token

    foreign = other_team()
    now = utcnow()
    with session() as s:
        make_operator(s, "root@example.com", now=now)
        members = {m.email: m for m in s.execute(select(Member)).scalars()}
        eids = {e: add(s, members[e], now.date(), f"entry of {e}", "done", now=now)[0].id for e in members}
        later = now.date() + timedelta(days=30)
        pauses = {
            e: MemberPause(member_id=m.id, first_day=later, last_day=later, created_at=now)
            for e, m in members.items()
        }
        s.add_all(pauses.values())
        iid, _ = accept(s, provider="raw", raw=b"From: bob@example.com\r\n\r\nhi", key="k1", now=now)
        s.get(InboundMessage, iid).member_id = members["bob@example.com"].id
        s.get(InboundMessage, iid).state = "processed"
        from app.relay import outbox

        mid, _ = outbox.create(
            s,
            now=now,
            idempotency_key="x",
            kind="reminder",
            team_id=team_id,
            member_id=members["bob@example.com"].id,
            to_addr="bob@example.com",
            subject="s",
            template="reminder",
            context={"day": now.date().isoformat()},
            message_id="<x@t>",
        )
        s.add(Member(team_id=team_id, email="dan@example.com", name="Dan", role="member"))
        s.add(Suppression(email="dan@example.com", reason="manual", team_id=team_id))  # our team's entry
        create_token(s, "t", now=now, team_id=team_id)
        s.add(SendingDomain(domain="example.org", team_id=team_id, return_path_host="bounces.example.org"))
        hook = WebhookEndpoint(
            team_id=team_id, url="https://hooks.example.org/x", secret="whsec_x", kinds="sent"
        )
        s.add(hook)
        s.flush()
        delivery = WebhookDelivery(
            endpoint_id=hook.id, team_id=team_id, kind="sent", payload="{}", state="failed"
        )
        s.add(delivery)
        # a chat channel nobody listens on (the discard port): a test post to it is deferred
        dest = ChatDestination(team_id=team_id, service="mattermost", url="http://127.0.0.1:9/hooks/x")
        s.add(dest)
        s.flush()
        ids = {
            "mid_msg": mid,
            "iid": iid,
            "sid": s.execute(select(Suppression.id)).scalar(),
            "did": s.execute(select(SendingDomain.id)).scalar(),
            "token_id": s.execute(select(ApiToken.id)).scalar(),
            "webhook_id": hook.id,
            "delivery_id": delivery.id,
            "dest_id": dest.id,
            "bob": members["bob@example.com"].id,
            "pauses": {e: pause.id for e, pause in pauses.items()},
        }
    return foreign, eids, ids


def _url(path: str, tid: int, role: str, eids: dict, ids: dict) -> str:
    own = eids.get(EMAIL.get(role, ""), eids["bob@example.com"])
    if path.startswith("/mail/outbound/"):
        path = path.replace("{mid}", str(ids["mid_msg"]))
    return (
        path.replace("{tid}", str(tid))
        .replace("{mid}", str(ids["bob"]))
        .replace("{eid}", str(own))
        .replace("{iid}", str(ids["iid"]))
        .replace("{sid}", str(ids["sid"]))
        .replace("{did}", str(ids["did"]))
        .replace("{token_id}", str(ids["token_id"]))
        .replace("{webhook_id}", str(ids["webhook_id"]))
        .replace("{delivery_id}", str(ids["delivery_id"]))
        .replace("{dest_id}", str(ids["dest_id"]))
        .replace("{pause_id}", str(ids["pauses"].get(EMAIL.get(role, ""), ids["pauses"]["bob@example.com"])))
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_page_route_answers_each_role_as_the_table_says(local_dns, client, team, sent, role):
    from tests.app.web.conftest import csrf_of, sign_in

    foreign, eids, ids = _world(team.id)
    if role != "anonymous":
        sign_in(client, sent, EMAIL[role])
    token = csrf_of(client, "/signin") if role == "anonymous" else None
    checked = 0
    # GETs first, then POSTs: an allowed POST may change what later rows see
    rows = sorted(page_routes(), key=lambda r: r[0] != "GET")
    for method, path, endpoint in rows:
        for foreign_team in (False, True) if "{tid}" in path else (False,):
            url = _url(path, foreign if foreign_team else team.id, role, eids, ids)
            want = expected(method, path, endpoint.need, role, foreign_team)
            if method == "GET":
                r = client.get(url, follow_redirects=False)
            else:
                r = client.post(url, data={"csrf": token or csrf_of(client, "/")}, follow_redirects=False)
            where = f"{role} {method} {url}"
            if want == "signin":
                assert r.status_code == 303 and r.headers["location"].startswith("/signin"), where
            elif want == "ok":
                assert r.status_code not in (401, 403, 404, 500), f"{where}: {r.status_code}"
                assert not r.headers.get("location", "").startswith("/signin"), where
            else:
                assert r.status_code == want, f"{where}: {r.status_code}, wanted {want}"
            checked += 1
    assert checked > 40


def test_every_response_carries_the_security_headers(client, team, sent):
    from tests.app.web.conftest import sign_in

    sign_in(client, sent, "ada@example.com")
    for url in ("/", f"/teams/{team.id}", "/signin", "/nope", "/api/teams", "/api/openapi.json", "/healthz"):
        h = client.get(url, follow_redirects=False).headers
        assert (
            "script-src" not in h["content-security-policy"]
            and "default-src 'none'" in h["content-security-policy"]
        )
        assert "frame-ancestors 'none'" in h["content-security-policy"], url
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "same-origin"
        assert h["x-frame-options"] == "DENY"


def test_entries_of_another_team_cannot_be_reached_through_our_team(client, team, sent):
    from tests.app.web.conftest import post, sign_in

    foreign, eids, _ = _world(team.id)
    sign_in(client, sent, "zed@other.example")
    # zed's own entry, addressed through a team zed is not in
    zed_entry = eids["zed@other.example"]
    assert client.get(f"/teams/{team.id}/entries/{zed_entry}/edit").status_code == 404
    # and bob's entry through zed's own team
    bob_entry = eids["bob@example.com"]
    assert client.get(f"/teams/{foreign}/entries/{bob_entry}/edit").status_code == 404
    assert post(client, f"/teams/{foreign}/entries/{bob_entry}/delete").status_code == 404
    with session() as s:
        assert s.get(Entry, bob_entry) is not None
    assert client.get(f"/teams/{foreign}/members/{_world_member('bob@example.com')}").status_code == 404


def _world_member(email):
    with session() as s:
        return s.execute(select(Member.id).where(Member.email == email)).scalar_one()


def test_an_operator_sees_every_teams_mail(client, team, sent):
    from tests.app.web.conftest import sign_in

    _, _, ids = _world(team.id)
    sign_in(client, sent, "root@example.com")
    assert client.get(f"/mail/outbound/{ids['mid_msg']}").status_code == 200
    with session() as s:
        assert s.execute(select(OutboundMessage.id)).first()


def _sample_paths(path: str, literals: set[str]) -> list[str]:
    """Concrete paths a route template matches: an int parameter as 7, a text one as a token or as
    any literal segment of the table (where two routes could meet)."""
    out = [""]
    for seg in path.split("/")[1:]:
        m = re.fullmatch(r"\{\w+:(int|str)\}", seg)
        values = (["7"] if m.group(1) == "int" else ["x1", *sorted(literals)]) if m else [seg]
        out = [f"{p}/{v}" for p in out for v in values]
    return out or ["/"]


def test_no_two_routes_match_one_path_and_method_so_their_order_is_free():
    """app/web/routes.py puts the busiest routes first (Starlette tries them in order): that is
    safe only while no path and method is matched by two routes of the table."""
    from starlette.routing import Match

    from app.web.routes import routes

    literals = {seg for r in routes for seg in r.path.split("/") if seg and not seg.startswith("{")}
    clashes = []
    for r in routes:
        for path in _sample_paths(r.path, literals):
            for method in sorted(r.methods):
                scope = {"type": "http", "path": path, "method": method, "root_path": ""}
                full = [o.path for o in routes if o.matches(scope)[0] == Match.FULL]
                if len(full) > 1:
                    clashes.append((method, path, full))
    assert clashes == []
    assert routes[0].path == "/inbound/{provider:str}"  # the intake first: every provider's POST
