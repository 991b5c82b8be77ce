"""Correcting a cut in real Chromium, at a desktop's and a phone's width: the day marks the guessed cut,
"show original" opens the reply at the cut, the author moves it with no script, the day shows the new
entries, and the case is exported by the CLI. Screenshots go to test-artifacts/."""

import json

import pytest

from tests.app.inbound.test_corrections import WRONGLY_CUT
from tests.app.web.pages import test_browser as browser

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]
live, browser_page = browser.live, browser.browser_page  # the app on uvicorn; Chromium
WIDTHS = {1280: 800, 390: 844}  # viewport width -> height, as tests/app/web/pages/test_phone.py


def in_view(page, selector: str) -> bool:
    """The element is inside the viewport, not only on the page."""
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
           return r.top >= 0 && r.bottom <= window.innerHeight
             && r.left >= 0 && r.right <= window.innerWidth; }""",
        selector,
    )


def fits(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_author_corrects_a_cut_from_the_day_page(live, browser_page, team, tmp_path, width):
    page, base, tid = browser_page, live, team.id
    page.set_viewport_size({"width": width, "height": WIDTHS[width]})
    iid = browser.reply(base, "bob@example.com", WRONGLY_CUT, "Re: today", f"<cut-{width}@t>")
    browser.sign_in(page, base, "bob@example.com")
    day = f"{base}/teams/{tid}?day={browser.team_today(tid).isoformat()}"

    def arrived():
        page.goto(day)
        return page.locator("text=Shipped the export").count()

    browser.until(arrived, "the reply on the team's day")
    entry = page.locator("ul.entries li", has_text="Shipped the export")
    assert entry.locator(".guess", has_text="cut by a guess").is_visible()
    assert page.locator("text=Fixed the flaky test").count() == 0
    assert fits(page)
    browser.shot(page, f"reply-cut-day-{width}")

    # "show original": the reply's page at the cut, the cut line in view, its rule named
    entry.locator("a", has_text="show original").click()
    page.wait_for_url(f"**/mail/inbound/{iid}#cut")
    assert page.locator("#cut").is_visible() and in_view(page, "#cut")
    assert "signature:delimiter" in page.inner_text("#cut")
    assert fits(page)
    browser.shot(page, f"reply-cut-original-{width}")

    # "this was cut wrongly": the reply ends at line 4
    page.click("label[for=end-4]")
    assert page.is_checked("#end-4")
    page.click("#move")
    page.wait_for_selector("#flash:has-text('The reply now ends at line 4')")
    assert "said the reply ends at line 4" in page.inner_text("#corrections")
    assert fits(page)
    browser.shot(page, f"reply-cut-moved-{width}")

    # the day shows the entries of the corrected text
    page.goto(day)
    for text in ("Shipped the export", "Fixed the flaky test", "Reviewed the docs"):
        assert page.locator("ul.entries li", has_text=text).count() == 1
    assert page.locator(".guess").count() == 0
    assert page.dialogs == []

    # and the operator exports the case
    from app.cli import main

    out = tmp_path / "cases.jsonl"
    assert main(["replies", "export-cases", "--out", str(out)]) == 0
    (case,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert case["expected"] == "Shipped the export\n--\nFixed the flaky test\nReviewed the docs"
    assert case["assertion"] == "corrected_by_author" and "bob@example.com" not in case["input"]
