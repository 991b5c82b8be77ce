"""Send again (one message) and Send all again (a filter) on the outbound mail pages."""

from sqlalchemy import select

from app.db import session
from app.models import MessageEvent, utcnow
from app.relay import suppressions
from app.relay.pipeline import deliver_many
from app.relay.transports.memory import MemoryTransport
from jobs.broker import drain
from tests.app.relay.test_redrive import fail, make, states, team_ids
from tests.app.web.conftest import post, sign_in


def test_send_again_asks_for_confirmation_then_sends_and_shows_who_on_the_timeline(client, team, sent):
    [mid] = make(1, team_id=team.id)
    fail([mid])
    sign_in(client, sent, "ada@example.com")
    sent.clear()
    page = client.get(f"/mail/outbound/{mid}").text
    assert 'id="redrive"' in page and "Send again" in page
    asked = post(client, f"/mail/outbound/{mid}/redrive")
    assert asked.status_code == 200 and "Are you sure?" in asked.text and "m0@example.com" in asked.text
    assert states([mid]) == {"failed": 1}
    done = post(client, f"/mail/outbound/{mid}/redrive", {"confirm": "yes"})
    assert done.status_code == 303
    drain()
    assert states([mid]) == {"sent": 1} and [m["To"] for m in sent] == ["m0@example.com"]
    timeline = client.get(f"/mail/outbound/{mid}").text.split('id="timeline"')[1]
    assert "sent again by ada@example.com" in timeline


def test_a_sent_message_cannot_be_sent_again_and_the_page_says_why(client, team, sent):
    [mid] = make(1, team_id=team.id)
    deliver_many([mid], transport=MemoryTransport(), now=utcnow())
    sign_in(client, sent, "ada@example.com")
    assert 'id="redrive"' not in client.get(f"/mail/outbound/{mid}").text  # no button
    r = post(client, f"/mail/outbound/{mid}/redrive", {"confirm": "yes"})
    assert r.status_code == 409 and "Not sent again: it is sent" in r.text
    with session() as s:
        assert s.execute(select(MessageEvent.kind).where(MessageEvent.message_id == mid)).scalars().all() == [
            "queued",
            "sending",
            "sent",
        ]


def test_send_all_again_asks_with_the_count_and_sends_only_the_filtered_ones(client, team, sent):
    [other] = team_ids("Other")
    ours = make(3, team_id=team.id, prefix="a") + make(1, team_id=team.id, prefix="b", domain="far.test")
    theirs = make(2, team_id=other, prefix="c")
    fail(ours + theirs)
    with session() as s:
        suppressions.add(s, "a2@example.com", "manual", now=utcnow())
    sign_in(client, sent, "ada@example.com")  # an admin of the first team only
    sent.clear()
    assert 'id="redrive-all"' in client.get("/mail/outbound").text
    form = {"state": "failed", "domain": "example.com"}
    asked = post(client, "/mail/outbound/redrive", form)
    assert asked.status_code == 200 and "Send 2 messages again, and skip 1" in asked.text
    assert states(ours + theirs) == {"failed": 6}
    done = post(client, "/mail/outbound/redrive", {**form, "confirm": "yes"})
    assert done.status_code == 303
    drain()
    assert sorted(m["To"] for m in sent) == ["a0@example.com", "a1@example.com"]
    assert states(theirs) == {"failed": 2} and states(ours[2:]) == {"failed": 2}
    nothing = post(client, "/mail/outbound/redrive", {"team": str(other), "confirm": "yes"})
    assert nothing.status_code == 422 and "No message to send again matches" in nothing.text
    assert post(client, "/mail/outbound/redrive", {"state": "sent"}).status_code == 422


def test_an_admin_cannot_send_another_teams_message_again(client, team, sent):
    [other] = team_ids("Other")
    [mid] = make(1, team_id=other)
    fail([mid])
    sign_in(client, sent, "ada@example.com")
    assert post(client, f"/mail/outbound/{mid}/redrive", {"confirm": "yes"}).status_code == 404
    assert states([mid]) == {"failed": 1}
