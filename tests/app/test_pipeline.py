from datetime import timedelta

import pytest
from sqlalchemy import select

from app import outbox
from app.db import session
from app.errors import PermanentSendError, TransientSendError
from app.models import OutboundMessage, Suppression
from app.relay.pipeline import deliver
from app.relay.transports import MemoryTransport
from app.settings import get_settings
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW


class Failing:
    """A transport that raises what it is given."""

    name = "failing"

    def __init__(self, exc):
        self.exc = exc

    def send(self, message):
        raise self.exc


def reminder_for(member_email="ada@example.com"):
    from app.checkins import create_reminder
    from app.models import Member, Team

    with session() as s:
        m = s.execute(select(Member).where(Member.email == member_email)).scalar_one()
        t = s.get(Team, m.team_id)
        mid, _ = create_reminder(s, m, t, NOW.date(), now=NOW, settings=get_settings())
    return mid


def row(mid):
    with session() as s:
        return s.get(OutboundMessage, mid)


def test_a_reminder_is_rendered_with_a_signed_reply_address_and_sent(team):
    mid = reminder_for()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "sent"
    msg = t.sent[0]
    assert msg["To"] == "ada@example.com"
    assert msg["Reply-To"].startswith("reply+") and msg["Reply-To"].endswith("@reply.test")
    assert msg["Message-ID"] == row(mid).message_id
    assert "What did you get done today?" in msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert 'style="' in html and "<style>" not in html  # CSS inlined
    assert row(mid).state == "sent" and row(mid).sent_at == NOW


def test_a_message_is_delivered_once_even_if_its_job_runs_twice(team):
    mid = reminder_for()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "sent"
    assert deliver(mid, transport=t, now=NOW) == "not-claimed"
    assert len(t.sent) == 1


def test_a_suppressed_address_is_never_sent_to(team):
    with session() as s:
        s.add(Suppression(email="ada@example.com", reason="bounce"))
    mid = reminder_for()
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "suppressed"
    assert t.sent == [] and "bounce" in row(mid).error


def test_a_transient_failure_defers_with_backoff_and_keeps_the_message_id(team):
    mid = reminder_for()
    first_id = row(mid).message_id
    assert (
        deliver(mid, transport=Failing(TransientSendError("421 try later", retry_in_s=30)), now=NOW)
        == "deferred"
    )
    r = row(mid)
    assert r.error == "421 try later" and r.next_attempt_at >= NOW + timedelta(seconds=30)
    with session() as s:
        assert outbox.sweep(s, now=r.next_attempt_at, lease_s=60) == [mid]
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=r.next_attempt_at) == "sent"
    assert t.sent[0]["Message-ID"] == first_id and row(mid).attempts == 2


def test_a_retry_that_would_land_after_the_reminders_day_fails_instead(team):
    mid = reminder_for()
    late = row(mid).expires_at - timedelta(seconds=10)
    assert deliver(mid, transport=Failing(TransientSendError("busy", retry_in_s=60)), now=late) == "failed"
    assert row(mid).error.startswith("gave up")


@pytest.mark.parametrize("code, final", [(550, "bounced"), (554, "failed")])
def test_a_permanent_failure_is_final(team, code, final):
    mid = reminder_for()
    assert deliver(mid, transport=Failing(PermanentSendError(f"{code} no", smtp_code=code)), now=NOW) == final
    assert row(mid).state == final
    # a bad address (550) goes on the suppression list, like a bounce a provider reports later
    with session() as s:
        reasons = list(
            s.execute(select(Suppression.reason).where(Suppression.email == "ada@example.com")).scalars()
        )
    assert reasons == (["bounce"] if final == "bounced" else [])


def test_a_subject_with_a_line_break_is_never_emitted(team):
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=NOW,
            idempotency_key="inj",
            kind="reminder",
            team_id=team.id,
            member_id=1,
            to_addr="ada@example.com",
            subject="Hi\r\nBcc: victim@example.com",
            template="reminder",
            context={"day": "2026-11-23"},
            message_id=outbox.new_message_id("mail.test"),
        )
    t = MemoryTransport()
    assert deliver(mid, transport=t, now=NOW) == "failed"
    assert t.sent == [] and "line break" in row(mid).error


def test_an_unexpected_error_in_a_step_defers_instead_of_losing_the_message(team):
    class Exploding:
        def send(self, message):
            raise RuntimeError("disk on fire")

    mid = reminder_for()
    assert deliver(mid, transport=Exploding(), now=NOW) == "deferred"
    assert "disk on fire" in row(mid).error


def test_a_teams_digest_is_rendered_once_for_all_recipients_and_reminders_each_time(team, monkeypatch):
    from datetime import date

    from app.checkins import create_digest
    from app.models import Member, Team
    from app.relay import pipeline

    calls = []
    real = pipeline.render_parts
    monkeypatch.setattr(pipeline, "render_parts", lambda *a: calls.append(a[0]) or real(*a))
    with session() as s:
        t = s.get(Team, team.id)
        ids = [
            create_digest(s, m, t, date(2026, 11, 20), now=NOW, settings=get_settings())[0]
            for m in s.execute(select(Member)).scalars()
        ]
    t = MemoryTransport()
    for mid in ids:
        assert deliver(mid, transport=t, now=NOW) == "sent"
    deliver(reminder_for(), transport=t, now=NOW)
    deliver(reminder_for("bob@example.com"), transport=t, now=NOW)
    assert calls == ["digest", "reminder", "reminder"]
    assert len({m["Message-ID"] for m in t.sent}) == 5 and len({m["To"] for m in t.sent[:3]}) == 3
