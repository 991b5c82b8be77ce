"""The tick's producer at scale: due members in batches -> outbox rows in bulk -> ``next_*_at`` advanced.

One batch is one transaction: select up to ``batch`` due members (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so concurrent schedulers take disjoint members;
SQLite: ``BEGIN IMMEDIATE`` makes this process the single writer), create their
reminder or digest rows in one multi-row ``INSERT ... ON CONFLICT DO NOTHING
RETURNING id`` (idempotent by ``kind:member:local-date``), move every selected
member's next time (its ``memberdue`` row) past ``now`` in one statement, commit, then hand the new ids
to ``enqueue``. A crash between commit and enqueue loses nothing: the rows are
``queued`` with a lease, and the sweeper enqueues them again when it expires.

On PostgreSQL the reminders of the common member (no pause near the tick, a team that does
not nudge) take a set-based path first (``run_fast_reminders``): the ids of every member due
are read once (``fast_due_ids``), then taken in chunks of consecutive ids, so that a chunk's
rows share pages (docs/scheduling.md says what that saved). Python reads a chunk's members and
works out, per distinct local day and schedule, the day, the day's end and the next reminder
(times.py, DST included), then one statement advances the members, inserts their outbox rows
and the creation events from those groups. Everything it leaves due (pauses, nudging teams)
then goes through ``run_batch`` as before; SQLite always does.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import uuid
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from sqlalchemy import select, text
from sqlmodel import Session

from app.checkins import chat, summary
from app.checkins.asked import reached_pairs
from app.checkins.outgoing import REMINDER_SUBJECT, checkin_row
from app.checkins.schedules import pauses_of, set_due
from app.checkins.times import (
    forget_instants,
    local_midnight_after,
    next_occurrence,
    nudge_instant,
    parse_hhmm,
    paused_on,
    previous_workday,
    zone,
)
from app.db import get_engine, session
from app.models import Entry, Member, MemberDue, MemberPause, Team, TeamSettings
from app.relay import outbox
from app.settings import Settings


@dataclass(frozen=True)
class Kind:
    """What fires for a member: its ``memberdue`` kind, and the name its due time has in a batch's rows."""

    name: str
    column: str


REMINDER = Kind("reminder", "next_reminder_at")
DIGEST = Kind("digest", "next_digest_at")
NUDGE = Kind("nudge", "next_nudge_at")  # set by the day's reminder, not by the schedule
KINDS = (REMINDER, DIGEST, NUDGE)
# pg_advisory_lock_shared(TICKING_LOCK, 0): held by every scheduler process while it ticks on
# PostgreSQL (the two-key form: its keys are not the one-key form's, which app.relay.quotas and
# app.migrate take), so each can count the schedulers ticking at once
TICKING_LOCK = 0x646F6E65  # "done"
_TICKING_NOW = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    f" AND classid = {TICKING_LOCK} AND objid = 0 AND objsubid = 2"
)

_SELECT_COLUMNS = (
    Member.id,
    Member.team_id,
    Member.email,
    Member.role,
    Member.timezone,
    Member.reminder_time,
    Member.reminder_days,
    Member.digest_time,
    Member.digest_days,
    Member.active,
)


_TEAM_COLUMNS = tuple(
    getattr(Team, c)
    for c in (
        "id",
        "name",
        "timezone",
        "reminder_time",
        "digest_time",
        "workdays",
        "digest_workdays",
        "skip_empty_digests",
        "weekly_digest_day",
    )
)


# kept for one tick (due.run empties them when it ends): a tick of a million due members asks
# them for tens of thousands of (instant, zone) pairs, and the next tick's are other ones
@lru_cache(maxsize=65536)
def _local_day(when: datetime, tz: str) -> date:
    return when.astimezone(zone(tz)).date()


@lru_cache(maxsize=65536)
def _midnight(day: date, tz: str) -> datetime:
    return local_midnight_after(day, tz)


@lru_cache(maxsize=65536)
def _iso(when: datetime) -> str:
    return when.isoformat()


def _nonempty_days(s: Session, pairs: set[tuple[int, date]]) -> set[tuple[int, date]]:
    """Which (team, day) pairs have at least one entry."""
    if not pairs:
        return set()
    teams = {t for t, _ in pairs}
    days = {d for _, d in pairs}
    rows = s.execute(
        select(Entry.team_id, Entry.day).where(Entry.team_id.in_(teams), Entry.day.in_(days)).distinct()
    )
    return {(t, d) for t, d in rows} & pairs


