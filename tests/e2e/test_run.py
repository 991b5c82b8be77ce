"""`donebox run` as a newcomer uses it: serves, sends reminders, takes a reply, sends a digest."""

import re
import time
import urllib.parse

import pytest

from tests.e2e.conftest import base_env, free_port, http, wait_until

pytestmark = pytest.mark.e2e


def test_donebox_run_serves_the_demo_loop_in_the_browser_pages(tmp_path, procs):
    env = base_env(tmp_path)
    env.pop("INBOUND_RAW_TOKEN")  # as on a fresh clone: development generates its own
    env.pop("SECRET_KEY")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    procs.start(["run", "--port", str(port)], env)
    wait_until(lambda: http("GET", base + "/healthz")[0] == 200, 60, "donebox run to serve")
    assert time.monotonic() - started < 60

    def reminders():
        status, body = http("GET", base + "/dev/inbox")
        keys = re.findall(r'href="/dev/inbox/([^"]+)">What did you get done today\?', body.decode())
        return status == 200 and len(keys) == 3 and keys

    keys = wait_until(reminders, 30, "the demo team's three reminders in /dev/inbox")
    status, page = http("GET", f"{base}/dev/inbox/{keys[0]}")
    assert status == 200 and b"reply+" in page and b'<iframe sandbox=""' in page

    form = urllib.parse.urlencode(
        {"text": "- Tried donebox from a fresh clone\n- Goal: invite the team"}
    ).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": base}
    assert (
        http("POST", f"{base}/dev/inbox/{keys[0]}/reply", form, {**headers, "Origin": "http://evil.test"})[0]
        == 403
    )
    status, _ = http("POST", f"{base}/dev/inbox/{keys[0]}/reply", form, headers)
    assert status in (200, 303)
    wait_until(
        lambda: b"Tried donebox from a fresh clone" in http("GET", base + "/")[1],
        30,
        "the reply's entry on the home page",
    )
    assert b"Goal:</span> invite the team" in http("GET", base + "/")[1]

    assert http("POST", f"{base}/dev/digest", b"", headers)[0] in (200, 303)

    def digests():
        body = http("GET", base + "/dev/inbox")[1].decode()
        return len(re.findall(r">What Demo team got done on", body)) == 3

    wait_until(digests, 30, "three digests in /dev/inbox")
