"""Signed outgoing webhooks against a real HTTP receiver on loopback: signatures the documented
snippet verifies, retries with backoff while the receiver is down, giving up, replay, kinds, and
the events of inbound replies and their entries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.db import session
from app.errors import RequestError
from app.models import Member, WebhookAttempt, WebhookDelivery
from app.relay import outbox, tracking, webhook_delivery, webhooks
from app.settings import get_settings, load
from tests.app.relay.webhook_receiver import Receiver
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW


@pytest.fixture
def receiver(db, env):
    env.setenv("WEBHOOK_ALLOW_PRIVATE", "true")  # the receiver is on loopback
    get_settings.cache_clear()
    r = Receiver()
    yield r
    r.stop()


def endpoint(receiver: Receiver, team_id: int, kinds) -> int:
    with session() as s:
        e = webhooks.add(s, team_id, receiver.url, kinds, now=NOW, settings=get_settings())
        receiver.secret = e.secret
        return e.id


def message(team_id: int, key: str = "m1", **context) -> int:
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=NOW,
            idempotency_key=key,
            kind="api",
            team_id=team_id,
            to_addr="ann@example.org",
            subject="Your invoice",
            context=context,
            message_id=f"<{key}@mail.test>",
        )
    return mid


def send(mid: int, to: str = "sent", *, at=NOW) -> None:
    """The pipeline's claim and outcome of one attempt on the message."""
    with session() as s:
        outbox.claim_many(s, [mid], now=at, lease_s=300)
    with session() as s:
        assert outbox.finish(s, mid, to, now=at, error="" if to == "sent" else "451 try later")


def run(at) -> dict[int, str]:
    """What the tick and the jobs do at ``at``: the due deliveries, POSTed once each."""
    with session() as s:
        ids = webhooks.due(s, now=at)
    return webhook_delivery.deliver_many(ids, now=at, settings=get_settings())


def rows() -> list[WebhookDelivery]:
    with session() as s:
        return list(s.execute(select(WebhookDelivery).order_by(WebhookDelivery.id)).scalars())


def attempts(did: int) -> list[WebhookAttempt]:
    with session() as s:
        return webhooks.attempts(s, [did])[did]


def test_a_sent_message_is_posted_with_a_signature_the_documented_snippet_verifies(team, receiver):
    endpoint(receiver, team.id, ["sent", "delivered"])
    mid = message(team.id, tags=["invoice"], metadata={"order": "A-17"})
    send(mid)
    assert run(NOW) == {rows()[0].id: "delivered"}
    [(verified, headers, body)] = receiver.received
    assert verified and headers["Donebox-Signature"].startswith("t=")
    event = json.loads(body)
    assert event["kind"] == "sent" and event["id"] == f"whd_{rows()[0].id}"
    assert event["team_id"] == team.id and event["timestamp"] == int(NOW.timestamp())
    assert event["message"] | {} == {
        "id": mid,
        "message_id": "<m1@mail.test>",
        "kind": "api",
        "to": "ann@example.org",
        "subject": "Your invoice",
        "batch_id": None,
        "tags": ["invoice"],
        "metadata": {"order": "A-17"},
    }
    [a] = attempts(rows()[0].id)
    assert a.status == 200 and a.response == '{"ok": true}' and a.error == ""
    # a body altered on the way, or another secret, does not verify
    verify = receiver.verify
    assert not verify(receiver.secret, headers["Donebox-Signature"], body + b" ")
    assert not verify("whsec_other", headers["Donebox-Signature"], body)


def test_a_receiver_down_for_a_while_gets_the_event_once_it_is_back_every_attempt_logged(team, receiver):
    endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    receiver.stop()
    [d] = rows()
    assert run(NOW) == {d.id: "pending"}
    assert rows()[0].next_attempt_at == NOW + timedelta(seconds=30)
    assert run(NOW + timedelta(seconds=29)) == {}  # not due before its backoff
    assert run(NOW + timedelta(seconds=30)) == {d.id: "pending"}
    assert rows()[0].next_attempt_at == NOW + timedelta(seconds=90)  # the wait doubled
    receiver.start()
    assert run(NOW + timedelta(seconds=90)) == {d.id: "delivered"}
    log = attempts(d.id)
    assert [a.status for a in log] == [None, None, 200]
    assert all("Connection refused" in a.error or "ConnectionRefused" in a.error for a in log[:2])
    assert [a.at for a in log] == [NOW, NOW + timedelta(seconds=30), NOW + timedelta(seconds=90)]
    assert len(receiver.received) == 1 and receiver.received[0][0]
    assert run(NOW + timedelta(hours=1)) == {}  # delivered: never again


