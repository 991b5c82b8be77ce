"""Quotas on the mail a person's action makes: invitations and sign-in links (issue 12, item 8)."""

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import func, select

from app.db import session
from app.models import Member, OutboundMessage, utcnow
from app.relay import quotas
from app.settings import get_settings
from jobs.broker import drain
from tests.app.web.conftest import post, sign_in


def outbox_to(email: str, kind: str = "invite") -> int:
    with session() as s:
        stmt = select(func.count()).where(OutboundMessage.to_addr == email, OutboundMessage.kind == kind)
        return s.execute(stmt).scalar_one()


def member_id(team_id: int, email: str) -> int:
    with session() as s:
        stmt = select(Member.id).where(Member.team_id == team_id, Member.email == email)
        return s.execute(stmt).scalar_one()


def test_an_invite_remove_loop_gets_five_mails_to_the_address_and_then_a_429(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    members = f"/teams/{team.id}/settings/members"
    for _ in range(5):
        assert post(client, members, {"email": "cy@example.com"}).status_code == 303
        gone = post(client, f"{members}/{member_id(team.id, 'cy@example.com')}/remove", {"confirm": "yes"})
        assert gone.status_code == 303
    r = post(client, members, {"email": "cy@example.com"})
    assert r.status_code == 429, r.text
    assert "cy@example.com has been sent 5 invitations or sign-in links in the last hour" in r.text
    drain()
    assert outbox_to("cy@example.com") == 5
    assert len([m for m in sent if m["To"] == "cy@example.com"]) == 5
    with session() as s:  # the refused invitation added no one
        assert not s.get(Member, member_id(team.id, "cy@example.com")).active
    # the quota counts sign-in links too: cy asks for one and gets the usual answer, and no mail
    client.cookies.clear()
    r = post(client, "/signin", {"email": "cy@example.com"})
    assert r.status_code == 200 and "at most 5 sign-in links and invitations an hour" in r.text
    drain()
    assert outbox_to("cy@example.com", "signin") == 0


def test_the_twenty_first_invitation_of_an_admin_in_an_hour_is_refused(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    members = f"/teams/{team.id}/settings/members"
    for i in range(20):
        assert post(client, members, {"email": f"p{i}@example.com"}).status_code == 303
    r = post(client, members, {"email": "p20@example.com"})
    assert r.status_code == 429 and "you have sent 20 invitations in the last hour" in r.text
    drain()
    assert outbox_to("p20@example.com") == 0
    with session() as s:
        assert s.execute(select(Member).where(Member.email == "p20@example.com")).first() is None
        invites = select(func.count()).where(OutboundMessage.kind == "invite")
        assert s.execute(invites).scalar_one() == 20


def test_the_quotas_count_the_last_hour_of_the_outbox(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    for _ in range(2):
        post(client, f"/teams/{team.id}/settings/members", {"email": "cy@example.com"})
        cy = member_id(team.id, "cy@example.com")
        post(client, f"/teams/{team.id}/settings/members/{cy}/remove", {"confirm": "yes"})
    settings = get_settings()
    now = utcnow()
    tight = replace(settings, mails_per_hour_per_recipient=2)
    few = replace(settings, invites_per_hour_per_admin=2)
    with session() as s:
        assert quotas.to_recipient(s, "CY@example.com", now=now) == 2
        assert quotas.invites_by(s, "ada@example.com", now=now) == 2
        assert "cy@example.com" in quotas.refusal(s, "signin", "cy@example.com", now=now, settings=tight)
        refused = quotas.refusal(s, "invite", "x@example.com", actor="ada@example.com", now=now, settings=few)
        assert "you have sent 2 invitations" in refused
        assert (
            quotas.refusal(s, "invite", "x@example.com", actor="bob@example.com", now=now, settings=few) == ""
        )
        later = now + timedelta(hours=1, seconds=1)
        assert quotas.refusal(s, "signin", "cy@example.com", now=later, settings=tight) == ""
        assert (
            quotas.refusal(s, "invite", "x@example.com", actor="ada@example.com", now=later, settings=few)
            == ""
        )