def due_query(kind: Kind, now: datetime, batch: int, dialect: str, since: datetime | None = None):
    """The due-selection statement: up to ``batch`` members whose ``kind`` is due, earliest first
    (the due time named ``kind.column``); ``since`` (the last due time an earlier batch of this
    tick took) skips what lies before it. PostgreSQL locks the members' ``memberdue`` rows."""
    at = MemberDue.at
    stmt = (
        select(*_SELECT_COLUMNS, at.label(kind.column))
        .join(MemberDue, MemberDue.member_id == Member.id)
        .where(MemberDue.kind == kind.name, at <= now if since is None else at.between(since, now))
        .order_by(at)
        .limit(batch)
    )
    return stmt.with_for_update(skip_locked=True, of=MemberDue) if dialect == "postgresql" else stmt


def _any_pauses(s: Session, now: datetime) -> bool:
    """Whether any pause is not over yet (most ticks can then skip looking pauses up per batch)."""
    since = now.date() - timedelta(days=2)
    return s.execute(select(MemberPause.id).where(MemberPause.last_day >= since).limit(1)).first() is not None


def _options(s: Session, team_ids: set[int]) -> dict[int, tuple[bool, bool, bool]]:
    """(digest_enabled, tracking, participation_summary) of the teams among ``team_ids`` that have a
    settings row (the others have the defaults: digest on, tracking off, no summary)."""
    if not team_ids:
        return {}
    stmt = select(
        TeamSettings.team_id,
        TeamSettings.digest_enabled,
        TeamSettings.tracking,
        TeamSettings.participation_summary,
    ).where(TeamSettings.team_id.in_(team_ids))
    return {t: (on, track, summarize) for t, on, track, summarize in s.execute(stmt)}


def _nudging(s: Session, team_ids: set[int]) -> dict[int, tuple[int, str]]:
    """(nudge_hours, nudge_cutoff) of the teams among ``team_ids`` that turned nudges on."""
    if not team_ids:
        return {}
    stmt = select(TeamSettings.team_id, TeamSettings.nudge_hours, TeamSettings.nudge_cutoff).where(
        TeamSettings.team_id.in_(team_ids), TeamSettings.nudge_hours > 0
    )
    return {t: (hours, cutoff) for t, hours, cutoff in s.execute(stmt)}


def _nudge_times(
    s: Session, plans: list, nudging: dict[int, tuple[int, str]]
) -> list[tuple[int, datetime | None]]:
    """next_nudge_at of the members whose reminder was just made, in teams that nudge (None: no
    nudge that day: it would land after the cut-off or on another day)."""
    changes = []
    for r, team, tz, day, _ in plans:
        if team.id not in nudging:
            continue
        hours, cutoff = nudging[team.id]
        changes.append(
            (
                r.id,
                nudge_instant(
                    day,
                    tz,
                    reminder=r.next_reminder_at,  # the reminder just made was due then
                    hours=hours,
                    cutoff=cutoff,
                    digest_time=r.digest_time or team.digest_time,
                    digest_days=r.digest_days or team.digest_workdays or team.workdays,
                ),
            )
        )
    return changes


def _nudge_plans(s: Session, rows, teams: dict[int, Team], now: datetime, late: timedelta) -> list:
    """The nudges due among ``rows`` (members whose next_nudge_at came): active, asked, the team
    still nudging, not late, not paused that day, before the cut-off and on the day itself, the
    day's reminder reached them and they wrote nothing for it."""
    nudging = _nudging(s, {r.team_id for r in rows})
    candidates = []
    for r in rows:
        team = teams[r.team_id]
        tz = r.timezone or team.timezone
        if not (r.active and r.role != "observer" and team.id in nudging):
            continue
        due_at = r.next_nudge_at
        local = now.astimezone(zone(tz))
        day = _local_day(due_at, tz)
        if now - due_at > late or local.date() != day or local.time() >= parse_hhmm(nudging[team.id][1]):
            continue
        candidates.append((r, team, tz, day, day))
    if not candidates:
        return []
    pauses = pauses_of(s, [c[0].id for c in candidates], min(c[3] for c in candidates) - timedelta(days=1))
    candidates = [c for c in candidates if not paused_on(c[3], pauses.get(c[0].id, ()))]
    pairs = {(c[0].id, c[3]) for c in candidates}
    if not pairs:
        return []
    stmt = (
        select(Entry.member_id, Entry.day)
        .where(Entry.member_id.in_({m for m, _ in pairs}), Entry.day.in_({d for _, d in pairs}))
        .distinct()
    )
    wrote = {(m, d) for m, d in s.execute(stmt)}
    asked = reached_pairs(s, pairs - wrote)
    return [c for c in candidates if (c[0].id, c[3]) in asked]


