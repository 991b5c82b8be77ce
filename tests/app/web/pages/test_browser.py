"""Browser tests: real Chromium (Debian's package) driven by Playwright against a live server.

Sign in through the magic link from the dev inbox, invite a member, change a schedule, see a
reply arrive as entries, search, open a message's timeline, reprocess an inbound message; and
with every XSS payload in the data, no dialog fires on any page. Screenshots go to test-artifacts/.
"""

import json
import os
import re
import socket
import threading
import time
import urllib.request
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from app.settings import ROOT
from tests.conftest import need, reset_caches

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
WAIT_S = 30  # a generous bound for background delivery; never a timing assertion


@pytest.fixture
def live(db, env, team):
    """The app on uvicorn in a thread, mail to the dev inbox; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env.setenv("MAIL_TRANSPORT", "maildir")
    env.setenv("BASE_URL", base)
    reset_caches()
    from app.web.factory import create_app

    config = uvicorn.Config(create_app(), log_level="warning", ws="none", loop="asyncio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield base
    server.should_exit = True
    thread.join(WAIT_S)
    sock.close()


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        need("chromium", f"no browser at {CHROMIUM} (`make services` installs chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.set_default_timeout(WAIT_S * 1000)
        page.dialogs = []

        def on_dialog(dialog):
            page.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        yield page
        browser.close()


def until(fn, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def shot(page, name: str) -> None:
    page.wait_for_load_state("load")  # frames included
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/signin")
    page.fill("input[name=email]", email)
    page.click("text=Email me a sign-in link")
    page.wait_for_selector("text=Check your email")

    def link():
        page.goto(f"{base}/dev/inbox")
        row = page.locator("tr", has_text=email).filter(has_text="sign-in link").first
        return row if row.count() else None

    until(link, "the sign-in email in the dev inbox")
    shot(page, "dev-inbox")
    page.locator("tr", has_text=email).filter(has_text="sign-in link").first.locator("a").click()
    url = re.search(r"http://\S+/signin/\S+", page.locator("pre").inner_text()).group(0)
    page.goto(url)
    page.click("#signin")
    page.wait_for_selector(f"text={email}")


def team_today(team_id: int) -> date:
    """Today where the team lives: its pages, replies and reports go by the team's day, which is
    not the machine's (UTC) for an hour or more each night."""
    from zoneinfo import ZoneInfo

    from app.db import session
    from app.models import Team

    with session() as s:
        return datetime.now(ZoneInfo(s.get(Team, team_id).timezone)).date()


def reply(base: str, email: str, body: str, subject: str, msgid: str) -> int:
    from email.message import EmailMessage

    from app.checkins.reply_tokens import reply_address
    from app.db import session
    from app.models import Member

    with session() as s:
        mid, tid = s.execute(select(Member.id, Member.team_id).where(Member.email == email)).one()
    m = EmailMessage()
    m["From"], m["Subject"], m["Message-ID"] = email, subject, msgid
    m["To"] = reply_address("test-secret-key-0123456789-abcdefXYZ", "reply.test", mid, team_today(tid))
    m.set_content(body)
    m.add_alternative(f"<p>{body}</p>", subtype="html")
    req = urllib.request.Request(
        f"{base}/inbound/raw",
        data=bytes(m),
        headers={"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"},
    )
    with urllib.request.urlopen(req, timeout=WAIT_S) as r:
        assert r.status == 202
        return json.loads(r.read())["id"]


