"""Chat posts through the outbox: each service's webhook format, checked at a local server standing
in for it; 429 with Retry-After deferred then sent; a 400 failed with the answer on the timeline."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.db import session
from app.models import ChatDestination, MessageEvent, OutboundMessage
from app.relay import chat, outbox
from app.relay.pipeline import deliver
from app.relay.transports.webhook import retry_after_s
from app.settings import SettingsError, load
from tests.app.relay.transports.webhook_server import PATHS, WebhookServer
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW
DAY_URL = "http://donebox.test/teams/1?day=2026-11-23"
# what people wrote, with every way it could become markup or notify a whole channel
TRICKY = "<!channel> @everyone @all *bold* <b>x</b> [link](http://evil.example) & done"
POST = chat.Post(
    title="What Rocket got done on Monday, 23 November",
    url=DAY_URL,
    sections=(
        chat.Section("Blockers (1)", ("Bob: waiting on the API key",)),
        chat.Section("Ada", ("Shipped the release", TRICKY)),
        chat.Section("Bob", ("[blocked] waiting on the API key",)),
    ),
    footer="No reply from: Olga",
    link_text="Open the day in donebox",
)


@pytest.fixture
def server():
    s = WebhookServer().start()
    yield s
    s.stop()


def post_row(team_id: int, service: str, url: str, post: chat.Post = POST) -> int:
    with session() as s:
        dest = ChatDestination(team_id=team_id, service=service, url=url, created_at=NOW)
        s.add(dest)
        s.flush()
        mid, _ = outbox.create(
            s,
            now=NOW,
            idempotency_key=f"chat:{dest.id}:2026-11-23",
            kind="chat",
            team_id=team_id,
            to_addr=chat.to_addr(dest.id),
            subject="Rocket: the digest",
            context=post.to_json(),
            message_id=outbox.new_message_id("mail.test"),
            expires_at=NOW + timedelta(days=2),
        )
    return mid


def row(mid: int) -> OutboundMessage:
    with session() as s:
        return s.get(OutboundMessage, mid)


def timeline(mid: int) -> list[tuple[str, str, str]]:
    with session() as s:
        rows = s.execute(select(MessageEvent).where(MessageEvent.message_id == mid).order_by(MessageEvent.id))
        return [(e.from_state, e.kind, e.detail) for e in rows.scalars()]


def texts(value) -> list[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def test_slack_gets_blocks_with_a_header_mrkdwn_sections_and_a_button_back_to_the_day(team, server):
    mid = post_row(team.id, "slack", server.url("slack"))
    assert deliver(mid, transport=None, now=NOW) == "sent"
    (hit,) = server.hits
    assert hit.headers["Content-Type"].startswith("application/json")
    body = hit.json
    assert body["text"].startswith("What Rocket got done")  # the notification's fallback
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and "actions" in kinds
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": POST.title}
    ada = next(b for b in body["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("*Ada*"))
    assert ada["text"]["type"] == "mrkdwn" and "• Shipped the release" in ada["text"]["text"]
    assert "&lt;!channel&gt;" in ada["text"]["text"] and "<!channel>" not in ada["text"]["text"]
    button = next(b for b in body["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == DAY_URL and button["text"]["text"] == "Open the day in donebox"
    assert row(mid).state == "sent" and row(mid).sent_at == NOW


def test_mattermost_gets_markdown_text_linking_back_with_mentions_defused(team, server):
    mid = post_row(team.id, "mattermost", server.url("mattermost"))
    assert deliver(mid, transport=None, now=NOW) == "sent"
    text = server.hits[0].json["text"]
    assert text.startswith("#### [What Rocket got done") and f"]({DAY_URL})" in text
    assert "**Ada**" in text and "Shipped the release" in text
    assert "@everyone" not in text and "@\u200beveryone" in text and "@\u200ball" in text
    assert "[link](http://evil.example)" not in text  # escaped: shown, never a link


def test_teams_gets_an_adaptive_card_in_a_message_with_an_open_url_action(team, server):
    mid = post_row(team.id, "teams", server.url("teams"))
    assert deliver(mid, transport=None, now=NOW) == "sent"  # Workflows answer 202
    body = server.hits[0].json
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert all(b["type"] == "TextBlock" for b in card["body"])
    assert card["body"][0]["weight"] == "Bolder"
    assert any("Shipped the release" in b["text"] for b in card["body"])
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the day in donebox", "url": DAY_URL}]


def test_google_chat_gets_cards_v2_with_escaped_paragraphs_and_an_open_link_button(team, server):
    mid = post_row(team.id, "googlechat", server.url("googlechat"))
    assert deliver(mid, transport=None, now=NOW) == "sent"
    hit = server.hits[0]
    assert hit.path.endswith("?key=testkey&token=testtoken")  # the query string is the webhook's key
    body = hit.json
    assert body["text"] == f"{POST.title}: {DAY_URL}"
    (card,) = body["cardsV2"]
    assert card["cardId"] and card["card"]["header"]["title"] == POST.title
    sections = card["card"]["sections"]
    ada = next(x for x in sections if x.get("header") == "Ada")
    para = ada["widgets"][0]["textParagraph"]["text"]
    assert "• Shipped the release<br>" in para and "&lt;b&gt;x&lt;/b&gt;" in para and "<b>" not in para
    button = sections[-1]["widgets"][0]["buttonList"]["buttons"][0]
    assert button["onClick"]["openLink"]["url"] == DAY_URL


def test_discord_gets_one_embed_linking_back_with_fields_and_no_allowed_mentions(team, server):
    mid = post_row(team.id, "discord", server.url("discord"))
    assert deliver(mid, transport=None, now=NOW) == "sent"  # Discord answers 204
    body = server.hits[0].json
    assert body["allowed_mentions"] == {"parse": []}
    (embed,) = body["embeds"]
    assert embed["title"] == POST.title and embed["url"] == DAY_URL
    assert [f["name"] for f in embed["fields"]] == ["Blockers (1)", "Ada", "Bob"]
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    assert embed["footer"] == {"text": "No reply from: Olga"}


@pytest.mark.parametrize("service", sorted(chat.SERVICES))
def test_every_format_stays_within_its_service_limits_for_a_very_long_day(team, server, service):
    long = chat.Post(
        title="T" * 400,
        url=DAY_URL,
        sections=tuple(chat.Section(f"Member {i}", tuple("x" * 1900 for _ in range(30))) for i in range(60)),
    )
    mid = post_row(team.id, service, server.url(service), long)
    assert deliver(mid, transport=None, now=NOW) == "sent"
    body = server.hits[0].json
    assert any(DAY_URL in t for t in texts(body))  # the way back survives the cuts
    if service == "slack":
        assert len(body["blocks"]) <= 50 and all(
            len(b["text"]["text"]) <= 3000 for b in body["blocks"] if b["type"] == "section"
        )
    if service == "discord":
        embed = body["embeds"][0]
        assert len(embed["fields"]) <= 25 and len(embed["title"]) <= 256
        assert sum(len(t) for t in texts(embed)) - len(DAY_URL) <= 6000
    if service == "mattermost":
        assert len(body["text"]) <= 16383
    assert len(server.hits[0].body) < 100_000


def test_a_429_defers_until_retry_after_and_the_next_attempt_is_sent(team, server):
    url = server.url("slack")
    server.script[PATHS["slack"]] = [(429, {"Retry-After": "120"}, b"rate_limited")]
    mid = post_row(team.id, "slack", url)
    assert deliver(mid, transport=None, now=NOW) == "deferred"
    m = row(mid)
    assert m.next_attempt_at >= NOW + timedelta(seconds=120) and "HTTP 429: rate_limited" in m.error
    later = m.next_attempt_at + timedelta(seconds=1)
    with session() as s:
        assert outbox.sweep(s, now=later, lease_s=300) == [mid]
    assert deliver(mid, transport=None, now=later) == "sent"
    assert len(server.hits) == 2 and server.hits[0].body == server.hits[1].body
    kinds = [(f, k) for f, k, _ in timeline(mid)]
    assert ("sending", "deferred") in kinds and kinds[-1] == ("sending", "sent")


def test_a_400_fails_the_post_with_the_services_answer_on_its_timeline(team, server):
    url = server.url("discord")
    server.script[PATHS["discord"]] = [
        (400, {"Content-Type": "application/json"}, b'{"message": "Invalid Form Body", "code": 50035}')
    ]
    mid = post_row(team.id, "discord", url)
    assert deliver(mid, transport=None, now=NOW) == "failed"
    assert row(mid).error == 'HTTP 400: {"message": "Invalid Form Body", "code": 50035}'
    assert timeline(mid)[-1] == ("sending", "failed", row(mid).error)
    assert len(server.hits) == 1


def test_a_5xx_or_an_unreachable_webhook_defers(team, server):
    url = server.url("mattermost")
    server.script[PATHS["mattermost"]] = [(503, {}, b"maintenance")]
    first = post_row(team.id, "mattermost", url)
    assert deliver(first, transport=None, now=NOW) == "deferred" and "HTTP 503" in row(first).error
    server.stop()
    second = post_row(team.id, "slack", server.url("slack"))
    assert deliver(second, transport=None, now=NOW) == "deferred"
    assert "cannot reach the webhook" in row(second).error
    server.start()


def test_a_post_to_a_destination_removed_since_fails_with_the_reason(team, server):
    mid = post_row(team.id, "slack", server.url("slack"))
    with session() as s:
        s.delete(s.get(ChatDestination, chat.destination_id(row(mid).to_addr)))
    assert deliver(mid, transport=None, now=NOW) == "failed"
    assert "no longer exists" in row(mid).error and server.hits == []


def test_lists_show_a_reference_and_a_masked_url_never_the_webhook_secret(team, server):
    url = server.url("slack")
    mid = post_row(team.id, "slack", url)
    assert row(mid).to_addr.startswith("chat:") and "abcdefghij" not in row(mid).to_addr
    assert (
        chat.mask("https://hooks.slack.com/services/T000/B000/XXXXsecretYYYY")
        == "https://hooks.slack.com/…YYYY"
    )


@pytest.mark.parametrize(
    ("service", "url", "allow_local", "reason"),
    [
        ("slack", "https://hooks.slack.com/services/T0/B0/x", False, ""),
        ("slack", "http://hooks.slack.com/services/T0/B0/x", False, "https://"),
        ("slack", "https://hooks.example.com/services/T0/B0/x", False, "hooks.slack.com"),
        ("slack", "https://hooks.slack.com/other", False, "look like"),
        ("discord", "https://discord.com/api/webhooks/1/abc", False, ""),
        ("discord", "https://ptb.discord.com/api/webhooks/1/abc", False, ""),
        ("teams", "https://contoso.webhook.office.com/webhookb2/abc", False, ""),
        ("teams", "https://prod-01.westus.logic.azure.com/workflows/abc", False, ""),
        ("googlechat", "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k", False, ""),
        ("mattermost", "https://chat.example.org/hooks/abc", False, ""),
        ("mattermost", "https://10.0.0.5/hooks/abc", False, "private"),
        ("mattermost", "https://127.0.0.1/hooks/abc", False, "local"),
        ("slack", "http://127.0.0.1:8080/anything", False, "https://"),
        ("slack", "http://127.0.0.1:8080/anything", True, ""),
        ("slack", "http://example.com/services/x", True, "https://"),
        ("slack", "https://user:pw@hooks.slack.com/services/x", False, "no user"),
        ("irc", "https://example.com/", False, "one of"),
        ("slack", "", False, "give the webhook URL"),
    ],
)
def test_a_webhook_url_is_checked_loosely_against_its_service(service, url, allow_local, reason):
    if not reason:
        assert chat.check_url(service, url, allow_local=allow_local) == url
    else:
        with pytest.raises(chat.ChatURLError, match=reason):
            chat.check_url(service, url, allow_local=allow_local)


def test_retry_after_is_read_in_seconds_as_a_date_or_from_discords_body():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert retry_after_s("30") == 30.0
    assert retry_after_s("Mon, 23 Nov 2026 12:02:00 GMT", now=now) == 120.0
    assert retry_after_s(None, b'{"message": "You are being rate limited.", "retry_after": 2.5}') == 2.5
    assert retry_after_s("soon") == 60.0 and retry_after_s("999999") == 6 * 3600.0


def test_production_refuses_local_chat_webhooks(tmp_path):
    prod = {"DONEBOX_ENV": "production", "SECRET_KEY": "c0ffee-Strong-Key-0123456789-abcdXYZ"}
    with pytest.raises(SettingsError, match="CHAT_ALLOW_LOCAL"):
        load({**prod, "VAR_DIR": str(tmp_path), "CHAT_ALLOW_LOCAL": "true"})
    assert load({**prod, "VAR_DIR": str(tmp_path)}).chat_allow_local is False