def run_batch(
    s: Session,
    kind: Kind,
    *,
    now: datetime,
    settings: Settings,
    batch: int,
    teams: dict[int, Team],
    any_pauses: bool = True,
    since: datetime | None = None,
) -> tuple[list[int], int, datetime | None]:
    """One batch in the caller's transaction: (ids of new outbox rows, members handled, the
    latest due time among them: where the next batch of this tick may start)."""
    if s.get_bind().dialect.name == "postgresql":
        # Safe to not wait for the WAL flush: a batch lost in a crash loses its rows and its schedule
        # advance together (the next tick makes them again), and a worker's claim commits after it
        # in the WAL, so no message is sent from a batch that did not survive.
        s.connection().exec_driver_sql("SET LOCAL synchronous_commit = off")
    rows = s.connection().execute(due_query(kind, now, batch, s.get_bind().dialect.name, since)).all()
    if not rows:
        return [], 0, since
    missing = {r.team_id for r in rows} - teams.keys()
    if missing:
        for t in s.connection().execute(select(*_TEAM_COLUMNS).where(Team.id.in_(missing))):
            teams[t.id] = t
    pauses = {}
    if any_pauses:
        since = min(_local_day(getattr(r, kind.column), "UTC") for r in rows) - timedelta(days=2)
        pauses = pauses_of(s, [r.id for r in rows], since)
    late = timedelta(seconds=settings.reminder_late_s)
    domain = settings.mail_domain
    plans, changes = [], []
    if kind is NUDGE:  # at most one a day: the reminder sets it, sending it clears it
        plans = _nudge_plans(s, rows, teams, now, late)
        rows_iter: list = []
        changes = [(r.id, None) for r in rows]
    else:
        rows_iter = rows
    for r in rows_iter:
        # the member's own settings where set, the team's otherwise (timetable.effective, inlined:
        # this loop runs for every due member)
        team = teams[r.team_id]
        tz = r.timezone or team.timezone
        asked = r.role != "observer"
        reminder_days = r.reminder_days or team.workdays
        due_at = getattr(r, kind.column)
        mine = pauses.get(r.id, ()) if pauses else ()
        day = _local_day(due_at, tz)
        if kind is REMINDER:
            at, days = r.reminder_time or team.reminder_time, reminder_days
            fire = r.active and asked and now - due_at <= late and not (mine and paused_on(day, mine))
            covered = day
        else:
            at = r.digest_time or team.digest_time
            days = r.digest_days or team.digest_workdays or team.workdays
            fire = r.active and not (mine and paused_on(day, mine))  # a late digest is still sent
            covered = previous_workday(day, reminder_days)
        wanted = r.active and (asked or kind is DIGEST)
        changes.append((r.id, next_occurrence(now, at, days, tz, mine) if wanted else None))
        if fire:
            plans.append((r, team, tz, covered, day))
    new_rows, nudges = [], []
    opts = _options(s, {p[1].id for p in plans})
    if kind is REMINDER and plans:
        nudges = _nudge_times(s, plans, _nudging(s, {p[1].id for p in plans}))
    tracked = {t for t, (_, track, _) in opts.items() if track}
    # Message-IDs: one random part per batch and the row's own key, unique without a uuid per row
    nonce = uuid.uuid4().hex[:16]
    if kind is DIGEST:
        # the admins' weekly participation summary rides on their digest, sent or not (summary.py)
        summarizing = {t for t, (_, _, on) in opts.items() if on}
        new_rows += summary.rows(plans, summarizing, domain, tracked, nonce)
        plans = [p for p in plans if opts.get(p[1].id, (True, False, False))[0]]
        skippable = {(t.id, d) for _, t, _, d, _ in plans if t.skip_empty_digests}
        empty = skippable - _nonempty_days(s, skippable)
        new_rows += _weekly_rows(s, plans, domain, tracked)
        plans = [p for p in plans if (p[1].id, p[3]) not in empty]
        # the team's chat destinations get the digest of the day once, with its first member's digest
        new_rows += chat.digest_rows(s, {(p[1].id, p[3]) for p in plans}, now=now, settings=settings)
    new_rows += [
        checkin_row(
            kind.name,
            r,
            team,
            tz,
            covered,
            f"<{nonce}.{kind.name[0]}{r.id}@{domain}>",
            track=team.id in tracked,
            midnight=_midnight,
        )
        for r, team, tz, covered, _ in plans
    ]
    ids = outbox.create_many(s, new_rows, now=now, lease_until=now + timedelta(seconds=settings.lease_s))
    set_due(s, kind.name, changes)
    set_due(s, NUDGE.name, nudges)
    return ids, len(rows), getattr(rows[-1], kind.column)


