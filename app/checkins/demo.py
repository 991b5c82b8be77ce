"""The demo team created on first ``donebox run``: three members, first reminder due at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from app.checkins.schedules import schedule_member, set_due
from app.models import Member, Team

DEMO_MEMBERS = (
    ("Ada Lovelace", "ada@example.com", "admin"),
    ("Grace Hopper", "grace@example.com", "member"),
    ("Linus Torvalds", "linus@example.com", "member"),
)


def ensure_demo(s: Session, *, now: datetime) -> Team | None:
    """Create the demo team if there is no team at all; returns it, or None when teams exist."""
    if s.execute(select(Team.id).limit(1)).first() is not None:
        return None
    team = Team(name="Demo team", timezone="UTC", workdays="1234567", created_at=now)
    s.add(team)
    s.flush()
    for name, email, role in DEMO_MEMBERS:
        member = Member(team_id=team.id, email=email, name=name, role=role, created_at=now)
        s.add(member)
        schedule_member(s, member, team, now)
        set_due(s, "reminder", [(member.id, now)])  # the demo's first reminder is due at start
    s.flush()
    return team
