"""The suppression list: addresses donebox does not send to, and why. The one writer of it.

Every entry has one reason, and reasons have one order, strongest first (REASONS):

    manual       an operator or team admin put it there; only they take it off
    complaint    the recipient marked our mail as spam (provider event, ARF report)
    bounce       the address does not exist (provider event, DSN, a 5.1.x refusal at send time)
    unsubscribe  the recipient asked for no more mail (link, mailto, settings page, provider event)
    soft_bounce  SOFT_BOUNCE_LIMIT soft bounces within SOFT_BOUNCE_WINDOW_DAYS (app.relay.feedback);
                 it expires after SOFT_BOUNCE_SUPPRESS_DAYS

An address keeps its entry unless a strictly stronger reason comes: a bounce or a complaint
replaces an unsubscribe, a complaint replaces a bounce, a manual entry replaces any other, and
nothing replaces a manual entry. Adding what is already there, or something weaker, changes
nothing. An entry may expire (``expires_at``): past it, it suppresses nothing and anything
replaces it. Each entry records what caused it (``event_kind``, ``event_id``, ``message_id``).
What an entry stops is ``stops``: an unsubscribe lets through the mail a person asked for that
minute (sign-in links), every other reason stops everything. A soft bounce is the weakest reason:
it replaces nothing, so an unsubscribe is not lost when the soft-bounce entry would expire.

Every entry also records whose it is (``team_id``): the team whose mail caused it, or whose admin
added it. The list is instance-wide (one address, one entry), so who may take an entry off is
decided here (``refusal``): an operator anything; a team admin only their own teams' entries. An
entry of no team (mail of no team, an operator's entry, rows older than the column) or of two
teams (the same reason came from both) is instance-wide, an operator's to lift. The recipient
may always lift their own unsubscribe (``recipient_may_lift``).

Web pages, the API and the CLI list, add, remove, import and export through the functions here
(``page``, ``add_checked``, ``remove``, ``import_csv``, ``export_csv``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, case, delete, null, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.errors import RequestError
from app.models import Suppression
from parsers.message import address_key, mailbox_key

REASONS = ("manual", "complaint", "bounce", "unsubscribe", "soft_bounce")  # strongest first
RANK = {reason: len(REASONS) - i for i, reason in enumerate(REASONS)}
# mail a person asked for this minute: an unsubscribe does not stop it (a bounce or complaint does)
ASKED_FOR = frozenset({"signin"})
# the reasons the recipient may lift themselves (resubscribing on their settings page)
RECIPIENT_MAY_LIFT = frozenset({"unsubscribe"})
MAX_DETAIL = 1000
CHUNK = 500  # rows per INSERT

_TABLE = Suppression.__table__
_REASONS_OF = select(Suppression.email, Suppression.reason).where(
    Suppression.email.in_(bindparam("emails", expanding=True)),
    or_(Suppression.expires_at.is_(None), Suppression.expires_at > bindparam("now")),
)
MAX_IMPORT_BYTES = 1024 * 1024  # a larger CSV import is refused (413)
MAX_IMPORT_LINES = 10_000
MAX_ERRORS = 100  # bad lines reported one by one; past this, counted


class Item(NamedTuple):
    """One entry to add: its reason, detail, owner (None: instance-wide), expiry and cause."""

    reason: str
    detail: str = ""
    team_id: int | None = None
    expires_at: datetime | None = None
    event_kind: str = ""
    event_id: str = ""
    message_id: int | None = None


def stronger(new: str, old: str) -> bool:
    """True when an entry for ``old`` is replaced by one for ``new`` (REASONS' order, strictly)."""
    return RANK[new] > RANK.get(old, 0)


def stops(reason: str, kind: str) -> bool:
    """True when an entry of ``reason`` stops a message of ``kind`` ('' reason: not suppressed)."""
    if not reason:
        return False
    return not (reason == "unsubscribe" and kind in ASKED_FOR)


def active(entry: Suppression, now: datetime) -> bool:
    """True while ``entry`` suppresses (it has no expiry, or has not reached it)."""
    return entry.expires_at is None or entry.expires_at > now


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
    """Add ``{email: Item}`` (or a tuple of its first fields) under the precedence rule, one
    statement per CHUNK; the entries written (new, replacing a weaker or expired entry, or made
    instance-wide because the same reason came from another team). Raises ValueError for an
    unknown reason."""
    rows: dict[str, dict] = {}
    for email, value in sorted(items.items()):
        item = Item(*value)
        reason, detail, team_id = item.reason, item.detail, item.team_id
        if reason not in RANK:
            raise ValueError(f"not a suppression reason: {reason!r} (one of {', '.join(REASONS)})")
        email = address_key(email)
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
            "expires_at": item.expires_at,
            "event_kind": item.event_kind[:32],
            "event_id": item.event_id[:255],
            "message_id": item.message_id,
        }
    written = 0
    values = list(rows.values())
    for i in range(0, len(values), CHUNK):
        stmt = _insert(s)(_TABLE).values(values[i : i + CHUNK])
        expired = _TABLE.c.expires_at.is_not(None) & (_TABLE.c.expires_at <= now)
        new, old = _rank(stmt.excluded.reason), _rank(_TABLE.c.reason)
        replace = (old < new) | expired
        # the same reason from a second team: the entry is both teams', so neither team's alone
        shared = (
            (new == old)
            & _TABLE.c.team_id.is_not(None)
            & _TABLE.c.team_id.is_distinct_from(stmt.excluded.team_id)
        )
        kept = ("reason", "detail", "created_at", "expires_at", "event_kind", "event_id", "message_id")
        set_ = {c: case((replace, stmt.excluded[c]), else_=_TABLE.c[c]) for c in kept}
        set_["team_id"] = case((replace, stmt.excluded.team_id), else_=null())
        stmt = stmt.on_conflict_do_update(index_elements=["email"], set_=set_, where=replace | shared)
        written += len(s.execute(stmt.returning(_TABLE.c.id)).all())
    return written


