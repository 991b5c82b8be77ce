from datetime import timedelta

from sqlalchemy import select

from app.db import session
from app.models import SigninToken, User
from tests.app.web.conftest import csrf_of, post, sign_in, signin_link


def test_a_member_signs_in_through_the_emailed_link_and_sees_their_team(client, team, sent):
    r = sign_in(client, sent, "bob@example.com")
    assert r.headers["location"] == "/"
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200 and "Rocket" in page.text and "bob@example.com" in page.text


def test_the_link_works_once(client, team, sent):
    link = signin_link(client, sent, "bob@example.com")
    token = csrf_of(client, link)
    assert client.post(link, data={"csrf": token}, follow_redirects=False).status_code == 303
    again = client.post(link, data={"csrf": csrf_of(client, link)}, follow_redirects=False)
    assert again.status_code == 400 and "already used" in again.text


def test_opening_the_link_with_get_does_not_use_it(client, team, sent):
    link = signin_link(client, sent, "bob@example.com")
    client.get(link)
    client.get(link)
    assert client.post(link, data={"csrf": csrf_of(client, link)}, follow_redirects=False).status_code == 303


def test_an_expired_link_is_refused(client, team, sent):
    link = signin_link(client, sent, "bob@example.com")
    with session() as s:
        for t in s.execute(select(SigninToken)).scalars():
            t.expires_at = t.created_at - timedelta(seconds=1)
    r = client.post(link, data={"csrf": csrf_of(client, link)}, follow_redirects=False)
    assert r.status_code == 400


def test_a_tampered_link_is_refused(client, team, sent):
    link = signin_link(client, sent, "bob@example.com")
    bad = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
    assert client.post(bad, data={"csrf": csrf_of(client, bad)}, follow_redirects=False).status_code == 400


def test_an_unknown_address_gets_the_same_answer_and_no_email(client, team, sent):
    from jobs.broker import drain

    r = post(client, "/signin", {"email": "stranger@example.com"})
    drain()
    assert r.status_code == 200 and "Check your email" in r.text
    assert not [m for m in sent if m["To"] == "stranger@example.com"]


def test_a_bad_address_is_a_422_with_the_reason_beside_the_field_and_the_input_kept(client, team):
    r = post(client, "/signin", {"email": "not an address"})
    assert r.status_code == 422 and "not an email address" in r.text
    assert 'value="not an address" aria-invalid="true" aria-describedby="email-error"' in r.text


def test_the_first_user_on_an_empty_instance_becomes_operator(client, sent):
    sign_in(client, sent, "first@example.com")
    with session() as s:
        assert s.execute(select(User.is_operator).where(User.email == "first@example.com")).scalar() is True


def test_users_of_an_instance_with_teams_are_not_operators(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    client.cookies.clear()
    sign_in(client, sent, "bob@example.com")
    with session() as s:
        rows = dict(s.execute(select(User.email, User.is_operator)).all())
    assert rows == {"ada@example.com": False, "bob@example.com": False}  # teams exist: not empty


def test_admin_create_makes_an_operator(db, env):
    from app.cli import main

    assert main(["admin", "create", "Root@Example.com"]) == 0
    with session() as s:
        assert s.execute(select(User.is_operator).where(User.email == "root@example.com")).scalar() is True
    assert main(["admin", "create", "nope"]) == 2


def test_a_post_without_the_csrf_token_is_refused(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    r = client.post(f"/teams/{team.id}/entries", data={"text": "x"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(f"/teams/{team.id}/entries", data={"text": "x", "csrf": "wrong"}, follow_redirects=False)
    assert r.status_code == 403


def test_signing_out_ends_the_session(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    assert post(client, "/signout").status_code == 303
    r = client.get(f"/teams/{team.id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_the_session_cookie_is_httponly_and_samesite_lax(client, team, sent):
    r = sign_in(client, sent, "bob@example.com")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie


def test_the_session_cookie_is_secure_when_base_url_is_https(db, env, team, sent):
    from starlette.testclient import TestClient

    from app.web.factory import create_app
    from tests.conftest import reset_caches

    env.setenv("BASE_URL", "https://donebox.test")
    reset_caches()
    with TestClient(create_app(), base_url="https://donebox.test") as c:
        r = c.get("/signin")
        assert "secure" in r.headers["set-cookie"].lower()


def test_signin_redirects_back_to_the_page_asked_for(client, team, sent):
    r = client.get(f"/teams/{team.id}/search", follow_redirects=False)
    assert r.headers["location"] == f"/signin?next=/teams/{team.id}/search"
    client.get(r.headers["location"])
    link = signin_link(client, sent, "bob@example.com", next=f"/teams/{team.id}/search")
    r = client.post(link, data={"csrf": csrf_of(client, link)}, follow_redirects=False)
    assert r.headers["location"] == f"/teams/{team.id}/search"


def test_an_offsite_next_is_ignored(client, team, sent):
    link = signin_link(client, sent, "bob@example.com", next="//evil.example/")
    r = client.post(link, data={"csrf": csrf_of(client, link)}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_an_address_gets_at_most_five_open_links_at_once(client, team, sent):
    from jobs.broker import drain

    for _ in range(8):
        post(client, "/signin", {"email": "bob@example.com"})
    drain()
    assert len([m for m in sent if m["To"] == "bob@example.com"]) == 5


def test_an_unsubscribed_person_still_gets_the_sign_in_link_but_a_bounced_one_does_not(client, team, sent):
    from app.models import Suppression

    with session() as s:
        s.add(Suppression(email="bob@example.com", reason="unsubscribe"))
        s.add(Suppression(email="ada@example.com", reason="bounce"))
    sign_in(client, sent, "bob@example.com")
    from jobs.broker import drain

    post(client, "/signin", {"email": "ada@example.com"})
    drain()
    assert not [m for m in sent if m["To"] == "ada@example.com"]


def test_signing_out_ends_a_copied_session_cookie_too(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    stolen = dict(client.cookies)
    assert post(client, "/signout").status_code == 303
    client.cookies.clear()
    client.cookies.update(stolen)
    r = client.get(f"/teams/{team.id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_machine_routes_have_no_session_and_pages_keep_theirs(client, team, sent):
    """Providers, applications and monitors have no browser session: PageSessions gives their
    routes an empty one (the cookie is not decoded); the pages get the signed-in session."""
    import asyncio

    from app.web.factory import PageSessions

    sign_in(client, sent, "bob@example.com")
    cookie = client.cookies.get("donebox_session")
    seen = {}

    async def inner(scope, receive, send):
        seen[scope["path"]] = scope.get("session")

    app = PageSessions(
        inner, secret_key=client.app.state.settings.secret_key, session_cookie="donebox_session"
    )
    for path in ("/", "/teams/1", "/healthz", "/api/teams", "/inbound/sendgrid", "/t/o/x", "/events/ses"):
        scope = {"type": "http", "path": path, "headers": [(b"cookie", f"donebox_session={cookie}".encode())]}
        asyncio.run(app(scope, None, None))
    assert seen["/"]["uid"] and seen["/teams/1"]["uid"]  # the pages: the signed-in session
    assert [p for p, v in seen.items() if v] == ["/", "/teams/1"]  # the others: an empty one
    assert client.get("/api/teams").status_code == 401  # the API knows no session, only its tokens
