"""Every page and the check-in emails at a phone's width and a desktop's, in real Chromium.

An admin (and operator) of a team with entries, mail out and mail in walks every page reachable
from the navigation and the pages' own links, at 1280 and at 390 px: the page never scrolls
sideways, and no button shows up empty. A full-page screenshot of each lands in
``var/screenshots/<width>/<page>.png`` (``DONEBOX_SCREENSHOTS`` moves it); the README's pictures
are taken from there. The digest and reminder, rendered by the relay's renderer, fit a phone with
and without their <style>, and turn dark when the reader's system is dark.
"""

import os
import re
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from sqlalchemy import select

from app.settings import ROOT
from tests.app.web.pages import test_browser as browser
from tests.conftest import FIXED_NOW, need

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]
SHOTS = Path(os.environ.get("DONEBOX_SCREENSHOTS", ROOT / "var" / "screenshots"))
WIDTHS = {1280: 800, 390: 844}  # viewport width -> height
LONG_URL = "https://example.com/" + "a-very-long-path-segment-without-any-break-" * 3 + "end"

live = browser.live  # the app on uvicorn in a thread, mail to the dev inbox

# what every page must satisfy: no sideways scroll, no button without a readable label inside the page
CHECK = """() => {
  const iw = window.innerWidth;
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden"
    && (!e.checkVisibility || e.checkVisibility());  // not inside a closed <details>
  const label = (e) => (e.innerText || e.value || "").trim() || (e.getAttribute("aria-label") || "").trim();
  const scrolls = (e) => {  // inside a container that scrolls sideways by itself (a wide table)
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)
      if (["auto", "scroll"].includes(getComputedStyle(p).overflowX)) return true;
    return false;
  };
  const bad = [];
  for (const b of document.querySelectorAll("button, a.button, input[type=submit]")) {
    if (!shown(b)) continue;
    const r = b.getBoundingClientRect();
    if (!label(b)) bad.push("empty: " + b.outerHTML.slice(0, 120));
    else if (b.scrollWidth > b.clientWidth + 1 || ((r.left < 0 || r.right > iw + 0.5) && !scrolls(b)))
      bad.push("cut: " + b.outerHTML.slice(0, 120));
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: iw, bad};
}"""

# pages named in the README and docs; any other page gets a name from its path
NAMES = {
    "/": "teams",
    "/teams/N": "team-day",
    "/teams/N?day": "team-past-day",
    "/teams/N/search": "search",
    "/teams/N/participation": "participation",
    "/teams/N/search?q": "search-results",
    "/teams/N/search?tag": "search-tag",
    "/teams/N/search?mention": "search-mention",
    "/teams/N/members/N": "member-history",
    "/teams/N/entries/N/edit": "entry-edit",
    "/teams/N/settings": "team-settings",
    "/teams/N/settings/me": "my-schedule",
    "/teams/N/settings/members": "members",
    "/teams/N/settings/tokens": "tokens",
    "/teams/N/settings/webhooks": "webhooks",
    "/teams/N/settings/chat": "chat",
    "/mail/outbound": "outbound",
    "/mail/outbound/N": "message-timeline",
    "/mail/inbound": "inbound",
    "/mail/inbound/N": "inbound-message",
    "/mail/suppressions": "suppressions",
    "/mail/senders": "senders",
    "/mail/health": "health",
    "/dev/inbox": "dev-inbox",
    "/dev/inbox/N": "dev-inbox-message",
}
MUST_REACH = set(NAMES.values()) - {"search-mention"}


def pattern(url: str) -> str:
    """One page per pattern: a path segment with a digit is an id, a query is its keys."""
    parts = urlsplit(url)
    path = "/".join("N" if re.search(r"\d", seg) else seg for seg in parts.path.split("/")) or "/"
    keys = sorted({kv.split("=", 1)[0] for kv in parts.query.split("&") if kv.split("=", 1)[0]})
    return path + ("?" + "&".join(keys) if keys else "")


def name_of(key: str) -> str:
    return NAMES.get(key) or re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "root"


def inside(base: str, href: str, here: str) -> str | None:
    """The path and query of an in-app page link, or None for elsewhere (API, tracking, other sites)."""
    url = urljoin(here, href)
    if not url.startswith(base + "/"):
        return None
    parts = urlsplit(url)
    if parts.path.startswith(("/api/", "/t/", "/inbound/", "/events/")) or parts.path.endswith("/html"):
        return None
    return parts.path + ("?" + parts.query if parts.query else "")


