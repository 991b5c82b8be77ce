"""The digest where people read: a team's chat destinations, and its digest posted to each of them
when the digest goes out (the scheduler's tick on a fixed clock), through the outbox to a local
server standing in for the services' webhooks."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from app.checkins import chat
from app.checkins.outgoing import digest_now
from app.checkins.teams import TeamError
from app.db import session
from app.models import ChatDestination, Entry, Member, OutboundMessage, Team, TeamSettings
from app.relay import chat as relay_chat
from app.settings import get_settings
from jobs.broker import drain
from jobs.enqueue import enqueue_deliveries
from jobs.scheduler import tick
from tests.app.relay.transports.webhook_server import WebhookServer
from tests.conftest import FIXED_NOW, make_due

DIGEST_AT = FIXED_NOW.replace(day=24, hour=7, minute=0, second=1)  # Berlin 08:00 on Tuesday
MONDAY = date(2026, 11, 23)


@pytest.fixture
def server(env):
    env.setenv("CHAT_ALLOW_LOCAL", "true")
    get_settings.cache_clear()
    s = WebhookServer().start()
    yield s
    s.stop()


def add(team_id: int, service: str, url: str, label: str = ""):
    with session() as s:
        return chat.add_destination(
            s, team_id, service, url, label=label, now=FIXED_NOW, settings=get_settings()
        )


def write(team_id: int, email: str, *texts: str, kind: str = "done") -> None:
    with session() as s:
        m = s.execute(select(Member).where(Member.email == email)).scalar_one()
        for t in texts:
            s.add(Entry(team_id=team_id, member_id=m.id, day=MONDAY, text=t, kind=kind, created_at=FIXED_NOW))


def chat_rows() -> list[OutboundMessage]:
    with session() as s:
        stmt = select(OutboundMessage).where(OutboundMessage.kind == "chat").order_by(OutboundMessage.id)
        return list(s.execute(stmt).scalars())


def test_the_digest_tick_posts_the_day_once_to_each_destination_linking_back_to_the_day(team, sent, server):
    slack = add(team.id, "slack", server.url("slack"), "#standup")
    discord = add(team.id, "discord", server.url("discord"))
    write(team.id, "ada@example.com", "Shipped the release")
    write(team.id, "bob@example.com", "waiting on the API key", kind="blocker")

    created = tick(now=DIGEST_AT, settings=get_settings())["created"]
    drain()
    rows = chat_rows()
    assert [r.to_addr for r in rows] == [f"chat:{slack.id}", f"chat:{discord.id}"]
    assert {r.idempotency_key for r in rows} == {
        f"chat:{slack.id}:2026-11-23",
        f"chat:{discord.id}:2026-11-23",
    }
    assert {r.id for r in rows} <= set(created) and all(r.state == "sent" for r in rows)
    assert len(sent) == 3  # the members' digests by mail, as before

    day_url = f"http://donebox.test/teams/{team.id}?day=2026-11-23"
    by_path = {h.path.split("/")[1]: h.json for h in server.hits}
    blocks = by_path["services"]["blocks"]
    assert blocks[0]["text"]["text"] == "What Rocket got done on Monday, 23 November"
    words = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert words[0].startswith("*Blockers (1)*") and "Bob: waiting on the API key" in words[0]
    assert any(w.startswith("*Ada*") and "Shipped the release" in w for w in words)
    assert next(b for b in blocks if b["type"] == "actions")["elements"][0]["url"] == day_url
    embed = by_path["api"]["embeds"][0]
    assert embed["url"] == day_url and [f["name"] for f in embed["fields"]] == ["Blockers (1)", "Ada", "Bob"]

    # later ticks of the same morning, and another scheduler, post nothing again
    tick(now=DIGEST_AT + timedelta(minutes=1), settings=get_settings())
    with session() as s:
        make_due(s, "digest", DIGEST_AT, Member.team_id == team.id)
    tick(now=DIGEST_AT + timedelta(minutes=2), settings=get_settings())
    drain()
    assert len(chat_rows()) == 2 and len(server.hits) == 2


def test_a_team_without_destinations_posts_nothing_and_a_silent_skipped_day_neither(team, sent, server):
    tick(now=DIGEST_AT, settings=get_settings())
    assert chat_rows() == []

    other = add(team.id, "mattermost", server.url("mattermost"))
    with session() as s:
        s.execute(update(Team).where(Team.id == team.id).values(skip_empty_digests=True))
    tick(now=DIGEST_AT + timedelta(days=1), settings=get_settings())  # nobody wrote on Tuesday
    assert chat_rows() == [] and other.id


def test_a_team_with_its_digest_off_posts_nothing(team, sent, server):
    add(team.id, "slack", server.url("slack"))
    with session() as s:
        s.add(TeamSettings(team_id=team.id, digest_enabled=False))
    tick(now=DIGEST_AT, settings=get_settings())
    assert chat_rows() == []


def test_the_post_leaves_out_who_did_not_reply_when_the_team_says_so(team, sent, server):
    add(team.id, "teams", server.url("teams"))
    write(team.id, "ada@example.com", "Shipped")
    with session() as s:
        s.add(TeamSettings(team_id=team.id, digest_include_quiet=False))
    with session() as s:
        post = relay_chat.Post.from_json(
            chat.digest_rows(s, {(team.id, MONDAY)}, now=FIXED_NOW, settings=get_settings())[0]["context"]
        )
    assert "No reply from" not in post.footer and [x.title for x in post.sections] == ["Ada"]


def test_the_by_hand_digest_posts_to_chat_too(team, sent, server):
    add(team.id, "googlechat", server.url("googlechat"))
    with session() as s:
        ids = digest_now(s, now=FIXED_NOW, settings=get_settings(), day=MONDAY)
    rows = chat_rows()
    assert len(ids) == 4 and [r.id for r in rows] == [ids[-1]]  # three digests, one post
    post = relay_chat.Post.from_json(rows[0].context)
    # nobody wrote, and nobody was asked (no reminder reached anyone): no "No reply from" either
    assert post.intro == "Nobody wrote in on this day." and post.sections == () and post.footer == ""


def test_a_test_post_goes_out_each_time_it_is_asked_for(team, sent, server):
    dest = add(team.id, "slack", server.url("slack"))
    with session() as s:
        team_row = s.get(Team, team.id)
        first = chat.send_test_post(s, team_row, dest.id, now=FIXED_NOW, settings=get_settings())
        second = chat.send_test_post(s, team_row, dest.id, now=FIXED_NOW, settings=get_settings())
    assert first != second
    enqueue_deliveries([first, second])
    drain()
    assert len(server.hits) == 2 and "a test post for Rocket" in server.hits[0].json["text"]


@pytest.mark.parametrize(
    ("service", "url", "label", "field", "reason"),
    [
        ("irc", "https://example.com/hooks/x", "", "service", "one of"),
        ("slack", "https://example.com/services/x", "", "url", "hooks.slack.com"),
        ("slack", "ftp://hooks.slack.com/services/x", "", "url", "https://"),
        ("slack", "https://hooks.slack.com/services/x", "x" * 201, "label", "200"),
    ],
)
def test_a_refused_destination_names_its_field_and_adds_nothing(team, service, url, label, field, reason):
    with pytest.raises(TeamError, match=reason) as e:
        add(team.id, service, url, label)
    assert e.value.field == field
    with session() as s:
        assert chat.destinations(s, team.id) == []


def test_http_and_loopback_webhooks_need_chat_allow_local(team):
    with pytest.raises(TeamError, match="https://"):
        add(team.id, "slack", "http://127.0.0.1:9/services/x")


def test_destinations_are_listed_masked_and_removed_by_their_team_only(team, server):
    dest = add(team.id, "slack", "https://hooks.slack.com/services/T0/B0/secretTOKEN1234", " #standup ")
    with session() as s:
        (shown,) = [chat.describe(d) for d in chat.destinations(s, team.id)]
        assert shown["url"] == "https://hooks.slack.com/…1234" and shown["label"] == "#standup"
        assert shown["service_label"] == "Slack"
        other = Team(name="Other", created_at=FIXED_NOW)
        s.add(other)
        s.flush()
        with pytest.raises(TeamError, match="no chat destination"):
            chat.remove_destination(s, other.id, dest.id)
        chat.remove_destination(s, team.id, dest.id)
        assert chat.destinations(s, team.id) == []


def blocker(team_id: int, email: str, text: str, at) -> int:
    with session() as s:
        m = s.execute(select(Member).where(Member.email == email)).scalar_one()
        e = Entry(team_id=team_id, member_id=m.id, day=MONDAY, text=text, kind="blocker", created_at=at)
        s.add(e)
        s.flush()
        return e.id


def test_each_new_blocker_is_posted_on_the_next_tick_to_the_channels_that_asked(team, sent, server):
    at = FIXED_NOW.replace(hour=13)  # between the reminders and the digests: nothing else is due
    asked = add(team.id, "slack", server.url("slack"))
    with session() as s:
        s.get(ChatDestination, asked.id).blockers = True
    add(team.id, "discord", server.url("discord"))  # the digest only
    before = blocker(team.id, "ada@example.com", "an old one", FIXED_NOW - timedelta(hours=1))
    entry = blocker(team.id, "bob@example.com", "waiting on <!channel> the API key", at)
    write(team.id, "ada@example.com", "not a blocker")

    created = tick(now=at + timedelta(seconds=5), settings=get_settings())["created"]
    drain()
    (row,) = chat_rows()
    assert row.id in created and row.idempotency_key == f"chat-blocker:{asked.id}:{entry}"
    assert row.state == "sent" and before != entry
    (hit,) = server.hits
    blocks = hit.json["blocks"]
    assert blocks[0]["text"]["text"] == "Bob is blocked"
    assert blocks[1]["text"]["text"] == "waiting on &lt;!channel&gt; the API key"
    url = next(b for b in blocks if b["type"] == "actions")["elements"][0]["url"]
    assert url == f"http://donebox.test/teams/{team.id}?day=2026-11-23"

    # the next ticks find it again within the window, and post nothing twice
    tick(now=at + timedelta(seconds=10), settings=get_settings())
    tick(now=at + timedelta(minutes=20), settings=get_settings())
    drain()
    assert len(chat_rows()) == 1 and len(server.hits) == 1


def test_a_blocker_written_before_the_channel_was_added_is_not_posted(team, sent, server):
    at = FIXED_NOW.replace(hour=13)
    blocker(team.id, "bob@example.com", "stuck", at - timedelta(minutes=1))
    with session() as s:
        dest = chat.add_destination(
            s, team.id, "slack", server.url("slack"), blockers=True, now=at, settings=get_settings()
        )
        assert chat.describe(dest)["blockers"] is True
    tick(now=at + timedelta(seconds=5), settings=get_settings())
    assert chat_rows() == []


def test_blockers_written_while_no_scheduler_ran_are_posted_by_the_next_tick(team, sent, server, monkeypatch):
    """Three hours without a tick lose no blocker post; a backlog larger than a tick's share drains
    over the next ticks, none skipped; a blocker older than BLOCKER_WINDOW is not posted."""
    at = FIXED_NOW.replace(hour=13)
    dest = add(team.id, "slack", server.url("slack"))
    with session() as s:
        s.get(ChatDestination, dest.id).blockers = True
        s.get(ChatDestination, dest.id).created_at = at - timedelta(days=3)
    stale = blocker(team.id, "ada@example.com", "stale", at - chat.BLOCKER_WINDOW - timedelta(minutes=1))
    written = [blocker(team.id, "bob@example.com", f"stuck {i}", at + timedelta(minutes=i)) for i in range(3)]
    monkeypatch.setattr(chat, "BLOCKERS_PER_TICK", 2)

    later = at + timedelta(hours=3)  # the first tick after the outage
    tick(now=later, settings=get_settings())
    assert len(chat_rows()) == 2
    tick(now=later + timedelta(seconds=5), settings=get_settings())
    tick(now=later + timedelta(seconds=10), settings=get_settings())
    drain()
    keys = sorted(r.idempotency_key for r in chat_rows())
    assert keys == sorted(f"chat-blocker:{dest.id}:{e}" for e in written)
    assert f"chat-blocker:{dest.id}:{stale}" not in keys
    assert sorted(h.json["blocks"][1]["text"]["text"] for h in server.hits) == [
        "stuck 0",
        "stuck 1",
        "stuck 2",
    ]
