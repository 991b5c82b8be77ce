"""`donebox run` as a newcomer uses it: sign in from the dev inbox, answer a reminder, send the digest."""

import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.e2e.conftest import base_env, free_port, wait_until

pytestmark = pytest.mark.e2e


class Browser:
    """A cookie-keeping HTTP client that reads the CSRF token off each page it gets."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.csrf = ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        m = re.search(r'name="csrf" value="([^"]+)"', body)
        self.csrf = m.group(1) if m else self.csrf
        return status, body

    def post(self, path: str, fields: dict, csrf: bool = True) -> tuple[int, str]:
        data = urllib.parse.urlencode({**fields, **({"csrf": self.csrf} if csrf else {})}).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=data), timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


def test_donebox_run_serves_the_demo_loop_in_the_browser_pages(tmp_path, procs):
    env = base_env(tmp_path)
    env.pop("INBOUND_RAW_TOKEN")  # as on a fresh clone: development generates its own
    env.pop("SECRET_KEY")
    port = free_port()
    b = Browser(f"http://127.0.0.1:{port}")
    procs.start(["run", "--port", str(port)], env)
    wait_until(lambda: b.get("/healthz")[0] == 200, 60, "donebox run to serve")

    def inbox_keys(subject: str):
        status, body = b.get("/dev/inbox")
        return re.findall(r'href="/dev/inbox/([^"]+)">' + re.escape(subject), body) if status == 200 else []

    reminders = wait_until(
        lambda: (
            len(inbox_keys("What did you get done today?")) == 3
            and inbox_keys("What did you get done today?")
        ),
        30,
        "the demo team's three reminders",
    )

    # sign in as the demo team's admin, with the link the dev inbox shows
    b.get("/signin")
    assert b.post("/signin", {"email": "ada@example.com"})[0] == 200
    link_mail = wait_until(lambda: inbox_keys("Your donebox sign-in link"), 30, "the sign-in email")[0]
    body = html.unescape(b.get(f"/dev/inbox/{link_mail}")[1])
    token_path = re.search(r"/signin/[A-Za-z0-9_.=-]+", body).group(0)
    b.get(token_path)
    status, page = b.post(token_path, {})
    assert status == 200 and "Demo team" in page

    ada = next(k for k in reminders if "ada@example.com" in b.get(f"/dev/inbox/{k}")[1])
    b.get(f"/dev/inbox/{ada}")
    reply = {"text": "- Tried donebox from a fresh clone\n- Goal: invite the team"}
    assert b.post(f"/dev/inbox/{ada}/reply", reply, csrf=False)[0] == 403  # a form from elsewhere
    assert b.post(f"/dev/inbox/{ada}/reply", reply)[0] == 200
    team_page = wait_until(
        lambda: "Tried donebox from a fresh clone" in b.get("/")[1] and b.get("/")[1],
        30,
        "the reply's entry on the team page",
    )
    assert "invite the team" in team_page

    b.get("/dev/inbox")
    assert b.post("/dev/digest", {})[0] == 200
    wait_until(lambda: len(inbox_keys("What Demo team got done on")) == 3, 30, "three digests in /dev/inbox")
