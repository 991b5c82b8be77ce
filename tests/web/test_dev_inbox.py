def test_the_dev_inbox_lists_delivered_mail_and_is_gone_in_production(db, env, team):
    from starlette.testclient import TestClient

    from app.web import create_app
    from tests.conftest import reset_caches
    from tests.web.conftest import post

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
