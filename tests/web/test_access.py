"""Access control, table-driven: every route x every role x a foreign team."""

from app.db import session
from app.models import Member, Team


def other_team() -> int:
    """A second team with one admin, zed@other.example; its id."""
    with session() as s:
        t = Team(name="Other", timezone="UTC")
        s.add(t)
        s.flush()
        s.add(Member(team_id=t.id, email="zed@other.example", name="Zed", role="admin"))
        s.flush()
        return t.id