def _weekly_rows(s: Session, plans: list, domain: str, tracked: set[int]) -> list[dict]:
    """Weekly digests riding on the daily digest of the team's weekly day (the 7 days before it);
    ``tracked``: the teams whose mail is tracked."""
    rows, skip_checks = [], {}
    for r, team, _tz, _covered, day in plans:
        if team.weekly_digest_day != day.isoweekday():
            continue
        last = day - timedelta(days=1)
        if team.skip_empty_digests:
            key = (team.id, last)
            if key not in skip_checks:
                skip_checks[key] = s.execute(
                    select(Entry.id)
                    .where(Entry.team_id == team.id, Entry.day <= last, Entry.day > last - timedelta(days=7))
                    .limit(1)
                ).first()
            if skip_checks[key] is None:
                continue
        rows.append(
            {
                "idempotency_key": f"weekly:{r.id}:{day.isoformat()}",
                "kind": "weekly",
                "team_id": team.id,
                "member_id": r.id,
                "to_addr": r.email,
                "subject": f"{team.name}: the week to {last:%A, %d %B}",
                "template": "weekly",
                "context": json.dumps(
                    {"last": last.isoformat(), **({"_track": True} if team.id in tracked else {})}
                ),
                "message_id": f"<{uuid.uuid4().hex}@{domain}>",
                "expires_at": None,
            }
        )
    return rows


# ---------------------------------------------------------------- PostgreSQL: reminders set-based

