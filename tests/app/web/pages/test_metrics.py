"""GET /metrics: who may read it, that it parses, and that events through the app move it."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from app.db import session
from app.models import InboundMessage
from app.relay import outbox
from tests.app.metrics.scraped import families, value
from tests.app.web.conftest import AUTH
from tests.app.web.hooks.test_tracking import BROWSER, path, send_digest
from tests.conftest import reset_caches

MAIL = (
    b"From: Ada <ada@example.com>\r\nTo: reply+1-20261123-aaaaaaaaaaaaaaaa@reply.test\r\n"
    b"Subject: Re: What did you get done today?\r\nMessage-ID: <metrics@example.com>\r\n\r\nShipped it.\r\n"
)
TOKEN = "metrics-Token-0123456789"
PROD = {"DONEBOX_ENV": "production", "MAIL_TRANSPORT": "memory"}


def scrape(client, **headers) -> str:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def _app(env, **settings):
    from app.web.factory import create_app

    for k, v in settings.items():
        env.setenv(k, v)
    reset_caches()
    return TestClient(create_app())


def test_production_without_a_token_answers_404_with_the_reason(db, env):
    with _app(env, **PROD) as c:
        r = c.get("/metrics")
        assert r.status_code == 404 and "METRICS_TOKEN" in r.json()["error"]


def test_with_a_token_only_its_bearer_reads_the_metrics(db, env):
    with _app(env, **PROD, METRICS_TOKEN=TOKEN) as c:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
            r = c.get("/metrics", headers=headers)
            assert r.status_code == 401 and "METRICS_TOKEN" in r.json()["error"], headers
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert "donebox_outbox_messages" in families(scrape(c, Authorization=f"Bearer {TOKEN}"))


def test_development_without_a_token_is_open(client):
    text = scrape(client)
    assert {"donebox_outbox_messages", "donebox_inbound_messages", "donebox_queue_messages"} <= families(text)


def test_an_inbound_post_moves_accepted_then_duplicate_and_a_refusal_counts_its_reason(client):
    before = scrape(client)
    assert client.post("/inbound/raw", content=MAIL, headers=AUTH).status_code == 202
    assert client.post("/inbound/raw", content=MAIL, headers=AUTH).status_code == 200
    bad = dict(AUTH, Authorization="Bearer nope")
    assert client.post("/inbound/raw", content=MAIL, headers=bad).status_code == 401
    assert client.post("/inbound/nosuch", content=MAIL, headers=AUTH).status_code == 404
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("donebox_inbound_accepted_total", provider="raw") == 1
    assert moved("donebox_inbound_duplicates_total", provider="raw") == 1
    assert moved("donebox_inbound_refused_total", provider="raw", reason="unauthenticated") == 1
    # an unknown provider's name is not a label (it is whatever the caller typed)
    assert moved("donebox_inbound_refused_total", provider="unknown", reason="not_configured") == 1


def test_processing_counts_the_outcome_and_the_delay_since_arrival(client):
    from jobs.broker import drain

    before = scrape(client)
    client.post("/inbound/raw", content=MAIL, headers=AUTH)
    drain()
    after = scrape(client)
    # the reply address names no member of this empty database: unverified
    assert (
        value(after, "donebox_inbound_processed_total", outcome="unverified")
        - value(before, "donebox_inbound_processed_total", outcome="unverified")
        == 1
    )
    assert value(after, "donebox_inbound_processing_seconds_count") > value(
        before, "donebox_inbound_processing_seconds_count"
    )
    assert value(after, "donebox_inbound_delay_seconds_count") > value(
        before, "donebox_inbound_delay_seconds_count"
    )


def test_the_database_gauges_count_waiting_mail_and_the_oldest_wait(client, team):
    from app.models import utcnow

    now = utcnow()
    with session() as s:
        for i in range(3):
            outbox.create(
                s,
                now=now - timedelta(seconds=120),
                idempotency_key=f"g{i}",
                kind="api",
                team_id=team.id,
                to_addr=f"g{i}@example.org",
                subject="Hi",
                context={},
                message_id=f"<g{i}@mail.test>",
                **({"state": "scheduled", "send_at": now + timedelta(days=1)} if i == 2 else {}),
            )
        s.add(
            InboundMessage(
                provider="raw", dedupe_key="k1", raw=b"x", received_at=now - timedelta(seconds=600)
            )
        )
    text = scrape(client)
    assert value(text, "donebox_outbox_messages", state="queued", kind="api") == 2
    assert value(text, "donebox_outbox_messages", state="scheduled", kind="api") == 1
    assert value(text, "donebox_inbound_messages", state="received") == 1
    assert 120 <= value(text, "donebox_queue_oldest_waiting_seconds", queue="outbound") < 180
    assert 600 <= value(text, "donebox_queue_oldest_waiting_seconds", queue="inbound") < 660
    assert value(text, "donebox_queue_oldest_waiting_seconds", queue="webhooks") == 0


def moved_(before: str, after: str, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_opens_and_clicks_through_the_tracking_routes_count_by_kind(client, team):
    import re

    _, msg = send_digest()
    html = msg.get_body(("html",)).get_content()
    (pixel,) = re.findall(r'src="([^"]+/t/o/[^"]+)"', html)
    clicks = re.findall(r'href="([^"]+/t/c/[^"]+)"', html)
    before = scrape(client)
    client.get(path(pixel), headers={"User-Agent": BROWSER})
    client.head(path(pixel), headers={"User-Agent": BROWSER})  # HEAD records nothing, counts nothing
    client.get(path(clicks[0]), headers={"User-Agent": BROWSER}, follow_redirects=False)
    after = scrape(client)
    assert moved_(before, after, "donebox_tracking_hits_total", kind="open") == 1
    assert moved_(before, after, "donebox_tracking_hits_total", kind="click") == 1