def check(page, width: int, name: str) -> list[str]:
    page.wait_for_load_state("load")
    found = page.evaluate(CHECK)
    folder = SHOTS / str(width)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    # then every confirmation opened: its "Yes, ..." button must fit too
    opened = page.evaluate(
        "() => { const d = document.querySelectorAll('details:not([open])');"
        " d.forEach((e) => { e.open = true; }); return d.length; }"
    )
    if opened:
        more = page.evaluate(CHECK)
        found["bad"] += [f"(confirmations open) {b}" for b in more["bad"]]
        found["scrollWidth"] = max(found["scrollWidth"], more["scrollWidth"])
    problems = [f"{name} at {width}: {b}" for b in found["bad"]]
    if found["scrollWidth"] > found["innerWidth"]:
        problems.append(f"{name} at {width}: {found['scrollWidth']} px wide in {found['innerWidth']}")
    return problems


def crawl(page, base: str, width: int, seeds: list[str]) -> tuple[set[str], list[str]]:
    """Visit every in-app page linked from the navigation and the pages, one per pattern."""
    seen, problems, queue = {}, [], list(seeds)
    while queue:
        url = queue.pop(0)
        key = pattern(url)
        if key in seen:
            continue
        seen[key] = url
        page.goto(base + url)
        problems += check(page, width, name_of(key))
        hrefs = page.eval_on_selector_all(
            "header a[href], nav a[href], main a[href]", "els => els.map(e => e.getAttribute('href'))"
        )
        queue += [u for u in (inside(base, h, page.url) for h in hrefs) if u]
    return {name_of(k) for k in seen}, problems