# The fast path reads the ids of every member whose reminder is due (sorted), then works through
# them in chunks of consecutive ids: a chunk's members, their memberdue rows and the outbox index
# entries its rows make then sit on neighbouring pages. Taken in due-time order instead, a batch's
# members lay all over those tables, and with a buffer pool smaller than them (stock PostgreSQL:
# 128 MB) most of a batch's page reads and writes went to the operating system.
#
# The ids travel as one bytea of 4-byte big-endian integers: a million due members come over as
# 4 MB and go into an array('i') as they are, where array_agg's int[] arrived as a list of a
# million ints (38 MB of the scheduler's peak resident set).
_FAST_DUE = text(
    "SELECT string_agg(int4send(member_id), '' ORDER BY member_id) FROM memberdue"
    " WHERE kind = 'reminder' AND at <= :now"
)
# a chunk's memberdue rows are locked first, then joined to their member and team: a row another
# scheduler holds is passed over (SKIP LOCKED) before any lookup, and one it advanced meanwhile no
# longer matches. Their ctids let the apply statement update them without an index lookup.
_FAST_PICK = """WITH d AS (
    SELECT d.member_id, d.at, d.ctid AS tid FROM memberdue d
    WHERE d.kind = 'reminder' AND d.member_id = ANY(CAST(:ids AS int[])) AND d.at <= :now{filters}
    FOR UPDATE SKIP LOCKED
)
SELECT m.id, COALESCE(m.timezone, t.timezone), COALESCE(m.reminder_time, t.reminder_time),
    COALESCE(m.reminder_days, t.workdays), d.at, m.active AND m.role <> 'observer', CAST(d.tid AS text)
FROM d JOIN member m ON m.id = d.member_id JOIN team t ON t.id = m.team_id"""
# members the fast path leaves to run_batch: a pause that may touch the due day or the next one,
# a team that nudges (the nudge time depends on each reminder's own instant)
_NO_PAUSE = (
    " AND NOT EXISTS (SELECT 1 FROM memberpause p"
    " WHERE p.member_id = d.member_id AND p.last_day >= :pause_since)"
)
_NO_NUDGE = (
    " AND NOT EXISTS (SELECT 1 FROM member n JOIN teamsettings o ON o.team_id = n.team_id"
    " WHERE n.id = d.member_id AND o.nudge_hours > 0)"
)
# one statement: the groups (member ids sharing a local day, that day's end, the next reminder
# and whether it fires) advance the members, whose RETURNING feeds the reminders' INSERT (the
# same row shape as checkin_row) and their creation events (outbox.pg_create_queued). The groups
# travel as jsonb, parsed once: json's operators read an element's whole text again at every
# -> and ->> (six times a group). A million-member tick on a stock cluster, two runs each,
# alternating: 51.5 and 53.9 s of the cluster's CPU with json, 42.7 and 46.8 s with jsonb
_FAST_APPLY = text(
    """WITH g AS (
        SELECT CAST(i AS int) AS id, CAST(tid AS tid) AS tid, e->>1 AS day,
            CAST(e->>2 AS timestamptz) AS expires, CAST(e->>3 AS timestamptz) AS next_at,
            CAST(e->>4 AS boolean) AS fire
        FROM jsonb_array_elements(CAST(:doc AS jsonb)) AS e,
            ROWS FROM (jsonb_array_elements_text(e->0), jsonb_array_elements_text(e->5)) AS x(i, tid)
    ), upd AS (
        UPDATE memberdue SET at = g.next_at FROM g
        WHERE memberdue.ctid = g.tid AND memberdue.member_id = g.id
        RETURNING g.id, g.day, g.expires, g.fire
    ), """
    + outbox.pg_create_queued(
        """SELECT 'reminder:' || u.id || ':' || u.day, 'reminder', m.team_id, u.id, m.email,
            CAST(:subject AS text), 'reminder',
            CASE WHEN o.tracking THEN '{"day": "' || u.day || '", "_track": true}'
                ELSE '{"day": "' || u.day || '"}' END,
            '<' || :nonce || '.r' || u.id || '@' || :domain || '>', u.expires
        FROM upd AS u JOIN member AS m ON m.id = u.id LEFT JOIN teamsettings AS o ON o.team_id = m.team_id
        WHERE u.fire"""
    )
)


def fast_filters(s: Session, *, now: datetime, settings: Settings) -> tuple[str, dict]:
    """The fast path's WHERE additions for this tick (only the checks some row can fail) and their
    parameters: members with a pause ending on or after ``pause_since`` and members of nudging teams
    are left to ``run_batch``. A reminder older than REMINDER_LATE_S is not sent, so a pause that
    ended two days before that cannot touch a day this tick fires or schedules."""
    pause_since = (now - timedelta(seconds=settings.reminder_late_s)).date() - timedelta(days=2)
    filters, params = "", {}
    if s.execute(select(MemberPause.id).where(MemberPause.last_day >= pause_since).limit(1)).first():
        filters += _NO_PAUSE
        params["pause_since"] = pause_since
    if s.execute(select(TeamSettings.team_id).where(TeamSettings.nudge_hours > 0).limit(1)).first():
        filters += _NO_NUDGE
    return filters, params


def fast_due_ids(s: Session, now: datetime) -> array:
    """The ids of the members whose reminder is due at ``now``, ascending, as a compact array (4
    bytes an id, never a Python int each)."""
    raw = s.connection().execute(_FAST_DUE, {"now": now}).scalar()
    ids = array("i", raw or b"")
    if sys.byteorder == "little":
        ids.byteswap()  # int4send is big-endian
    return ids


def _int_array(ids: Sequence[int]) -> str:
    """PostgreSQL's text form of an int[]: 0.21 ms for 2,000 ids here, where psycopg took 1.0 ms
    to dump them as a list (0.1 and 0.5 s of a million-member tick)."""
    return "{" + ",".join(map(str, ids)) + "}"