def test_a_receiver_that_keeps_refusing_is_given_up_after_24_hours_and_a_replay_delivers(team, receiver):
    endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    receiver.status = 503
    [d] = rows()
    at, states = NOW, []
    while True:
        states.append(run(at)[d.id])
        if states[-1] != "pending":
            break
        at = rows()[0].next_attempt_at
    assert states[-1] == "failed" and set(states[:-1]) == {"pending"}
    log = attempts(d.id)
    assert len(log) == len(states) and {a.status for a in log} == {503}
    assert log[-1].at <= NOW + timedelta(hours=24) < log[-1].at + timedelta(hours=1)
    assert (
        log[0].response.startswith("receiver says no")
        and len(log[0].response) == webhook_delivery.RESPONSE_CHARS
    )
    assert run(NOW + timedelta(days=3)) == {}  # failed stays failed
    receiver.status = 200
    later = NOW + timedelta(days=3)
    with session() as s:
        assert webhooks.replay(s, team.id, d.id, now=later, settings=get_settings())
    assert run(later) == {d.id: "delivered"}
    bodies = {body for _, _, body in receiver.received}
    assert len(bodies) == 1  # every attempt and the replay sent the same event


def test_a_redirect_is_not_followed_but_logged_and_retried(team, receiver):
    endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    receiver.status = 302
    [d] = rows()
    assert run(NOW) == {d.id: "pending"}
    [a] = attempts(d.id)
    assert a.status == 302 and "a redirect (to http://127.0.0.2:9/elsewhere) is not followed" in a.error
    assert len(receiver.received) == 1  # one POST, to the endpoint only


def test_only_the_kinds_an_endpoint_asked_for_are_sent(team, receiver):
    endpoint(receiver, team.id, ["deferred", "opened"])
    mid = message(team.id)
    send(mid)  # sent: not asked for
    assert rows() == []
    with session() as s:
        tracking.record_hit(s, mid, "open", now=NOW, user_agent="Mail/1.0")
    with session() as s:
        tracking.record_hit(s, mid, "click", now=NOW, user_agent="Mail/1.0", url="https://example.org")
    other = message(team.id, "m2")
    send(other, "deferred")
    assert [(r.kind, r.message_id) for r in rows()] == [("opened", mid), ("deferred", other)]
    run(NOW)
    kinds = [json.loads(body)["kind"] for _, _, body in receiver.received]
    assert sorted(kinds) == ["deferred", "opened"]
    deferred = next(json.loads(b) for _, _, b in receiver.received if b"deferred" in b)
    assert deferred["detail"] == "451 try later"


def test_outcomes_written_together_are_written_as_each_would_be_alone(team, receiver):
    """outbox.finish_many (a batch's outcomes, one statement on PostgreSQL): each row's state and
    values, its event, the bytes kept and the webhooks its team wants, as finish writes them; a
    message no longer sending is left as it is."""
    from app.models import OutboundMessage

    endpoint(receiver, team.id, ["sent", "deferred"])
    sent, deferred, failed, queued = (message(team.id, f"m{i}") for i in range(4))
    with session() as s:
        outbox.claim_many(s, [sent, deferred, failed], now=NOW, lease_s=300)
    later = NOW + timedelta(minutes=5)
    with session() as s:
        moved = outbox.finish_many(
            s,
            [
                outbox.Finish(
                    sent,
                    "sent",
                    NOW,
                    "",
                    b"the bytes sent",
                    {"sender": "a", "sent_at": NOW, "provider_id": "p-1", "provider_response": "250 queued"},
                ),
                outbox.Finish(deferred, "deferred", NOW, "451 try later", None, {"next_attempt_at": later}),
                outbox.Finish(failed, "failed", NOW, "550 no such user", b"refused bytes", {}),
                outbox.Finish(queued, "sent", NOW, "", b"never claimed", {}),
            ],
        )
    assert moved == {sent, deferred, failed}
    with session() as s:
        got = {m.id: m for m in s.execute(select(OutboundMessage)).scalars()}
        assert (got[sent].state, got[sent].sender, got[sent].provider_id) == ("sent", "a", "p-1")
        assert got[sent].provider_response == "250 queued" and got[sent].lease_until is None
        assert (got[deferred].state, got[deferred].error) == ("deferred", "451 try later")
        assert got[deferred].next_attempt_at.replace(tzinfo=None) == later.replace(tzinfo=None)
        assert (got[failed].state, got[failed].error) == ("failed", "550 no such user")
        assert got[queued].state == "queued"
        assert outbox.content(s, sent) == b"the bytes sent"
        assert outbox.content(s, failed) == b"refused bytes"
        assert outbox.content(s, deferred) is None and outbox.content(s, queued) is None
        for mid, kind in ((sent, "sent"), (deferred, "deferred"), (failed, "failed")):
            assert [(e.from_state, e.kind) for e in outbox.events(s, mid)][-1] == ("sending", kind)
        assert [e.kind for e in outbox.events(s, queued)] == ["queued"]
    assert sorted((r.kind, r.message_id) for r in rows()) == [("deferred", deferred), ("sent", sent)]