def test_a_team_admin_runs_the_team_in_the_browser(live, browser_page, team):
    page, base, tid = browser_page, live, team.id
    sign_in(page, base, "ada@example.com")
    assert page.url.endswith(f"/teams/{tid}")

    # invite a member
    page.goto(f"{base}/teams/{tid}/settings/members")
    page.fill("form[action$='/settings/members'] input[name=email]", "cy@example.com")
    page.fill("form[action$='/settings/members'] input[name=name]", "Cy")
    page.click("button:has-text('Invite')")
    page.wait_for_selector("text=Invited cy@example.com")
    shot(page, "members")

    # change a schedule: one's own time zone, then the team's reminder time
    page.goto(f"{base}/teams/{tid}/settings/me")
    page.select_option("select[name=timezone]", "Asia/Tokyo")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Your schedule is saved")
    shot(page, "my-schedule")
    page.goto(f"{base}/teams/{tid}/settings")
    page.fill("input[name=reminder_time]", "18:30")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Team settings saved")
    assert page.input_value("input[name=reminder_time]") == "18:30"
    shot(page, "team-settings")

    # a reply arrives and becomes entries
    iid = reply(
        base, "ada@example.com", "Shipped the #browser tests\nReviewed @bob's parser", "Re: today", "<b1@t>"
    )
    reply(base, "bob@example.com", "Fixed the digest layout\nPaired with @ada", "Re: today", "<b2@t>")

    def arrived():  # the replies' day: Ada's own today is already tomorrow in Tokyo after 15:00 UTC
        page.goto(f"{base}/teams/{tid}?day={team_today(tid).isoformat()}")
        return page.locator("text=Shipped the").count() and page.locator("text=Fixed the digest").count()

    until(arrived, "the replies on the team's day")
    assert page.locator("a.tag", has_text="#browser").count() == 1
    shot(page, "team-day")

    # search
    page.goto(f"{base}/teams/{tid}/search")
    page.fill("input[name=q]", "digest")
    page.click("button:has-text('Search')")
    page.wait_for_selector("text=Fixed the digest layout")
    assert page.locator("text=Shipped the").count() == 0
    shot(page, "search")

    # a message's timeline: the invitation
    page.goto(f"{base}/mail/outbound")
    shot(page, "outbound")
    page.click("text=You joined Rocket on donebox")
    until(lambda: page.locator("#timeline td", has_text="sent").count(), "the timeline to show sent")
    timeline = page.inner_text("#timeline")
    assert timeline.index("queued") < timeline.index("sending") < timeline.rindex("sent")
    shot(page, "message-timeline")

    # reprocess an inbound message
    page.goto(f"{base}/mail/inbound")
    shot(page, "inbound")
    page.click(f"a[href='/mail/inbound/{iid}'] >> nth=0")
    page.click("#reprocess summary")  # a destructive action asks first
    page.click("#reprocess button:has-text('Yes, reprocess')")
    page.wait_for_selector("text=Reprocessing")

    def processed():
        page.goto(f"{base}/mail/inbound/{iid}")
        return page.inner_text("#state") == "processed"

    until(processed, "the reprocessed message")
    assert "Shipped the #browser tests" in page.inner_text("#reply")
    assert page.frame_locator("iframe").locator("text=Shipped the").count() == 1  # the sandboxed HTML part
    shot(page, "inbound-message")
    assert page.dialogs == []


def test_no_xss_payload_fires_a_dialog_in_the_browser(live, browser_page, team):
    from tests.app.web.pages.xss import PAYLOADS

    page, base, tid = browser_page, live, team.id
    ids = [reply(base, "bob@example.com", "\n".join(PAYLOADS), "all of them", "<all@t>")]
    for i, payload in enumerate(PAYLOADS):
        ids.append(reply(base, "bob@example.com", f"subject {i}", payload, f"<s{i}@t>"))
    from app.db import session
    from app.models import InboundMessage

    def done():
        with session() as s:
            return set(s.execute(select(InboundMessage.state)).scalars()) == {"processed"}

    until(done, "every hostile reply processed")
    sign_in(page, base, "ada@example.com")
    urls = [
        f"/teams/{tid}",
        f"/teams/{tid}/search?q=alert",
        f"/teams/{tid}/search?tag=img",
        "/mail/inbound",
    ] + [f"/mail/inbound/{i}" for i in ids[:6]]
    for url in urls:
        page.goto(base + url)
        page.wait_for_load_state("load")
    shot(page, "hostile-inbound-message")
    page.goto(f"{base}/teams/{tid}")
    shot(page, "hostile-team-day")
    assert page.locator("text=<script>alert(1)</script>").count() >= 1  # shown as text
    assert page.dialogs == []
    assert page.evaluate("() => window.__xss === undefined")