@pytest.fixture
def chromium():
    if not Path(browser.CHROMIUM).exists():
        need("chromium", f"no browser at {browser.CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser.CHROMIUM, args=browser.ARGS)
        yield b
        b.close()


def add_comment(tid: int, text: str, created_at=None) -> None:
    """Bob's comment on the first entry of the team's latest day (what a reply to the digest quoting
    it makes)."""
    from app.db import session
    from app.models import Comment, Entry, Member

    with session() as s:
        latest = select(Entry).where(Entry.team_id == tid).order_by(Entry.day.desc(), Entry.id)
        entry = s.execute(latest).scalars().first()
        bob = s.execute(select(Member).where(Member.team_id == tid, Member.name == "Bob")).scalar_one()
        extra = {"created_at": created_at} if created_at else {}
        s.add(Comment(team_id=tid, day=entry.day, entry_id=entry.id, author_id=bob.id, text=text, **extra))


def fill_the_team(page, base: str, tid: int, chat_url: str) -> None:
    """Entries (today by mail, a week ago by hand), reminders and digests out (the digest posted to
    a chat channel at ``chat_url`` too), a token, a second chat channel, a suppression,
    pass-through switched on by the operator."""
    browser.reply(
        base,
        "ada@example.com",
        f"Shipped the #phone layout\nGoal: screenshots for @bob\nRead {LONG_URL}",
        "Re: today",
        "<p1@t>",
    )
    browser.reply(
        base,
        "bob@example.com",
        "Fixed the digest width\nBlocked: waiting on the #design review",
        "Re",
        "<p2@t>",
    )
    browser.until(
        lambda: page.goto(f"{base}/teams/{tid}") and page.locator("text=Fixed the digest width").count(),
        "the replies on the team's day",
    )
    add_comment(tid, f"Great work, the write-up is at {LONG_URL}")  # a reply to the digest, on the day page
    week_ago = (browser.team_today(tid) - timedelta(days=7)).isoformat()
    page.goto(f"{base}/teams/{tid}?day={week_ago}")
    page.fill("textarea[name=text]", "Planned the #phone work with @bob")
    page.click("button:has-text('Add')")
    page.goto(f"{base}/teams/{tid}/settings/chat")  # the channel the digest is posted to
    page.fill("input[name=url]", chat_url)
    page.fill("input[name=label]", "#rocket")
    page.click("button:has-text('Add')")
    page.goto(f"{base}/dev/inbox")
    page.click("button:has-text('Send today\\'s reminders')")
    page.goto(f"{base}/dev/inbox")
    page.click("button:has-text('Send today\\'s digest')")
    browser.until(
        lambda: page.goto(f"{base}/dev/inbox") and page.locator("td", has_text="digest").count(),
        "the digest in the dev inbox",
    )
    page.goto(f"{base}/teams/{tid}/settings/tokens")
    page.fill("input[name=name]", "the nightly export to the wiki")
    page.click("button:has-text('Create')")
    page.goto(f"{base}/teams/{tid}/settings/chat")  # a second one: a long webhook URL, masked
    page.fill(
        "input[name=url]", "https://hooks.slack.com/services/T0123456789/B0123456789/abcdefghijklmnopqrstuvwx"
    )
    page.fill("input[name=label]", "#rocket-standup-and-release-notes")
    page.click("button:has-text('Add')")
    page.goto(f"{base}/mail/suppressions")
    page.fill("input[name=email]", "a.rather.long.address.for.a.phone@subdomain.example.com")
    page.fill("input[name=detail]", "asked by phone")
    page.click("button:has-text('Suppress')")
    page.goto(f"{base}/mail/senders")  # pass-through on: the senders page shows its longest state
    page.select_option("select[name=mode]", "on")
    page.click("button:has-text('Set')")


def add_a_webhook(tid: int) -> None:
    """An endpoint with a long URL and a delivery with a refused attempt, for the webhooks page."""
    from dataclasses import replace

    from app.db import session
    from app.models import WebhookAttempt, WebhookDelivery
    from app.relay import webhooks
    from app.settings import get_settings

    allowed = replace(get_settings(), webhook_allow_private=True)  # the host need not resolve here
    with session() as s:
        webhooks.add(s, tid, LONG_URL, ["sent", "entry_created"], now=FIXED_NOW, settings=allowed)
        webhooks.emit(s, "entry_created", [(tid, {"entry": {"text": "for the page"}})], now=FIXED_NOW)
        did = s.execute(select(WebhookDelivery.id)).scalar_one()
        s.add(WebhookAttempt(delivery_id=did, at=FIXED_NOW, status=500, latency_ms=12, response="no " * 200))


@pytest.fixture
def chat_server(env):
    """A local server standing in for Slack's incoming webhook; loopback channels allowed (set before
    ``live`` starts, which reads the settings once)."""
    from tests.app.relay.transports.webhook_server import WebhookServer

    env.setenv("CHAT_ALLOW_LOCAL", "true")
    server = WebhookServer().start()
    yield server
    server.stop()


def test_every_page_fits_a_phone_and_a_desktop(chat_server, live, chromium, team):
    from app.accounts.users import make_operator
    from app.db import session
    from app.models import Entry, OutboundMessage

    base, tid = live, team.id
    today = browser.team_today(tid)
    with session() as s:
        make_operator(s, "ada@example.com", now=FIXED_NOW)  # the operator pages are in the walk
        standup_with_goals(s, team, today)  # the questions on the settings page, open goals shown
    problems = []

    # signed out: the sign-in page and a page that does not exist
    for width, height in WIDTHS.items():
        context = chromium.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{base}/signin")
        problems += check(page, width, "signed-out-signin")
        page.goto(f"{base}/no/such/page")
        problems += check(page, width, "not-found")
        context.close()

    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(browser.WAIT_S * 1000)
    browser.sign_in(page, base, "ada@example.com")
    fill_the_team(page, base, tid, chat_server.url("slack"))
    with session() as s:
        eid = s.execute(select(Entry.id).order_by(Entry.id)).scalars().first()
    posted = select(OutboundMessage.id).where(OutboundMessage.kind == "chat", OutboundMessage.state == "sent")
    browser.until(lambda: chat_server.hits, "the digest's chat post at the local webhook")

    def sent_post():
        with session() as s:
            return s.execute(posted).scalars().first()

    chat_id = browser.until(sent_post, "the chat post sent")
    add_a_webhook(tid)
    seeds = [
        "/",
        f"/teams/{tid}/search?q=digest",
        f"/teams/{tid}/search?tag=phone",
        f"/teams/{tid}/entries/{eid}/edit",
    ]
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        reached, found = crawl(page, base, width, seeds)
        problems += found
        page.goto(f"{base}/mail/outbound/{chat_id}")  # the digest as posted to chat
        problems += check(page, width, "chat-post")
        assert MUST_REACH <= reached, f"not reached at {width}: {sorted(MUST_REACH - reached)}"
    context.close()
    assert problems == [], "\n".join(problems)


def standup_with_goals(s, team, today: date) -> None:
    """The team asks the standup questions, and Ada and Bob each left a goal open yesterday."""
    from app.checkins import teams
    from app.models import Entry, Member

    teams.update_team(s, team.id, now=FIXED_NOW, questions="standup")
    for m in s.execute(select(Member).where(Member.team_id == team.id, Member.role != "observer")).scalars():
        text = f"Review the #phone layout with @bob, then read {LONG_URL}" if m.name == "Ada" else "Ship 2.4"
        s.add(
            Entry(
                team_id=team.id,
                member_id=m.id,
                day=today - timedelta(days=1),
                text=text,
                kind="goal",
                question=1,
            )
        )
    s.flush()


def rendered(kind: str, team, settings) -> str:
    """The HTML part of ``kind`` (reminder, digest or participation) for Ada, made by the relay's renderer."""
    from app.checkins import outgoing, questions, summary
    from app.checkins.entries import Reply, add_many
    from app.db import session
    from app.models import Member, OutboundMessage
    from app.relay import outbox
    from app.relay.render import render_message

    day = FIXED_NOW.date()
    kind, standup = kind.removesuffix("-standup"), kind.endswith("-standup")
    with session() as s:
        members = {m.name: m for m in s.execute(select(Member).where(Member.team_id == team.id)).scalars()}
        if standup:
            standup_with_goals(s, team, day)
        if kind == "digest":
            texts = {
                "Ada": f"Shipped the #phone layout\nRead {LONG_URL}",
                "Bob": "Fixed the digest width\nBlocked: waiting on the design review",
            }
            asked = questions.PRESETS["standup" if standup else "default"]
            add_many(
                s,
                [
                    Reply(team.id, members[n].id, day, None, questions.drafts(t, asked)[0])
                    for n, t in texts.items()
                ],
                now=FIXED_NOW,
            )
            s.commit()
            add_comment(team.id, f"Nice, see {LONG_URL}", created_at=FIXED_NOW)  # the digest's comments
        if kind == "participation":  # Ada's weekly summary (app.checkins.summary), as the tick makes it
            row = summary.rows([(members["Ada"], team, team.timezone, day, day)], {team.id}, "t", set(), "p")
            mid, _ = outbox.create(s, now=FIXED_NOW, lease_until=FIXED_NOW, **row[0])
        else:
            make = outgoing.create_digest if kind == "digest" else outgoing.create_reminder
            mid, _ = make(s, members["Ada"], team, day, now=FIXED_NOW, settings=settings)
        _, _, html = render_message(s, s.get(OutboundMessage, mid), settings)
    return html


def looks(page, html: str, dark: bool) -> dict:
    page.emulate_media(color_scheme="dark" if dark else "light")
    page.set_content(html)
    return page.evaluate(
        """() => {
      const rgb = (c) => (c.match(/[\\d.]+/g) || [255, 255, 255]).slice(0, 3).map(Number);
      const lum = ([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;
      const card = document.querySelector(".card") || document.body;
      return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
              body: lum(rgb(getComputedStyle(document.body).backgroundColor)),
              card: lum(rgb(getComputedStyle(card).backgroundColor)),
              text: lum(rgb(getComputedStyle(card.querySelector("h1")).color))};
    }"""
    )


@pytest.mark.parametrize(
    "kind", ["digest", "reminder", "digest-standup", "reminder-standup", "participation"]
)
def test_the_checkin_emails_fit_a_phone_and_turn_dark(env, db, team, chromium, kind):
    from app.settings import get_settings

    html = rendered(kind, team, get_settings())
    assert 'name="color-scheme" content="light dark"' in html
    assert "prefers-color-scheme: dark" in html  # the dark block outlives the inliner
    stripped = re.sub(r"<style.*?</style>", "", html, flags=re.S)  # what a client dropping <style> shows
    folder = SHOTS / "390"
    folder.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 390, "height": 640})
    for name, doc, dark in (
        (f"email-{kind}", html, False),
        (f"email-{kind}-dark", html, True),
        (f"email-{kind}-no-style", stripped, False),
    ):
        seen = looks(page, doc, dark)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        assert seen["scrollWidth"] <= seen["innerWidth"], (name, seen)
        if dark:
            assert seen["body"] < 80 and seen["card"] < 80 and seen["text"] > 160, (name, seen)
        else:
            assert seen["body"] > 200 and seen["card"] > 200 and seen["text"] < 100, (name, seen)
    page.close()