def run_fast_reminders(
    s: Session,
    *,
    now: datetime,
    settings: Settings,
    members: Sequence[int],
    filters: tuple[str, dict] = ("", {}),
) -> tuple[list[int], int]:
    """One chunk of the reminders' set-based path (PostgreSQL) in the caller's transaction: the
    ``members`` (ids fast_due_ids read) still due and not locked by another scheduler get their
    reminders; (ids of new outbox rows, members handled)."""
    conn = s.connection()
    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")  # as in run_batch
    where, params = filters
    rows = conn.execute(
        text(_FAST_PICK.format(filters=where)), {"ids": _int_array(members), "now": now, **params}
    ).all()
    if not rows:
        return [], 0
    late = timedelta(seconds=settings.reminder_late_s)
    groups: dict[tuple, tuple[list[int], list[str]]] = {}
    for mid, tz, at, days, due_at, asked, tid in rows:
        # the same rules as run_batch's REMINDER branch: fires when active, asked and not late;
        # the next one from now on (no pause here: fast_filters left those out)
        day = _local_day(due_at, tz)
        if asked:
            fire = now - due_at <= late
            key = (day, tz if fire else "", next_occurrence(now, at, days, tz), fire)
        else:
            key = (day, "", None, False)
        ids, tids = groups.setdefault(key, ([], []))
        ids.append(mid)
        tids.append(tid)
    doc = json.dumps(
        [
            [
                ids,
                day.isoformat(),
                _iso(_midnight(day, tz)) if fire else None,
                _iso(nxt) if nxt else None,
                fire,
                tids,
            ]
            for (day, tz, nxt, fire), (ids, tids) in groups.items()
        ]
    )
    params = {
        "doc": doc,
        "subject": REMINDER_SUBJECT,
        "nonce": uuid.uuid4().hex[:16],
        "domain": settings.mail_domain,
        "now": now,
        "lease_until": now + timedelta(seconds=settings.lease_s),
    }
    ids = conn.execute(_FAST_APPLY, params).scalars().all()  # fetchall: one call, not one a row
    return ids, len(rows)