def test_a_team_with_no_endpoints_writes_no_delivery_rows(team, receiver):
    from app.models import Team

    with session() as s:
        other = Team(name="Other")
        s.add(other)
        s.flush()
        other_id = other.id
    endpoint(receiver, other_id, list(webhooks.KINDS))
    mid = message(team.id)
    send(mid)
    with session() as s:
        outbox.transition_many(s, "delivered", {mid: {"detail": "250 ok"}}, expected=["sent"], now=NOW)
        tracking.record_hit(s, mid, "open", now=NOW, user_agent="x")
    assert rows() == []
    send(message(other_id, "theirs"))
    assert [r.team_id for r in rows()] == [other_id]


def test_provider_feedback_moves_are_events_too(team, receiver):
    endpoint(receiver, team.id, ["delivered", "bounced"])
    a, b = message(team.id, "a"), message(team.id, "b")
    send(a)
    send(b)
    with session() as s:
        outbox.transition_many(s, "delivered", {a: {"detail": "250 ok"}}, expected=["sent"], now=NOW)
        outbox.transition_many(s, "bounced", {b: {"detail": "550 no such user"}}, expected=["sent"], now=NOW)
    assert [(r.kind, r.message_id, r.detail) for r in rows()] == [
        ("delivered", a, "250 ok"),
        ("bounced", b, "550 no such user"),
    ]


def test_provider_events_through_feedback_are_webhooks_once_each(team, receiver):
    from app.relay.feedback import apply_events
    from parsers.providers.events import DeliveryEvent

    endpoint(receiver, team.id, ["delivered", "opened", "complained"])
    mid = message(team.id)
    send(mid)
    batch = [
        DeliveryEvent(source="sendgrid", kind="delivered", event_id="sg:1", outbound_id=mid),
        DeliveryEvent(source="sendgrid", kind="open", event_id="sg:2", outbound_id=mid),
        DeliveryEvent(source="sendgrid", kind="processed", event_id="sg:3", outbound_id=mid),
    ]
    with session() as s:
        apply_events(s, batch, now=NOW)
    with session() as s:  # the provider sends the batch again: recorded already, nothing owed twice
        apply_events(s, batch, now=NOW)
    assert sorted(r.kind for r in rows()) == ["delivered", "opened"]


def test_a_processed_reply_emits_inbound_received_and_its_entries_entry_created(team, receiver):
    from app.checkins.reply_tokens import reply_address
    from app.inbound.accept import accept
    from app.inbound.process import process

    endpoint(receiver, team.id, ["inbound_received", "entry_created"])
    with session() as s:
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        ada_id = ada.id
    to = reply_address(get_settings().secret_key, "reply.test", ada_id, NOW.date())
    raw = (
        f"From: Ada <ada@example.com>\r\nTo: {to}\r\nSubject: Re: today\r\n"
        "Message-ID: <reply-1@example.com>\r\n\r\nShipped the export #billing\r\nFixed the login bug\r\n"
    ).encode()
    with session() as s:
        iid, _ = accept(s, provider="raw", raw=raw, key="reply-1", now=NOW)
    with session() as s:
        assert process(s, iid, now=NOW, settings=get_settings()) == "processed"
    assert [r.kind for r in rows()] == ["inbound_received", "entry_created", "entry_created"]
    run(NOW)
    events = [json.loads(body) for ok, _, body in receiver.received if ok]
    inbound = next(e for e in events if e["kind"] == "inbound_received")["inbound"]
    assert inbound | {} == inbound and inbound["id"] == iid and inbound["entries"] == 2
    assert inbound["member"]["email"] == "ada@example.com" and inbound["subject"] == "Re: today"
    made = sorted((e["entry"]["text"], e["entry"]["tags"]) for e in events if e["kind"] == "entry_created")
    assert made == [("Fixed the login bug", []), ("Shipped the export #billing", ["billing"])]


