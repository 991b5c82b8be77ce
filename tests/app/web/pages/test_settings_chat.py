"""The team's chat page: add a channel's webhook (checked, shown masked), send a test post through
the outbox to a local server standing in for the service, remove it; members cannot."""

from datetime import date

import pytest
from sqlalchemy import select

from app.checkins import questions
from app.checkins.chat import create_digest_posts
from app.checkins.entries import Reply, add_many
from app.db import session
from app.models import ChatDestination, Member, OutboundMessage
from app.settings import get_settings
from jobs.broker import drain
from jobs.enqueue import enqueue_deliveries
from tests.app.relay.transports.webhook_server import WebhookServer
from tests.app.web.conftest import post, sign_in
from tests.conftest import FIXED_NOW


@pytest.fixture
def server(env):
    env.setenv("CHAT_ALLOW_LOCAL", "true")
    get_settings.cache_clear()
    s = WebhookServer().start()
    yield s
    s.stop()


def test_an_admin_adds_a_channel_sends_a_test_post_and_removes_it(server, client, team, sent):
    sign_in(client, sent, "ada@example.com")
    url = server.url("discord")
    r = post(
        client, f"/teams/{team.id}/settings/chat", {"service": "discord", "url": url, "label": "#standup"}
    )
    assert r.status_code == 303
    page = client.get(f"/teams/{team.id}/settings/chat").text
    assert "Discord added" in page and "#standup" in page
    assert url not in page and "testtokenABCDEF" not in page and "…CDEF" in page  # masked
    with session() as s:
        dest = s.execute(select(ChatDestination)).scalar_one()

    r = post(client, f"/teams/{team.id}/settings/chat/{dest.id}/test")
    assert r.status_code == 303 and r.headers["location"].startswith("/mail/outbound/")
    drain()
    (hit,) = server.hits
    assert hit.json["embeds"][0]["title"] == "donebox: a test post for Rocket"
    timeline = client.get(r.headers["location"]).text
    assert "sent" in timeline and "chat:" in timeline and url not in timeline
    assert "As POSTed to the webhook" in timeline and "a test post for Rocket" in timeline

    r = post(client, f"/teams/{team.id}/settings/chat/{dest.id}/remove")
    assert r.status_code == 200 and "The digest is no longer posted there" in r.text  # asked first
    r = post(client, f"/teams/{team.id}/settings/chat/{dest.id}/remove", {"confirm": "yes"})
    assert r.status_code == 303
    with session() as s:
        assert s.execute(select(ChatDestination)).scalars().all() == []
    assert post(client, f"/teams/{team.id}/settings/chat/{dest.id}/test").status_code == 404


@pytest.mark.parametrize(
    ("form", "field", "reason"),
    [
        ({"service": "slack", "url": "https://example.com/services/x"}, "url", "hooks.slack.com"),
        ({"service": "slack", "url": "http://hooks.slack.com/services/x"}, "url", "https://"),
        ({"service": "irc", "url": "https://hooks.slack.com/services/x"}, "service", "one of"),
        ({"service": "slack", "url": ""}, "url", "give the webhook URL"),
    ],
)
def test_a_refused_channel_is_shown_again_with_the_reason_beside_its_field(
    client, team, sent, form, field, reason
):
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings/chat", form)
    assert r.status_code == 422 and reason.lower() in r.text.lower()
    assert f'id="{field}"' in r.text and 'aria-invalid="true"' in r.text
    with session() as s:
        assert s.execute(select(ChatDestination)).scalars().all() == []


def test_a_member_cannot_see_or_change_the_chat_page(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    assert client.get(f"/teams/{team.id}/settings/chat").status_code == 403
    r = post(
        client,
        f"/teams/{team.id}/settings/chat",
        {"service": "slack", "url": "https://hooks.slack.com/services/x"},
    )
    assert r.status_code == 403
    with session() as s:
        assert s.execute(select(OutboundMessage).where(OutboundMessage.kind == "chat")).first() is None


def test_a_channel_can_ask_for_each_new_blocker_too(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    form = {"service": "slack", "url": "https://hooks.slack.com/services/T0/B0/abcd", "blockers": "1"}
    assert post(client, f"/teams/{team.id}/settings/chat", form).status_code == 303
    with session() as s:
        assert s.execute(select(ChatDestination.blockers)).scalar_one() is True
    assert "(and each new blocker)" in client.get(f"/teams/{team.id}/settings/chat").text


def test_a_digest_posts_page_shows_the_post_as_a_chat_shows_it_escaped(server, client, team, sent):
    sign_in(client, sent, "ada@example.com")
    url = server.url("slack")
    form = {"service": "slack", "url": url, "label": "#standup"}
    assert post(client, f"/teams/{team.id}/settings/chat", form).status_code == 303
    day = date(2026, 11, 23)
    with session() as s:
        bob = s.execute(select(Member).where(Member.name == "Bob")).scalar_one()
        drafts = questions.drafts("Shipped <b>bold</b> things\nBlocked: the review", ("Done?",))[0]
        add_many(s, [Reply(team.id, bob.id, day, None, drafts)], now=FIXED_NOW)
        (mid,) = create_digest_posts(s, {(team.id, day)}, now=FIXED_NOW, settings=get_settings())
        s.commit()
    enqueue_deliveries([mid])  # what the scheduler's tick does with the rows it made
    drain()
    (hit,) = server.hits
    assert hit.json["blocks"][0]["text"]["text"] == "What Rocket got done on Monday, 23 November"
    page = client.get(f"/mail/outbound/{mid}").text
    shown = page[page.index('id="post"') : page.index("</div>", page.index('id="post"'))]
    assert "What Rocket got done on Monday, 23 November" in shown
    assert "<strong>Bob</strong>" in shown and "Shipped &lt;b&gt;bold&lt;/b&gt; things" in shown
    assert "<b>bold</b>" not in shown  # an entry's text never becomes markup on our page
    assert f'href="http://donebox.test/teams/{team.id}?day=2026-11-23"' in shown
    assert "As POSTed to the webhook" in page  # and the JSON as received, below