def add(
    s: Session,
    email: str,
    reason: str,
    *,
    detail: str = "",
    team_id: int | None = None,
    expires_at: datetime | None = None,
    event_kind: str = "",
    message_id: int | None = None,
    now: datetime,
) -> bool:
    """Suppress ``email`` for ``reason`` (caused by ``team_id``'s mail, None: no team's; until
    ``expires_at``, None: for good; by an ``event_kind`` about ``message_id``) under the
    precedence rule; True when the entry was written."""
    item = Item(reason, detail, team_id, expires_at, event_kind, "", message_id)
    return add_many(s, {email: item}, now=now) == 1


def remove(s: Session, email: str) -> str | None:
    """Take ``email`` off the list; the reason it had, or None when it was not there."""
    stmt = delete(_TABLE).where(_TABLE.c.email == address_key(email)).returning(_TABLE.c.reason)
    return s.execute(stmt).scalar()


def lookup(s: Session, email: str) -> Suppression | None:
    """The entry of ``email``, or None."""
    return s.execute(select(Suppression).where(Suppression.email == address_key(email))).scalar()


def reasons(s: Session, emails: Iterable[str], *, now: datetime) -> dict[str, str]:
    """{email: reason} of the suppressed among ``emails`` (by ``address_key``) at ``now`` (expired
    entries left out), in one statement."""
    wanted = sorted({address_key(e) for e in emails})
    if not wanted:
        return {}
    return dict(s.connection().execute(_REASONS_OF, {"emails": wanted, "now": now}).all())


def page(
    s: Session,
    *,
    team_ids: Collection[int] | None,
    team_id: int | None = None,
    reason: str | None = None,
    q: str = "",
    before: int | None = None,
    limit: int = 50,
) -> list[Suppression]:
    """Up to ``limit`` entries, newest first: those of ``team_ids`` (None: every entry), of
    ``team_id`` and ``reason`` when given, whose address contains ``q``, with ids below ``before``."""
    stmt = select(Suppression).order_by(Suppression.id.desc()).limit(limit)
    if team_ids is not None:
        stmt = stmt.where(Suppression.team_id.in_(team_ids))
    if team_id is not None:
        stmt = stmt.where(Suppression.team_id == team_id)
    if reason:
        stmt = stmt.where(Suppression.reason == reason)
    if q:
        stmt = stmt.where(Suppression.email.contains(address_key(q)[:320], autoescape=True))
    if before:
        stmt = stmt.where(Suppression.id < before)
    return list(s.execute(stmt).scalars())


def _checked(email: str, reason: str, expires_at: datetime | None, now: datetime) -> str:
    """``email``'s key; RequestError naming the field that is wrong."""
    key = mailbox_key(email)
    if not key:
        raise RequestError(f"address: not an email address: {email[:100]!r}")
    if reason not in RANK:
        raise RequestError(f"reason: one of {', '.join(REASONS)}, not {reason[:40]!r}")
    if expires_at is not None and expires_at <= now:
        raise RequestError("expires_at: in the past (an entry that has expired suppresses nothing)")
    return key


