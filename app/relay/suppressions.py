"""The suppression list: addresses donebox does not send to, and why. The one writer of it.

Every entry has one reason, and reasons have one order, strongest first (REASONS):

    manual       an operator or team admin put it there; only they take it off
    complaint    the recipient marked our mail as spam (provider event, ARF report)
    bounce       the address does not exist (provider event, DSN, a 5.1.x refusal at send time)
    unsubscribe  the recipient asked for no more mail (link, mailto, settings page, provider event)

An address keeps its entry unless a strictly stronger reason comes: a bounce or a complaint
replaces an unsubscribe, a complaint replaces a bounce, a manual entry replaces any other, and
nothing replaces a manual entry. Adding what is already there, or something weaker, changes
nothing. What an entry stops is ``stops``: an unsubscribe lets through the mail a person asked for
that minute (sign-in links), every other reason stops everything.

Every entry also records whose it is (``team_id``): the team whose mail caused it, or whose admin
added it. The list is instance-wide (one address, one entry), so who may take an entry off is
decided here (``refusal``): an operator anything; a team admin only their own teams' entries. An
entry of no team (mail of no team, an operator's entry, rows older than the column) or of two
teams (the same reason came from both) is instance-wide, an operator's to lift. The recipient
may always lift their own unsubscribe (``recipient_may_lift``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import bindparam, case, delete, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.models import Suppression
from parsers.message import address_key

REASONS = ("manual", "complaint", "bounce", "unsubscribe")  # strongest first
RANK = {reason: len(REASONS) - i for i, reason in enumerate(REASONS)}
# mail a person asked for this minute: an unsubscribe does not stop it (a bounce or complaint does)
ASKED_FOR = frozenset({"signin"})
# the reasons the recipient may lift themselves (resubscribing on their settings page)
RECIPIENT_MAY_LIFT = frozenset({"unsubscribe"})
MAX_DETAIL = 1000
CHUNK = 500  # rows per INSERT

_TABLE = Suppression.__table__
_REASONS_OF = select(Suppression.email, Suppression.reason).where(
    Suppression.email.in_(bindparam("emails", expanding=True))
)


def stronger(new: str, old: str) -> bool:
    """True when an entry for ``old`` is replaced by one for ``new`` (REASONS' order, strictly)."""
    return RANK[new] > RANK.get(old, 0)


def stops(reason: str, kind: str) -> bool:
    """True when an entry of ``reason`` stops a message of ``kind`` ('' reason: not suppressed)."""
    if not reason:
        return False
    return not (reason == "unsubscribe" and kind in ASKED_FOR)


def recipient_may_lift(reason: str) -> bool:
    """True when the recipient may remove an entry of ``reason`` themselves."""
    return reason in RECIPIENT_MAY_LIFT


def refusal(entry: Suppression, admin_team_ids: Collection[int] | None) -> str:
    """'' when the admin of ``admin_team_ids`` (None: an operator) may take ``entry`` off the list;
    otherwise the reason they may not, in words for them."""
    if admin_team_ids is None:
        return ""
    if entry.team_id is None:
        return (
            f"{entry.email} is suppressed instance-wide ({entry.reason}): only an operator can lift it "
            f"(donebox suppression remove {entry.email})"
        )
    if entry.team_id not in admin_team_ids:
        return (
            f"{entry.email} is suppressed because of another team's mail ({entry.reason}): "
            "only that team's admins or an operator can lift it"
        )
    return ""


def _insert(s: Session):
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def _rank(column):
    return case(RANK, value=column, else_=0)


def add_many(s: Session, items: dict[str, tuple], *, now: datetime) -> int:
    """Add ``{email: (reason, detail[, team_id])}`` under the precedence rule, one statement per
    CHUNK; the entries written (new, replaced by a stronger reason, or made instance-wide because
    the same reason came from another team). Raises ValueError for an unknown reason."""
    rows: dict[str, dict] = {}
    for email, (reason, detail, *team) in sorted(items.items()):
        if reason not in RANK:
            raise ValueError(f"not a suppression reason: {reason!r} (one of {', '.join(REASONS)})")
        email, team_id = address_key(email), team[0] if team else None
        if email in rows:
            old = rows[email]
            if reason == old["reason"] and team_id != old["team_id"]:
                old["team_id"] = None
            if not stronger(reason, old["reason"]):
                continue
        rows[email] = {
            "email": email,
            "reason": reason,
            "detail": detail[:MAX_DETAIL],
            "team_id": team_id,
            "created_at": now,
        }
    written = 0
    values = list(rows.values())
    for i in range(0, len(values), CHUNK):
        stmt = _insert(s)(_TABLE).values(values[i : i + CHUNK])
        new, old = _rank(stmt.excluded.reason), _rank(_TABLE.c.reason)
        # the same reason from a second team: the entry is both teams', so neither team's alone
        shared = (
            (new == old)
            & _TABLE.c.team_id.is_not(None)
            & _TABLE.c.team_id.is_distinct_from(stmt.excluded.team_id)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["email"],
            set_={
                "reason": case((old < new, stmt.excluded.reason), else_=_TABLE.c.reason),
                "detail": case((old < new, stmt.excluded.detail), else_=_TABLE.c.detail),
                "team_id": case((old < new, stmt.excluded.team_id), else_=null()),
                "created_at": case((old < new, stmt.excluded.created_at), else_=_TABLE.c.created_at),
            },
            where=(old < new) | shared,
        )
        written += len(s.execute(stmt.returning(_TABLE.c.id)).all())
    return written


def add(
    s: Session, email: str, reason: str, *, detail: str = "", team_id: int | None = None, now: datetime
) -> bool:
    """Suppress ``email`` for ``reason`` (caused by ``team_id``'s mail, None: no team's) under the
    precedence rule; True when the entry was written."""
    return add_many(s, {email: (reason, detail, team_id)}, now=now) == 1


def remove(s: Session, email: str) -> str | None:
    """Take ``email`` off the list; the reason it had, or None when it was not there."""
    stmt = delete(_TABLE).where(_TABLE.c.email == address_key(email)).returning(_TABLE.c.reason)
    return s.execute(stmt).scalar()


def lookup(s: Session, email: str) -> Suppression | None:
    """The entry of ``email``, or None."""
    return s.execute(select(Suppression).where(Suppression.email == address_key(email))).scalar()


def reasons(s: Session, emails: Iterable[str]) -> dict[str, str]:
    """{email: reason} of the suppressed among ``emails`` (by ``address_key``), in one statement."""
    wanted = sorted({address_key(e) for e in emails})
    return dict(s.connection().execute(_REASONS_OF, {"emails": wanted}).all()) if wanted else {}
