def test_the_dev_inbox_lists_delivered_mail_and_is_gone_in_production(db, env, team):
    from starlette.testclient import TestClient

    from app.web.factory import create_app
    from tests.app.web.conftest import post
    from tests.conftest import reset_caches

    env.setenv("MAIL_TRANSPORT", "maildir")
    reset_caches()
    with TestClient(create_app()) as c:
        post(c, "/signin", {"email": "bob@example.com"})
        from jobs.broker import drain

        drain()
        page = c.get("/dev/inbox").text
        assert "Your donebox sign-in link" in page
        key = page.split('href="/dev/inbox/')[1].split('"')[0]
        one = c.get(f"/dev/inbox/{key}")
        assert one.status_code == 200 and "/signin/" in one.text
        assert c.get("/dev/inbox/../../etc").status_code == 404
    env.setenv("DONEBOX_ENV", "production")
    reset_caches()
    with TestClient(create_app()) as c:
        assert c.get("/dev/inbox").status_code == 404


def test_a_reminder_answered_from_the_dev_inbox_becomes_entries_and_needs_the_forms_token(db, env, team):
    import re

    from sqlalchemy import select
    from starlette.testclient import TestClient

    from app.db import session
    from app.models import Entry, InboundMessage
    from app.web.factory import create_app
    from jobs.broker import drain
    from tests.conftest import reset_caches

    env.setenv("MAIL_TRANSPORT", "maildir")
    reset_caches()
    with TestClient(create_app()) as c:
        page = c.get("/dev/inbox").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert c.post("/dev/remind", data={}).status_code == 403  # no token: not from our page
        assert c.post("/dev/remind", data={"csrf": csrf}).status_code == 200
        drain()
        page = c.get("/dev/inbox").text
        keys = re.findall(r'href="/dev/inbox/([^"]+)">What did you get done today\?', page)
        assert len(keys) == 2  # Ada and Bob; the observer is never asked
        ada = next(k for k in keys if "ada@example.com" in c.get(f"/dev/inbox/{k}").text)
        assert c.post(f"/dev/inbox/{ada}/reply", data={"csrf": csrf, "text": ""}).status_code == 422
        r = c.post(f"/dev/inbox/{ada}/reply", data={"csrf": csrf, "text": "- Wrote the dev form test"})
        assert r.status_code == 200 and r.url.path == f"/dev/inbox/{ada}" and "Reply sent" in r.text
        drain()
        r = c.post("/dev/digest", data={"csrf": csrf})
        assert r.status_code == 200 and "Queued 3 digests" in r.text  # the observer reads digests too
        drain()
        assert "What Rocket got done on" in c.get("/dev/inbox").text
    with session() as s:
        row = s.execute(select(InboundMessage)).scalar_one()
        assert row.provider == "dev" and row.state == "processed"
        assert [e.text for e in s.execute(select(Entry)).scalars()] == ["Wrote the dev form test"]
    env.setenv("DONEBOX_ENV", "production")
    reset_caches()
    with TestClient(create_app()) as c:
        assert c.post("/dev/remind", data={"csrf": csrf}).status_code == 404
        assert c.post(f"/dev/inbox/{ada}/reply", data={"csrf": csrf, "text": "x"}).status_code == 404


def test_a_signed_in_reply_from_the_dev_inbox_ends_on_a_page_saying_it_was_sent(db, env, team):
    import re

    from starlette.testclient import TestClient

    from app.web.factory import create_app
    from jobs.broker import drain
    from tests.app.web.conftest import csrf_of, post
    from tests.conftest import reset_caches

    env.setenv("MAIL_TRANSPORT", "maildir")
    reset_caches()
    with TestClient(create_app()) as c:
        post(c, "/signin", {"email": "ada@example.com"})
        drain()
        key = c.get("/dev/inbox").text.split('href="/dev/inbox/')[1].split('"')[0]
        link = re.search(r"http://donebox\.test(/signin/[A-Za-z0-9._-]+)", c.get(f"/dev/inbox/{key}").text)
        assert c.post(link.group(1), data={"csrf": csrf_of(c, link.group(1))}).status_code == 200
        inbox = c.get("/dev/inbox")
        assert "ada@example.com" in inbox.text and "Sign out" in inbox.text  # the signed-in header
        digest = post(c, "/dev/digest")
        assert digest.status_code == 303 and digest.headers["location"] == "/dev/inbox"
        assert re.search(r"Queued \d+ digests", c.get("/dev/inbox").text)  # Ada, Bob and Olga's
        r = c.post("/dev/remind", data={"csrf": csrf_of(c, "/dev/inbox")})
        assert r.url.path == "/dev/inbox" and "Queued 2 reminders" in r.text
        drain()
        page = c.get("/dev/inbox").text
        keys = re.findall(r'href="/dev/inbox/([^"]+)">What did you get done today\?', page)
        ada = next(k for k in keys if "ada@example.com" in c.get(f"/dev/inbox/{k}").text)
        refused = c.post(f"/dev/inbox/{ada}/reply", data={"csrf": csrf_of(c, "/dev/inbox"), "text": "- "})
        assert refused.status_code == 422 and 'id="text-error"' in refused.text
        r = c.post(f"/dev/inbox/{ada}/reply", data={"csrf": csrf_of(c, "/dev/inbox"), "text": "- Shipped"})
        assert r.status_code == 200 and r.url.path == f"/dev/inbox/{ada}"
        assert "Reply sent" in r.text and "Sign out" in r.text and "/signin" not in str(r.url)
        assert "Reply sent" not in c.get(f"/dev/inbox/{ada}").text  # said once
