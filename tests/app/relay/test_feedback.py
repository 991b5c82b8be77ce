"""app.relay.feedback: what every event kind does to state, suppressions and the timeline, both databases."""

import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import MessageEvent, OutboundMessage, Suppression
from app.relay import feedback as events
from app.relay import outbox, suppressions
from parsers.dsn import parse_report
from parsers.message import parse_mime
from parsers.providers.events import DeliveryEvent
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW
DSN = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "dsn"


def sent(key: str = "m1", to: str = "bob@example.com", state: str = "sent", **kw) -> int:
    """A message that went out (state ``sent``, or moved on to ``state``); its id."""
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=NOW,
            idempotency_key=key,
            kind="api",
            to_addr=to,
            subject="Hi",
            template="t",
            message_id=kw.pop("message_id", outbox.new_message_id("mail.test")),
        )
        outbox.claim(s, mid, now=NOW, lease_s=60)
        outbox.transition(s, mid, "sent", expected="sending", now=NOW, values=kw)
        if state != "sent":
            outbox.transition(s, mid, state, expected="sent", now=NOW)
    return mid


def ev(kind: str, eid: str, mid: int | None = None, **kw) -> DeliveryEvent:
    return DeliveryEvent(source="sendgrid", kind=kind, event_id=eid, outbound_id=mid, **kw)


def apply(*batch: DeliveryEvent) -> events.Counts:
    with session() as s:
        return events.apply_events(s, list(batch), now=NOW + timedelta(minutes=5))


def state(mid: int) -> str:
    with session() as s:
        return s.get(OutboundMessage, mid).state


def timeline(mid: int) -> list[tuple[str, str]]:
    with session() as s:
        return [(e.from_state, e.kind) for e in outbox.events(s, mid)][3:]  # after queued, sending, sent


def suppressed() -> dict[str, str]:
    with session() as s:
        return dict(s.execute(select(Suppression.email, Suppression.reason)).all())


def event_rows() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(MessageEvent)).scalar()


# kind -> (state after, suppression reason or None)
EFFECTS = {
    "processed": ("sent", None),
    "delivered": ("delivered", None),
    "deferred": ("sent", None),
    "soft_bounce": ("sent", None),
    "bounce": ("bounced", "bounce"),
    "complaint": ("complained", "complaint"),
    "unsubscribe": ("sent", "unsubscribe"),
    "open": ("sent", None),
    "click": ("sent", None),
}


@pytest.mark.parametrize("kind", sorted(EFFECTS))
def test_each_event_kind_has_its_effect_on_state_and_suppressions(db, kind):
    mid = sent()
    counts = apply(ev(kind, "e1", mid, recipient="bob@example.com"))
    after, reason = EFFECTS[kind]
    assert state(mid) == after
    assert suppressed() == ({"bob@example.com": reason} if reason else {})
    assert counts.as_dict() == {
        "received": 1,
        "applied": 1,
        "moved": int(after != "sent"),
        "suppressed": int(reason is not None),
        "duplicates": 0,
        "unknown": 0,
    }
    # one row per event: the state change itself when it moved the message
    assert timeline(mid) == [("sent", after) if after != "sent" else ("", kind)]
    with session() as s:
        row = s.execute(select(MessageEvent).where(MessageEvent.provider_event_id == "e1")).scalar_one()
    assert json.loads(row.detail)["source"] == "sendgrid"


@pytest.mark.parametrize(
    ("cause", "reason"),
    [("bounce", "bounce"), ("invalid", "bounce"), ("complaint", "complaint"), ("unsubscribe", "unsubscribe")],
)
def test_a_dropped_message_suppresses_the_address_when_the_provider_says_why(db, cause, reason):
    mid = sent()
    apply(ev("dropped", "d1", mid, cause=cause))
    assert state(mid) == "sent" and suppressed() == {"bob@example.com": reason}


def test_a_dropped_message_for_another_reason_is_only_an_event(db):
    mid = sent()
    apply(ev("dropped", "d1", mid, cause="other"))
    assert suppressed() == {} and timeline(mid) == [("", "dropped")]


def test_a_retried_batch_records_nothing_new(db):
    mid = sent()
    batch = [ev("delivered", "e1", mid), ev("open", "e2", mid, detail={"user_agent": "Mozilla/5.0"})]
    first, again = apply(*batch), apply(*batch)
    assert (first.applied, first.duplicates) == (2, 0)
    assert (again.applied, again.moved, again.duplicates) == (0, 0, 2)
    assert timeline(mid) == [("sent", "delivered"), ("", "open")]


def test_the_same_event_twice_in_one_batch_counts_once(db):
    mid = sent()
    counts = apply(ev("bounce", "e1", mid), ev("bounce", "e1", mid))
    assert (counts.applied, counts.duplicates, counts.moved) == (1, 1, 1)


