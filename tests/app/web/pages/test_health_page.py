"""The operator's health page (/mail/health): the doctor's checks, the oldest inbound message waiting,
the providers' retry horizons, complaint rates per sending domain, circuits and queues; operators only."""

from __future__ import annotations

import re
from datetime import timedelta

from app.accounts.users import make_operator
from app.db import session
from app.models import InboundMessage, Sender, utcnow
from app.relay import routing
from app.settings import get_settings
from tests.app.test_health import messages
from tests.app.web.conftest import sign_in


def rows(page: str, table: str) -> list[str]:
    """The text of each row of the table with id ``table``, tags out."""
    body = page.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", "<tr" + r)).strip() for r in body.split("<tr")[2:]]


def test_members_and_team_admins_do_not_see_it_and_the_nav_links_it_for_operators(
    client, team, sent, local_dns
):
    sign_in(client, sent, "bob@example.com")
    assert client.get("/mail/health").status_code == 403
    sign_in(client, sent, "ada@example.com")  # the team's admin, not an operator
    assert client.get("/mail/health").status_code == 403
    assert 'href="/mail/health"' not in client.get("/mail/outbound").text
    with session() as s:
        make_operator(s, "ada@example.com", now=utcnow())
    assert 'href="/mail/health"' in client.get("/mail/outbound").text
    assert client.get("/mail/health").status_code == 200


def test_an_operator_sees_the_checks_complaint_rates_horizons_and_the_oldest_inbound(
    client, team, sent, local_dns
):
    now = utcnow()
    with session() as s:
        make_operator(s, "ada@example.com", now=now)
        messages(s, "news@a.example.org", 1000, complained=1, at=now)  # 0.1%: not over the line
        messages(s, "hi@b.example.org", 500, complained=1, at=now)  # 0.2%: over 0.1%
        messages(s, "hi@c.example.org", 250, complained=1, at=now)  # 0.4%: over 0.3%
        s.add(
            InboundMessage(
                provider="mailgun", dedupe_key="k1", raw=b"x", received_at=now - timedelta(hours=2)
            )
        )
    for _ in range(get_settings().breaker_failures):
        routing.breaker(get_settings()).failure("gone", "", connection=True)
    sign_in(client, sent, "ada@example.com")
    with session() as s:  # after the sign-in link went out through MAIL_TRANSPORT
        s.add(Sender(name="gone", url="smtp://127.0.0.1:9?tls=none&timeout=1"))  # the discard port: refused
    r = client.get("/mail/health")
    assert r.status_code == 200
    page = r.text
    assert "Something fails" in page
    checks = rows(page, "checks")
    assert checks[0].startswith("database ok reachable, migrated to 0")
    assert any(c.startswith("sender gone FAIL cannot connect to 127.0.0.1:9") for c in checks), checks
    assert any(c.startswith("mx reply.test warn a local name") for c in checks)
    assert any(c.startswith("inbound mailgun warn MAILGUN_SIGNING_KEY is unset") for c in checks)
    assert rows(page, "complaints") == [
        "a.example.org 1 1000 delivered 0.10%",
        "b.example.org 1 500 delivered 0.20% over 0.1%",
        "c.example.org 1 250 delivered 0.40% over 0.3%",
        "mail.test 0 1 sent 0.00%",  # MAIL_FROM's: the sign-in link, no delivery event
    ]
    assert 'class="complaints-fail" data-domain="c.example.org"' in page
    oldest = page.split('id="oldest-inbound">', 1)[1].split("</p>", 1)[0]
    assert "(mailgun)" in oldest and "120 minutes ago" in oldest
    assert "SendGrid retries for 3 days: its mail is lost from " in page
    assert "Mailgun retries for 8 hours" in page and "Postmark retries for about 10.5 hours" in page
    assert rows(page, "circuits")[0].startswith("gone every domain")
    routing.reset()
