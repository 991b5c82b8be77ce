"""The participation page (a member sees the team and their own line, an admin everyone's; a chart in
inline SVG that fits a phone) and the export download from the team's pages."""

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import session
from app.models import Entry, Member, OutboundMessage, utcnow
from tests.app.checkins.test_participation import FIRST, LAST, three_weeks
from tests.app.web.conftest import sign_in
from tests.app.web.pages import test_browser as browser
from tests.app.web.pages.test_phone import CHECK, SHOTS
from tests.conftest import need

live = browser.live  # the app on uvicorn in a thread, mail to the dev inbox
SPAN = {"from": FIRST.isoformat(), "to": LAST.isoformat()}


@pytest.fixture
def world(db):
    return three_weeks()


def rows_of(page: str) -> dict[str, list[str]]:
    """{row id: its cells' text} of the participation table."""
    out = {}
    for rid, cells in re.findall(r'<tr id="([\w-]+)">(.*?)</tr>', page, re.S):
        out[rid] = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", cells, re.S)
        ]
    return out


def test_a_member_sees_the_team_and_their_own_line_with_a_described_chart(client, sent, world):
    sign_in(client, sent, "bob@tally.example")
    day = client.get(f"/teams/{world['team']}").text
    assert f'href="/teams/{world["team"]}/participation"' in day
    r = client.get(f"/teams/{world['team']}/participation", params=SPAN)
    assert r.status_code == 200, r.text
    rows = rows_of(r.text)
    assert rows == {
        "team-row": ["The team", "41", "35", "85%", "1", "6", "49 min"],  # 101400 s / 34 replies
        f"member-{world['Bob']}": ["Bob", "12", "11", "92%", "3", "8", "1 h 45 min"],  # 6300 s
    }
    assert "the team's admins see everyone's" in r.text
    svg = re.search(r"<svg.*?</svg>", r.text, re.S).group(0)
    assert 'role="img" aria-labelledby="chart-title chart-desc"' in svg
    assert '<title id="chart-title">Answer rate per day, 02 Nov to 22 Nov</title>' in svg
    assert "85% overall, lowest 33% (05 Nov), highest 100% (02 Nov)" in svg
    assert svg.count('class="bar"') == 15 and svg.count('class="none"') == 6  # weekdays; weekends
    assert "<title>Thu 05 Nov: 1 of 3 answered (33%)</title>" in svg
    assert "<title>Sat 07 Nov: nobody asked</title>" in svg


def test_an_admin_sees_every_member_and_a_long_span_is_charted_by_week(client, sent, world):
    sign_in(client, sent, "ada@tally.example")
    page = client.get(f"/teams/{world['team']}/participation", params=SPAN).text
    assert set(rows_of(page)) == {"team-row", *(f"member-{world[n]}" for n in ("Ada", "Bob", "Cy"))}
    assert rows_of(page)[f"member-{world['Cy']}"] == ["Cy", "14", "10", "71%", "1", "6", "10 min"]
    long = client.get(
        f"/teams/{world['team']}/participation", params={"from": "2026-01-01", "to": "2026-12-31"}
    )
    assert long.status_code == 200
    assert (
        "Answer rate per week" in long.text
        and "<title>week of 02 Nov: 12 of 15 answered (80%)</title>" in long.text
    )


@pytest.mark.parametrize(
    "params, said",
    [
        ({"from": "2026-11-31"}, "From must be YYYY-MM-DD."),
        ({"from": "2025-01-01", "to": "2026-11-22"}, "is 691 days; at most 366."),
        ({"from": "2026-11-22", "to": "2026-11-02"}, "From (2026-11-22) is after to (2026-11-02)."),
    ],
)
def test_a_refused_span_is_said_and_the_last_30_days_shown(client, sent, world, params, said):
    sign_in(client, sent, "bob@tally.example")
    r = client.get(f"/teams/{world['team']}/participation", params=params)
    assert r.status_code == 422
    assert said in r.text and "Showing the last 30 days." in r.text
    assert 'aria-invalid="true"' in r.text


