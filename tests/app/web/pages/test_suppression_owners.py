"""Whose suppression is it: one team cannot lift what another team's mail caused (issue 12, item 5)."""

from sqlalchemy import select

from app.cli import main
from app.db import session
from app.models import OutboundMessage, Suppression, utcnow
from app.relay import feedback, outbox, suppressions
from jobs.broker import drain
from parsers.providers.events import DeliveryEvent
from tests.app.web.conftest import post, sign_in
from tests.app.web.pages.test_mail import remind_everyone
from tests.app.web.test_routes import other_team


def complained(team_id: int | None, to: str = "bob@example.com", key: str = "m1") -> int:
    """A message of ``team_id`` to ``to`` that went out and drew a spam complaint; its id."""
    now = utcnow()
    with session() as s:
        mid, _ = outbox.create(
            s,
            now=now,
            idempotency_key=key,
            kind="api",
            team_id=team_id,
            to_addr=to,
            subject="Hi",
            template="t",
            message_id=outbox.new_message_id("mail.test"),
        )
        outbox.claim(s, mid, now=now, lease_s=60)
        outbox.transition(s, mid, "sent", expected="sending", now=now)
        event = DeliveryEvent(source="sendgrid", kind="complaint", event_id=f"c-{key}", outbound_id=mid)
        assert feedback.apply_events(s, [event], now=now).suppressed == 1
    return mid


def entry(email: str = "bob@example.com") -> Suppression | None:
    with session() as s:
        return suppressions.lookup(s, email)


def sent_to(sent, email: str) -> list:
    return [m for m in sent if m["To"] == email]


def test_another_teams_admin_cannot_lift_a_complaint_and_the_team_still_does_not_mail(client, team, sent):
    complained(team.id)
    assert (entry().reason, entry().team_id) == ("complaint", team.id)
    other = other_team()
    sign_in(client, sent, "zed@other.example")
    # zed invites the complainer into their own team, then tries to lift the suppression
    assert post(client, f"/teams/{other}/settings/members", {"email": "bob@example.com"}).status_code == 303
    page = client.get("/mail/suppressions").text
    assert "bob@example.com" in page and "another team&#39;s mail" in page
    r = post(client, f"/mail/suppressions/{entry().id}/remove")
    assert r.status_code == 403 and "another team" in r.text and "operator" in r.text
    assert entry().reason == "complaint"
    # the original team's next mail to the address is still stopped, not sent
    sent.clear()
    ids = remind_everyone()
    with session() as s:
        states = dict(
            s.execute(
                select(OutboundMessage.to_addr, OutboundMessage.state).where(OutboundMessage.id.in_(ids))
            ).all()
        )
    assert states["bob@example.com"] == "suppressed"
    assert not sent_to(sent, "bob@example.com") and sent_to(sent, "ada@example.com")


def test_a_teams_admin_lifts_what_their_own_teams_mail_caused(client, team, sent):
    complained(team.id)
    sign_in(client, sent, "ada@example.com")
    assert post(client, f"/mail/suppressions/{entry().id}/remove", {"confirm": "yes"}).status_code == 303
    assert entry() is None
    remind_everyone()
    assert sent_to(sent, "bob@example.com")


def test_an_instance_wide_complaint_is_lifted_only_by_an_operator(client, team, sent, capsys):
    complained(None)  # mail of no team (an application's send)
    assert entry().team_id is None
    sign_in(client, sent, "ada@example.com")
    assert "only an operator" in client.get("/mail/suppressions").text
    r = post(client, f"/mail/suppressions/{entry().id}/remove")
    assert r.status_code == 403 and "instance-wide" in r.text
    remind_everyone()
    assert not sent_to(sent, "bob@example.com")
    assert main(["suppression", "show", "bob@example.com"]) == 0
    assert "complaint (instance-wide)" in capsys.readouterr().out
    assert main(["suppression", "remove", "Bob@Example.com"]) == 0
    assert "no longer suppressed (it was: complaint)" in capsys.readouterr().out
    assert entry() is None
    assert main(["suppression", "remove", "bob@example.com"]) == 1


def test_the_same_complaint_from_two_teams_makes_the_entry_instance_wide(client, team, sent):
    other = other_team()
    complained(team.id, key="m1")
    complained(other, key="m2")
    assert (entry().reason, entry().team_id) == ("complaint", None)
    sign_in(client, sent, "ada@example.com")
    assert post(client, f"/mail/suppressions/{entry().id}/remove").status_code == 403


def test_an_admins_manual_entry_is_their_teams_and_an_unsubscribe_records_the_team(client, team, sent):
    other = other_team()
    sign_in(client, sent, "ada@example.com")
    assert post(client, "/mail/suppressions", {"email": "bob@example.com"}).status_code == 303
    assert (entry().reason, entry().team_id) == ("manual", team.id)
    with session() as s:
        s.delete(s.get(Suppression, entry().id))
    # an unsubscribe from another team's mail belongs to that team
    mid = complained(other, key="m3")
    with session() as s:
        s.delete(s.get(Suppression, entry().id))
        feedback.apply_events(
            s,
            [DeliveryEvent(source="sendgrid", kind="unsubscribe", event_id="u1", outbound_id=mid)],
            now=utcnow(),
        )
    assert (entry().reason, entry().team_id) == ("unsubscribe", other)
    r = post(client, f"/mail/suppressions/{entry().id}/remove")
    assert r.status_code == 403 and entry() is not None
    drain()