def test_a_late_delivered_event_never_moves_a_bounced_message_back(db):
    mid = sent()
    apply(ev("bounce", "b1", mid))
    apply(ev("delivered", "d1", mid))
    assert state(mid) == "bounced"
    assert timeline(mid) == [("sent", "bounced"), ("", "delivered")]  # recorded, as what it is


def test_a_bounce_after_delivery_moves_on_and_in_one_batch_order_is_kept(db):
    a, b = sent("a"), sent("b", to="carol@example.com")
    apply(ev("delivered", "a1", a))
    apply(ev("complaint", "b2", b, recipient="carol@example.com"), ev("delivered", "b1", b))
    apply(ev("bounce", "a2", a))
    assert (state(a), state(b)) == ("bounced", "complained")
    assert timeline(b) == [("sent", "delivered"), ("delivered", "complained")]


def test_an_event_for_no_message_of_ours_is_counted_not_an_error(db, caplog):
    caplog.set_level(logging.INFO, logger="donebox.events")
    counts = apply(ev("bounce", "x1", 999_999, provider_id="nope"), ev("delivered", "x2"))
    assert (counts.unknown, counts.applied) == (2, 0)
    assert suppressed() == {} and event_rows() == 0
    assert "no message of ours" in caplog.text


def test_messages_are_found_by_our_id_then_message_id_then_provider_id(db):
    a = sent("a", provider_id="SG-A")
    b = sent("b", message_id="<b@mail.test>")
    c = sent("c", provider_id="SG-C")
    counts = apply(
        ev("delivered", "1", a, provider_id="SG-C"),  # our id wins
        ev("delivered", "2", message_ids=("<other@x>", "<b@mail.test>")),
        ev("delivered", "3", 888_888, provider_id="SG-C"),  # an id we do not have: the provider's id
    )
    assert counts.moved == 3 and {state(a), state(b), state(c)} == {"delivered"}


def test_recipients_of_one_composed_message_sharing_its_message_id_are_told_apart_by_recipient(db):
    first = sent("c1", to="ann@example.com", message_id="<inv-42@app.example>")
    second = sent("c2", to="bob@example.com", message_id="<inv-42@app.example>")
    apply(ev("bounce", "b1", recipient="bob@example.com", message_ids=("<inv-42@app.example>",)))
    assert (state(first), state(second)) == ("sent", "bounced")


def test_an_event_about_another_recipient_changes_nothing(db):
    mid = sent()
    apply(ev("bounce", "e1", mid, recipient="mallory@example.com"))
    assert state(mid) == "sent" and suppressed() == {}
    with session() as s:
        (row,) = s.execute(select(MessageEvent).where(MessageEvent.provider_event_id == "e1")).scalars()
    assert "not the message's" in json.loads(row.detail)["note"]


def test_a_bounce_replaces_an_unsubscribe_but_nothing_replaces_a_manual_suppression(db):
    a, b = sent("a"), sent("b", to="carol@example.com")
    with session() as s:
        suppressions.add(s, "bob@example.com", "unsubscribe", now=NOW)
        suppressions.add(s, "carol@example.com", "manual", now=NOW)
    apply(ev("bounce", "e1", a), ev("complaint", "e2", b))
    assert suppressed() == {"bob@example.com": "bounce", "carol@example.com": "manual"}
    apply(ev("unsubscribe", "e3", a))
    assert suppressed()["bob@example.com"] == "bounce"


def test_a_complaint_event_replaces_a_bounce_and_a_later_bounce_keeps_the_complaint(db):
    a, b = sent("a"), sent("b", to="carol@example.com", state="delivered")
    apply(ev("bounce", "e1", a))
    assert suppressed() == {"bob@example.com": "bounce"}
    apply(ev("complaint", "e2", a), ev("complaint", "e3", b))
    assert suppressed() == {"bob@example.com": "complaint", "carol@example.com": "complaint"}
    with session() as s:
        assert "complaint" in suppressions.lookup(s, "bob@example.com").detail
    apply(ev("dropped", "e4", b, cause="bounce"))
    assert suppressed()["carol@example.com"] == "complaint"