class _Ticking:
    """This scheduler process's place among the schedulers ticking on the database at once
    (PostgreSQL), for as long as its tick runs: a shared advisory lock, held on a connection of
    its own, that each of them holds and counts.

    The batches at once of schedulers ticking together add up on the database, and a tick is
    mostly PostgreSQL's work: a second scheduler process (for failover) that ran its own
    SCHEDULE_WORKERS batches beside the first one's made the cluster slower, not the tick faster.
    So each process runs SCHEDULE_WORKERS // (schedulers ticking) of its threads' batches (at
    least one), counted again before each batch: one that starts or ends its tick meanwhile
    changes the others' share from their next batch on."""

    def __init__(self, workers: int):
        self.workers = workers
        self.conn = get_engine().connect()
        self.conn.exec_driver_sql(f"SELECT pg_advisory_lock_shared({TICKING_LOCK}, 0)")
        self.conn.commit()  # a session's advisory lock outlives the transaction that took it

    def allows(self, s: Session, thread: int) -> bool:
        """Whether the ``thread``-th (from 0) of the process's threads runs its next batch, in the
        batch's session ``s``: the first always does."""
        if thread == 0:
            return True
        ticking = s.connection().execute(_TICKING_NOW).scalar_one()
        return thread < max(1, self.workers // max(1, ticking))

    def close(self) -> None:
        try:
            self.conn.exec_driver_sql(f"SELECT pg_advisory_unlock_shared({TICKING_LOCK}, 0)")
            self.conn.commit()
        except Exception:  # noqa: BLE001 - a connection thrown away gives its locks up with it
            self.conn.invalidate()
        finally:
            self.conn.close()


class _Chunks:
    """The chunks of a tick's due ids (``size`` ids each, in order), handed out to a process's
    worker threads, one at a time and each once.

    Schedulers in other processes read the same ids and walk the same chunks: a chunk one of
    them already did costs the other an index scan and makes nothing. So each process starts at
    a chunk chosen at random and goes on in order, and when a chunk turns out to have been done
    elsewhere (``elsewhere``), it jumps to the middle of the longest run of chunks it has not
    taken: two schedulers then split what is left instead of trailing each other."""

    def __init__(self, ids: array, size: int):
        self.ids, self.size = ids, size
        self.left = list(range((len(ids) + size - 1) // size))  # chunk numbers not handed out, ascending
        self.at = random.randrange(len(self.left)) if self.left else 0  # position in left
        self.lock = threading.Lock()

    def take(self, elsewhere: bool = False) -> array | None:
        """The next chunk's ids, or None when every chunk was handed out."""
        with self.lock:
            if not self.left:
                return None
            if elsewhere:
                self.at = self._middle_of_longest_run()
            if self.at >= len(self.left):
                self.at = 0
            start = self.left.pop(self.at) * self.size  # the next one moves into self.at
            return self.ids[start : start + self.size]

    def _middle_of_longest_run(self) -> int:
        left, best, best_len, start = self.left, 0, 0, 0
        for j in range(1, len(left) + 1):
            if j == len(left) or left[j] != left[j - 1] + 1:
                if j - start > best_len:
                    best, best_len = start, j - start
                start = j
        return best + best_len // 2


def run(
    *,
    now: datetime,
    settings: Settings,
    enqueue: Callable[[list[int]], None],
    batch: int | None = None,
    max_batches: int = 100_000,
    workers: int | None = None,
    fast_path: bool = True,
) -> array:
    """Create everything due at ``now``, batch after batch, each committed then enqueued; the new
    rows' ids, in a compact array (8 bytes an id: as a list of ints a million took 38 MB).

    On PostgreSQL ``workers`` threads (``SCHEDULE_WORKERS``) run batches at once, each on its own
    connection: SKIP LOCKED gives them disjoint members, and one thread's Python work overlaps
    another's wait on the server. SQLite has a single writer, so one thread runs there.
    ``fast_path`` False keeps PostgreSQL's reminders on run_batch too (tests compare the two).
    """
    batch = batch or settings.schedule_batch
    with session() as s:
        any_pauses = _any_pauses(s, now)
        dialect = s.get_bind().dialect.name
    if dialect != "postgresql":
        workers = 1
    workers = max(1, workers or settings.schedule_workers)
    teams: dict[int, Team] = {}
    created = array("q")

    fast = dialect == "postgresql" and fast_path
    if fast:
        with session() as s:
            filters = fast_filters(s, now=now, settings=settings)

    def drain_fast(thread: int, chunks: _Chunks) -> None:
        elsewhere = False
        while True:
            with session() as s:
                if ticking and not ticking.allows(s, thread):
                    return
                if (members := chunks.take(elsewhere)) is None:
                    return
                ids, handled = run_fast_reminders(
                    s, now=now, settings=settings, members=members, filters=filters
                )
            if ids:
                enqueue(ids)
                created.extend(ids)
            elsewhere = handled == 0  # every member done, or held, by another scheduler

    def drain(thread: int, kind: Kind) -> None:
        # Each batch moves its members' next time past now, so the next batch can start at the
        # last due time it took: on PostgreSQL the index entries before it point at row versions
        # this tick made dead, and scanning them again from the start made a tick of N members
        # cost O(N^2) index reads. A row another batch skipped because it was locked (SKIP LOCKED)
        # and that batch then rolled back stays due: the next tick takes it.
        since = None
        for _ in range(max_batches):
            with session() as s:
                if ticking and not ticking.allows(s, thread):
                    return
                ids, handled, since = run_batch(
                    s,
                    kind,
                    now=now,
                    settings=settings,
                    batch=batch,
                    teams=teams,
                    any_pauses=any_pauses,
                    since=since,
                )
            if ids:
                enqueue(ids)
                created.extend(ids)
            if handled < batch:
                return

    def each(work, *args) -> None:
        if workers == 1:
            work(0, *args)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="due") as pool:
            for f in [pool.submit(work, thread, *args) for thread in range(workers)]:
                f.result()

    ticking = _Ticking(workers) if dialect == "postgresql" else None
    try:
        for kind in KINDS:
            if kind is REMINDER and fast:
                with session() as s:
                    members = fast_due_ids(s, now)
                each(drain_fast, _Chunks(members, batch))
                if not filters[0]:  # it left nobody out: a row still due was locked (the next tick takes it)
                    continue
                # run_batch takes what it left due (pauses, nudging teams); its first batch walks the
                # index entries of the rows the fast path advanced (dead now) once
            each(drain, kind)
    finally:
        if ticking:
            ticking.close()
        for cached in (_local_day, _midnight, _iso):
            cached.cache_clear()
        forget_instants()
    return created