def add_checked(
    s: Session,
    email: str,
    reason: str = "manual",
    *,
    admin_team_ids: Collection[int] | None,
    team_id: int | None = None,
    expires_at: datetime | None = None,
    detail: str = "",
    now: datetime,
) -> Suppression:
    """Add an entry by hand (an operator: ``admin_team_ids`` None; or a team's admin or token) and
    return it. RequestError naming the field: 400 for a bad value, 409 when the address already has
    an entry this one does not replace, or one of someone else's (``refusal``)."""
    key = _checked(email, reason, expires_at, now)
    old = lookup(s, key)
    if old is not None and active(old, now):
        why = refusal(old, admin_team_ids)
        if why:
            raise RequestError(f"address: {why}", 409)
    if not add(s, key, reason, detail=detail, team_id=team_id, expires_at=expires_at, now=now):
        raise RequestError(f"address: {key} is already suppressed ({old.reason if old else reason})", 409)
    entry = lookup(s, key)
    assert entry is not None  # just written, in this transaction
    return entry


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 date-time (without an offset: UTC), aware; RequestError naming ``name`` otherwise."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RequestError(f"{name}: not an ISO 8601 date-time: {value[:40]!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass
class Imported:
    """What a CSV import did: entries written, valid lines that changed nothing, bad lines."""

    imported: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)  # "line N: field: why"
    more_errors: int = 0  # bad lines past MAX_ERRORS, not listed


def import_csv(
    s: Session,
    text: str,
    *,
    admin_team_ids: Collection[int] | None,
    team_id: int | None = None,
    detail: str = "imported",
    now: datetime,
) -> Imported:
    """Import ``address[,reason[,expires_at]]`` lines (reason: manual by default; a first line
    ``address,...`` is a header) as entries of ``team_id`` under the precedence rule. Bad lines are
    reported by number and the good ones imported; RequestError 400 when no line is good, 413 past
    MAX_IMPORT_LINES."""
    lines = text.splitlines()
    if len(lines) > MAX_IMPORT_LINES:
        raise RequestError(f"body: more than {MAX_IMPORT_LINES} lines; split the file", 413)
    out, items, where = Imported(), {}, {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or (number == 1 and line.split(",")[0].strip().lower() == "address"):
            continue
        try:
            row = [cell.strip() for cell in next(csv.reader([line]))]
            if len(row) > 3:
                raise RequestError("more than 3 fields (address,reason,expires_at)")
            reason = (row[1] if len(row) > 1 else "") or "manual"
            expires_at = parse_time(row[2], "expires_at") if len(row) > 2 and row[2] else None
            key = _checked(row[0], reason, expires_at, now)
        except (RequestError, csv.Error) as e:
            _bad(out, f"line {number}: {e}")
            continue
        items[key], where[key] = Item(reason, detail, team_id, expires_at), number
    for i in range(0, len(keys := sorted(items)), CHUNK):
        for old in s.execute(select(Suppression).where(Suppression.email.in_(keys[i : i + CHUNK]))).scalars():
            why = refusal(old, admin_team_ids) if active(old, now) else ""
            if why:
                _bad(out, f"line {where[old.email]}: address: {why}")
                del items[old.email]
    if not items:
        raise RequestError("body: no line to import; " + ("; ".join(out.errors[:10]) or "the file is empty"))
    out.imported = add_many(s, items, now=now)
    out.unchanged = len(items) - out.imported
    out.errors.sort(key=lambda e: int(e.split(":")[0].split()[1]))
    return out


def _bad(out: Imported, error: str) -> None:
    if len(out.errors) < MAX_ERRORS:
        out.errors.append(error)
    else:
        out.more_errors += 1


def export_csv(s: Session, *, team_ids: Collection[int] | None, now: datetime) -> str:
    """The entries of ``team_ids`` (None: every entry) that still suppress, as CSV that
    ``import_csv`` reads back: a header, then address,reason,expires_at by address."""
    stmt = select(Suppression.email, Suppression.reason, Suppression.expires_at).order_by(Suppression.email)
    stmt = stmt.where(or_(Suppression.expires_at.is_(None), Suppression.expires_at > now))
    if team_ids is not None:
        stmt = stmt.where(Suppression.team_id.in_(team_ids))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("address", "reason", "expires_at"))
    for email, reason, expires_at in s.execute(stmt):
        writer.writerow((email, reason, expires_at.isoformat() if expires_at else ""))
    return buf.getvalue()