def test_an_entry_written_on_the_web_or_api_is_an_event(team, receiver):
    from app.checkins import entries

    endpoint(receiver, team.id, ["entry_created"])
    with session() as s:
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        entries.add(s, bob, NOW.date(), "Reviewed the migration", "done", now=NOW)
    [d] = rows()
    assert json.loads(d.payload)["entry"]["member"]["email"] == "bob@example.com"


def test_endpoint_urls_must_be_http_and_public_unless_allowed(tmp_path):
    dev = load({"VAR_DIR": str(tmp_path)})
    prod = load(
        {
            "VAR_DIR": str(tmp_path),
            "DONEBOX_ENV": "production",
            "SECRET_KEY": "Prod-secret-key-0123456789-abcdefXYZ!",
            "MAIL_TRANSPORT": "memory",
        }
    )
    public = lambda host, port, **kw: [(2, 1, 6, "", ("93.184.215.14", port))]  # noqa: E731
    assert webhooks.check_url("ftp://example.org/x", dev) == "must be an http:// or https:// URL"
    assert (
        webhooks.check_url("http://example.org/x", prod, resolve=public)
        == "must be an https:// URL in production"
    )
    assert webhooks.check_url("https://example.org/x", prod, resolve=public) is None
    assert "loopback, private or reserved" in webhooks.check_url("http://127.0.0.1:9/x", dev)
    assert "loopback, private or reserved" in webhooks.check_url("https://10.1.2.3/x", prod)
    assert "user name" in webhooks.check_url("https://u:p@example.org/x", prod, resolve=public)
    allowed = load({"VAR_DIR": str(tmp_path), "WEBHOOK_ALLOW_PRIVATE": "true"})
    assert webhooks.check_url("http://127.0.0.1:9/x", allowed) is None


def test_adding_an_endpoint_names_the_refused_field(team, receiver):
    with session() as s:
        with pytest.raises(RequestError, match="kinds: unknown sending"):
            webhooks.add(s, team.id, receiver.url, ["sending"], now=NOW, settings=get_settings())
        with pytest.raises(RequestError, match="url must be an http"):
            webhooks.add(s, team.id, "javascript:alert(1)", ["sent"], now=NOW, settings=get_settings())
        assert s.execute(select(func.count()).select_from(WebhookDelivery)).scalar() == 0


def test_removing_an_endpoint_fails_its_pending_deliveries(team, receiver):
    eid = endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    with session() as s:
        assert webhooks.remove(s, team.id, eid, now=NOW)
        assert not webhooks.remove(s, team.id, eid, now=NOW)
    assert [(r.state, r.last_error) for r in rows()] == [("failed", "the endpoint was removed")]
    assert run(NOW) == {}


def test_the_scheduler_tick_finds_due_deliveries_and_a_job_posts_them(team, receiver):
    from jobs.broker import drain
    from jobs.scheduler import tick

    endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    result = tick(now=NOW, settings=get_settings())
    assert result["webhooks"] == [rows()[0].id]
    drain()
    assert rows()[0].state == "delivered" and len(receiver.received) == 1


def test_retention_deletes_finished_deliveries_and_their_attempts_not_pending_ones(team, receiver):
    endpoint(receiver, team.id, ["sent"])
    send(message(team.id, "a"))
    run(NOW)  # delivered
    receiver.stop()
    send(message(team.id, "b"))
    run(NOW)  # pending, one attempt logged
    later = NOW + timedelta(days=get_settings().retention_days + 1)
    with session() as s:
        assert webhooks.purge(s, now=later, days=get_settings().retention_days) == 1
    [left] = rows()
    assert left.state == "pending" and len(attempts(left.id)) == 1
    with session() as s:
        assert s.execute(select(func.count()).select_from(WebhookAttempt)).scalar() == 1


def test_a_delivery_whose_job_died_is_handed_out_again_once_its_claim_ends(team, receiver):
    endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    [d] = rows()
    with session() as s:  # a job claims it, then its worker is killed before the POST
        assert webhook_delivery.claim(s, [d.id], now=NOW, lease_s=60) == [d.id]
    with session() as s:
        assert webhooks.due(s, now=NOW + timedelta(seconds=59)) == []
        assert webhook_delivery.claim(s, [d.id], now=NOW + timedelta(seconds=59), lease_s=60) == []
        assert webhooks.due(s, now=NOW + timedelta(seconds=61)) == [d.id]
    assert run(NOW + timedelta(seconds=61)) == {d.id: "delivered"}
    assert len(receiver.received) == 1