def test_the_export_downloads_from_the_team_pages_for_a_member(client, sent, world, team):
    sign_in(client, sent, "bob@tally.example")
    page = client.get(f"/teams/{world['team']}/participation").text
    assert f'action="/teams/{world["team"]}/export"' in page
    r = client.get(f"/teams/{world['team']}/export", params={"format": "csv", **SPAN})
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith("attachment; ")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 38 and {x["member"] for x in rows} == {"Ada", "Bob", "Cy"}
    assert client.get(f"/teams/{world['team']}/export", params={"format": "pdf"}).status_code == 400
    bad = client.get(f"/teams/{world['team']}/export", params={"from": "2026-11-05", "to": "2026-11-04"})
    assert bad.status_code == 422 and "after to" in bad.text
    assert client.get(f"/teams/{team.id}/export").status_code == 404  # not Bob's team
    assert client.get(f"/teams/{team.id}/participation").status_code == 404


# --- at a phone's width, in Chromium ---------------------------------------------------------------


def _seed(team_id: int) -> None:
    """Thirty days of reminders for Ada and Bob of the fixture team, answered on most days (days of
    the team's own calendar, as the page counts them)."""
    from tests.app.web.pages.test_browser import team_today

    today = team_today(team_id)
    with session() as s:
        everyone = s.execute(select(Member).where(Member.team_id == team_id)).scalars()
        members = [m for m in everyone if m.role != "observer"]
        for i in range(1, 31):
            day = today - timedelta(days=i)
            for n, m in enumerate(members):
                sent_at = utcnow() - timedelta(days=i)
                s.add(
                    OutboundMessage(
                        idempotency_key=f"reminder:{m.id}:{day.isoformat()}",
                        kind="reminder",
                        team_id=team_id,
                        member_id=m.id,
                        to_addr=m.email,
                        message_id=f"<p{m.id}.{i}@t>",
                        state="sent",
                        sent_at=sent_at,
                    )
                )
                if (i + n) % 4:
                    s.add(
                        Entry(
                            team_id=team_id,
                            member_id=m.id,
                            day=day,
                            text="a very long entry " * 10,
                            created_at=sent_at + timedelta(minutes=20 + i),
                        )
                    )


@pytest.mark.e2e
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_page_fits_a_phone_and_its_chart_stays_readable(live, team):
    if not Path(browser.CHROMIUM).exists():
        need("chromium", f"no browser at {browser.CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _seed(team.id)
    base = live
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser.CHROMIUM, args=browser.ARGS)
        page = b.new_page(viewport={"width": 390, "height": 844})
        page.set_default_timeout(browser.WAIT_S * 1000)
        browser.sign_in(page, base, "bob@example.com")
        page.goto(f"{base}/teams/{team.id}")
        page.click("nav.sub >> text=Participation")
        page.wait_for_load_state("load")
        found = page.evaluate(CHECK)
        (SHOTS / "390").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "390" / "participation.png"), full_page=True)
        assert found["bad"] == [] and found["scrollWidth"] <= found["innerWidth"], found
        chart = page.evaluate(
            """() => {
          const svg = document.querySelector("figure.chart svg");
          const r = svg.getBoundingClientRect();
          const label = svg.querySelector("text").getBoundingClientRect();
          return {left: r.left, right: r.right, width: r.width, labelHeight: label.height,
                  title: svg.querySelector("title").textContent,
                  desc: svg.querySelector("desc").textContent,
                  bars: svg.querySelectorAll("rect.bar").length};
        }"""
        )
        assert chart["left"] >= 0 and chart["right"] <= 390 and chart["width"] > 300, chart
        assert chart["labelHeight"] >= 10, chart  # the axis labels stay legible once scaled down
        assert chart["title"].startswith("Answer rate per day") and "overall" in chart["desc"]
        assert chart["bars"] >= 29
        assert page.locator("#team-row").count() == 1 and page.locator("tr[id^=member-]").count() == 1
        b.close()
