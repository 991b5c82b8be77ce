"""The team's webhooks page: an admin adds an endpoint (the secret once), sees every attempt of the
recent deliveries, replays a failed one (delivered to a real receiver), and removes the endpoint."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import session
from app.models import WebhookDelivery, WebhookEndpoint, utcnow
from app.relay import webhooks
from app.settings import get_settings
from tests.app.relay.test_webhooks import message, run, send
from tests.app.relay.webhook_receiver import Receiver
from tests.app.web.conftest import post, sign_in
from tests.conftest import FIXED_NOW


@pytest.fixture
def receiver(env):
    env.setenv("WEBHOOK_ALLOW_PRIVATE", "true")  # set before the app reads its settings
    get_settings.cache_clear()
    r = Receiver()
    yield r
    r.stop()


def state() -> str:
    with session() as s:
        return s.execute(select(WebhookDelivery.state)).scalar_one()


def test_an_admin_adds_an_endpoint_sees_the_attempts_and_a_replay_delivers(receiver, client, team, sent):
    sign_in(client, sent, "ada@example.com")
    url = f"/teams/{team.id}/settings/webhooks"
    assert "No endpoints yet" in client.get(url).text
    r = post(client, url, {"url": receiver.url, "description": "CRM", "kind_sent": "1"})
    assert r.status_code == 200, r.text
    receiver.secret = r.text.split('<code id="new-secret">')[1].split("<")[0]
    assert receiver.secret.startswith("whsec_")
    page = client.get(url).text
    assert receiver.url in page and receiver.secret not in page  # shown once

    send(message(team.id))
    receiver.status = 500
    at = FIXED_NOW
    while run(at) != {} and state() == "pending":
        with session() as s:
            at = s.execute(select(WebhookDelivery.next_attempt_at)).scalar_one()
    assert state() == "failed"
    page = client.get(url).text
    assert (
        page.count("HTTP 500") >= 10 and "receiver says no" in page and ">failed<" in page.replace("\n", "")
    )

    with session() as s:
        did = s.execute(select(WebhookDelivery.id)).scalar_one()
    r = post(client, f"{url}/deliveries/{did}/replay")
    assert r.status_code == 303
    assert "queued again" in client.get(url).text
    receiver.status = 200
    assert run(utcnow() + timedelta(seconds=1)) == {did: "delivered"}
    assert all(ok for ok, _, _ in receiver.received)
    page = client.get(url).text
    assert "HTTP 200" in page and '<td class="state">delivered' in page


def test_refused_forms_say_why_and_keep_what_was_typed(receiver, client, team, sent):
    sign_in(client, sent, "ada@example.com")
    url = f"/teams/{team.id}/settings/webhooks"
    r = post(client, url, {"url": receiver.url})
    assert r.status_code == 422 and "Tick at least one kind" in r.text and receiver.url in r.text
    r = post(client, url, {"url": "gopher://example.org/x", "kind_sent": "1"})
    assert r.status_code == 422 and "Url must be an http:// or https:// URL." in r.text
    assert 'value="gopher://example.org/x"' in r.text
    with session() as s:
        assert s.execute(select(WebhookEndpoint)).first() is None


def test_removing_asks_first_and_only_admins_reach_the_page(receiver, client, team, sent):
    with session() as s:
        eid = webhooks.add(s, team.id, receiver.url, ["sent"], now=FIXED_NOW, settings=get_settings()).id
    sign_in(client, sent, "bob@example.com")  # a member
    assert client.get(f"/teams/{team.id}/settings/webhooks").status_code == 403
    client.cookies.clear()
    sign_in(client, sent, "ada@example.com")
    remove = f"/teams/{team.id}/settings/webhooks/{eid}/remove"
    r = post(client, remove)
    assert r.status_code == 200 and "Remove the endpoint" in r.text  # the question, nothing removed
    with session() as s:
        assert s.get(WebhookEndpoint, eid) is not None
    assert post(client, remove, {"confirm": "yes"}).status_code == 303
    with session() as s:
        assert s.get(WebhookEndpoint, eid) is None
    assert post(client, remove, {"confirm": "yes"}).status_code == 404
