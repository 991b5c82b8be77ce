"""The generic webhook endpoints: names they do not know are 404, and they name no provider."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from tests.app.web.hooks.test_inbound_providers import PM_AUTH, basic, configure, stored  # noqa: F401 - fixture

HOOKS = Path(__file__).resolve().parents[4] / "app" / "web" / "hooks"
# a provider's name anywhere but in a comment ("ses" as a word: SES_TOPIC_ARNS counts, "uses" does not)
PROVIDER_NAME = re.compile(r"sendgrid|mailgun|postmark|(?<![a-z])ses(?![a-z])", re.IGNORECASE)


@pytest.fixture
def client(configure):  # noqa: F811
    return configure()


@pytest.mark.parametrize("url", ["/inbound/sendgird", "/inbound/imap", "/events/sendgird", "/events/imap"])
def test_an_unknown_provider_is_404_with_the_known_names(client, url):
    r = client.post(url, content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 404
    assert "sendgrid" in r.json()["error"] and "imap" not in r.json()["error"].split("known:")[1]
    assert stored() == 0


@pytest.mark.parametrize("name", ["raw"])
def test_a_provider_without_an_event_webhook_is_404_on_events(client, name):
    r = client.post(
        f"/events/{name}", content=b"[]", headers={"Content-Type": "application/json", **basic(PM_AUTH)}
    )
    assert r.status_code == 404 and "no event provider" in r.json()["error"]
    assert "ses" in r.json()["error"]


def test_a_production_message_names_the_missing_setting(configure, env):  # noqa: F811
    env.setenv("DONEBOX_ENV", "production")
    c = configure(MAILGUN_SIGNING_KEY=None)
    r = c.post(
        "/inbound/mailgun", content=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 404 and "MAILGUN_SIGNING_KEY" in r.json()["error"]


def test_the_raw_endpoint_still_wants_message_rfc822(client):
    r = client.post("/inbound/raw", content=b"x", headers={"Authorization": "Bearer test-inbound-token"})
    assert r.status_code == 415 and "message/rfc822" in r.json()["error"]


def code_outside_comments(path: Path) -> str:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)


@pytest.mark.parametrize("path", sorted(HOOKS.glob("*.py")), ids=lambda p: p.name)
def test_the_endpoint_modules_name_no_provider(path):
    assert PROVIDER_NAME.findall(code_outside_comments(path)) == []