def test_provider_opens_and_clicks_look_like_our_tracking_hits(db):
    mid = sent()
    apply(
        ev("open", "o1", mid, detail={"user_agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}),
        ev("open", "o2", mid, detail={"user_agent": "Mozilla/5.0 (Macintosh)"}),
        ev("open", "o3", mid, detail={"machine_open": True}),
        ev("click", "c1", mid, detail={"url": "https://x.example/", "user_agent": "Mozilla/5.0"}),
    )
    with session() as s:
        rows = s.execute(
            select(MessageEvent).where(
                MessageEvent.message_id == mid, MessageEvent.kind.in_(("open", "click"))
            )
        ).scalars()
        details = [json.loads(r.detail) for r in rows]
    assert [(d["machine"], d.get("url")) for d in details] == [
        (True, None),
        (False, None),
        (True, None),
        (False, "https://x.example/"),
    ]
    assert all("ua" in d for d in details)


def test_transition_many_moves_only_messages_in_an_expected_state(db):
    a, b, c = sent("a"), sent("b", state="delivered"), sent("c", state="bounced")
    with session() as s:
        moved = outbox.transition_many(
            s,
            "complained",
            {a: {"detail": "x"}, b: {"provider_event_id": "p"}, c: {}},
            expected=("sent", "delivered"),
            now=NOW,
        )
    assert moved == {a: "sent", b: "delivered"}
    assert (state(a), state(b), state(c)) == ("complained", "complained", "bounced")
    with pytest.raises(outbox.TransitionError), session() as s:
        outbox.transition_many(s, "sent", {a: {}}, expected=("delivered",), now=NOW)


@pytest.mark.parametrize(
    ("name", "after", "reason"),
    [
        ("postfix_user_unknown.eml", "bounced", "bounce"),
        ("postfix_delayed.eml", "sent", None),
        ("exchange_mailbox_full.eml", "sent", None),
        ("arf_complaint.eml", "complained", "complaint"),
        ("qmail_plain.eml", "bounced", "bounce"),
    ],
)
def test_bounce_mail_is_applied_through_the_same_table(db, name, after, reason):
    raw = (DSN / name).read_bytes()
    email = parse_mime(raw)
    original = re.findall(rb"<[^<>\s]+@mail\.test>", raw)[-1]  # the original's id comes last
    rcpt = parse_report(email, raw).recipients[0].recipient
    mid = sent(to=rcpt, message_id=original.decode())
    with session() as s:
        said = events.record_report(s, email, raw, ref="inbound:1", now=NOW)
    assert said and state(mid) == after
    assert suppressed() == ({rcpt: reason} if reason else {})
    with session() as s:  # processing the same inbound message again records nothing twice
        again = events.record_report(s, email, raw, ref="inbound:1", now=NOW)
    assert "0 event(s) recorded" in again


def test_mail_that_is_no_report_is_left_to_the_inbound_pipeline(db):
    raw = b"From: Bob <bob@example.com>\r\nSubject: Re: today\r\n\r\nShipped it.\r\n"
    with session() as s:
        assert events.record_report(s, parse_mime(raw), raw, ref="inbound:2", now=NOW) == ""


def test_a_report_about_no_message_of_ours_says_so(db):
    raw = (DSN / "gmail_no_such_user.eml").read_bytes()
    with session() as s:
        said = events.record_report(s, parse_mime(raw), raw, ref="inbound:3", now=NOW)
    assert "no message of ours" in said and event_rows() == 0


def test_a_batch_takes_the_same_number_of_statements_however_many_events_it_holds(db):
    from sqlalchemy import event

    def run(n: int, prefix: str) -> int:
        ids = [sent(f"{prefix}{i}", to=f"p{prefix}{i}@example.com") for i in range(n)]
        kinds = ("delivered", "bounce", "open", "complaint", "unsubscribe", "deferred")
        batch = [ev(kinds[i % len(kinds)], f"{prefix}-{i}", mid) for i, mid in enumerate(ids)]
        batch += [ev("delivered", f"{prefix}-x{i}", provider_id=f"none-{i}") for i in range(n // 10)]
        statements = []
        listen = lambda *a, **k: statements.append(a[2])  # noqa: E731
        event.listen(db, "before_cursor_execute", listen)
        try:
            counts = apply(*batch)
        finally:
            event.remove(db, "before_cursor_execute", listen)
        assert counts.applied == n and counts.unknown == n // 10
        return len(statements)

    small, large = run(12, "s"), run(600, "l")
    # SELECT known ids, 3 lookups, 5 UPDATEs + 3 event INSERTs, plain events, suppressions
    assert small <= 14 and large <= small + 4  # only the IN (...) lookups split into chunks of 500


def test_a_bounce_arriving_as_inbound_mail_bounces_our_message_and_makes_no_entries(db):
    from app.inbound.accept import accept
    from app.inbound.process import process, reset_for_reprocess
    from app.models import Entry, InboundMessage
    from app.settings import get_settings

    raw = (DSN / "postfix_user_unknown.eml").read_bytes()
    original = re.findall(rb"<[^<>\s]+@mail\.test>", raw)[-1].decode()
    mid = sent(to="bob@example.com", message_id=original)
    with session() as s:
        iid, _ = accept(s, provider="raw", raw=raw, key="raw:dsn-1", now=NOW)
    for _ in range(2):  # processed again (reprocess): nothing recorded twice
        with session() as s:
            assert process(s, iid, now=NOW, settings=get_settings()) == "ignored"
        with session() as s:
            row = s.get(InboundMessage, iid)
            assert "delivery status notification" in row.error
            reset_for_reprocess(s, [iid])
    assert state(mid) == "bounced" and suppressed() == {"bob@example.com": "bounce"}
    with session() as s:
        assert s.execute(select(func.count()).select_from(Entry)).scalar() == 0
    assert [kind for _, kind in timeline(mid)].count("bounced") == 1
