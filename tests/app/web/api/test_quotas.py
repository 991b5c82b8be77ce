"""Per-team quotas of application mail: 429 with Retry-After past the limit, nothing stored, check-in
mail not counted, the usage on the outbound mail page."""

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import OutboundMessage, TeamRelay, utcnow
from app.relay import outbox
from app.relay.api_tokens import create_token
from app.settings import load
from tests.app.web.conftest import sign_in


def quota(team_id: int, hour: int | None = None, day: int | None = None) -> None:
    with session() as s:
        s.add(TeamRelay(team_id=team_id, quota_hour=hour, quota_day=day))


@pytest.fixture
def token(team):
    with session() as s:
        return create_token(s, "app", now=utcnow(), team_id=team.id, scopes=("send", "read"))


def send(client, token, n: int = 0, **extra):
    body = {"to": f"c{n}@example.org", "subject": f"Invoice {n}", "text": "paid", **extra}
    return client.post("/api/messages", json=body, headers={"Authorization": f"Bearer {token}"})


def api_rows(team_id: int) -> int:
    with session() as s:
        M = OutboundMessage
        return s.execute(select(func.count()).where(M.kind == "api", M.team_id == team_id)).scalar_one()


def earlier(team_id: int, n: int, ago: timedelta, kind: str = "api") -> None:
    """``n`` messages of the team made ``ago`` (the outbox is the quota's count)."""
    with session() as s:
        for i in range(n):
            outbox.create(
                s,
                now=utcnow() - ago,
                idempotency_key=f"earlier:{kind}:{ago}:{i}",
                kind=kind,
                team_id=team_id,
                to_addr=f"e{i}@example.org",
                subject="earlier",
                template="api",
                context={"text": "x", "html": ""},
                message_id=f"<e{i}.{kind}@donebox.test>",
            )


def test_the_sixth_message_in_an_hour_gets_429_with_retry_after_and_is_not_queued(client, team, token):
    quota(team.id, hour=5)
    for n in range(5):
        assert send(client, token, n).status_code == 202
    r = send(client, token, 6)
    assert r.status_code == 429
    assert "5 of its 5 messages in the last hour" in r.json()["error"]
    assert 1 <= int(r.headers["Retry-After"]) <= 3600
    assert api_rows(team.id) == 5


def test_retry_after_is_when_the_oldest_message_leaves_the_hour(client, team, token):
    quota(team.id, hour=5)
    earlier(team.id, 2, timedelta(minutes=50))
    earlier(team.id, 3, timedelta(minutes=10))
    r = send(client, token)
    assert r.status_code == 429
    # the first of the two sent 50 minutes ago leaves the window in 10 minutes (600 s)
    assert 500 < int(r.headers["Retry-After"]) <= 600
    assert api_rows(team.id) == 5


def test_the_day_quota_from_the_setting_holds_for_a_team_without_its_own(client, team, token, env):
    env.setenv("TEAM_QUOTA_DAY", "3")
    assert load().team_quota_day == 3
    client.app.state.settings = replace(client.app.state.settings, team_quota_day=3)
    earlier(team.id, 3, timedelta(hours=20))
    r = send(client, token)
    assert r.status_code == 429 and "in the last 24 hours" in r.json()["error"]
    assert 4 * 3600 - 100 < int(r.headers["Retry-After"]) <= 4 * 3600
    quota(team.id, day=0)  # the team's own: no limit
    assert send(client, token).status_code == 202


def test_check_in_mail_and_old_mail_do_not_count(client, team, token):
    quota(team.id, hour=5)
    earlier(team.id, 10, timedelta(minutes=5), kind="reminder")
    earlier(team.id, 10, timedelta(minutes=61))
    for n in range(5):
        assert send(client, token, n).status_code == 202
    assert send(client, token, 9).status_code == 429


def test_a_known_idempotency_key_is_answered_when_the_quota_is_full(client, team, token):
    quota(team.id, hour=1)
    assert send(client, token, idempotency_key="order-1").status_code == 202
    again = send(client, token, idempotency_key="order-1")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert send(client, token, idempotency_key="order-2").status_code == 429
    assert api_rows(team.id) == 1


def test_the_mail_page_shows_the_usage_and_the_limits(client, team, token, sent):
    quota(team.id, hour=5, day=100)
    for n in range(5):
        assert send(client, token, n).status_code == 202
    sign_in(client, sent, "ada@example.com")
    page = client.get("/mail/outbound").text
    assert "5 of 5 this hour" in page and "5 of 100 in 24 hours" in page
