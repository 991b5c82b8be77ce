"""Processing stored inbound mail into entries: the body of the process_inbound jobs.

Parse (the provider's adapter on the stored payload, or the raw MIME), apply bounce,
complaint and unsubscribe reports, identify the member, extract the reply and hand the
entries to the check-in domain. Inbound ``state`` is written only here:

    received -> processing (claimed: attempts + 1, a lease) -> processed | ignored | unverified | failed
    processing -> received (its job ran out of time or crashed, or its lease expired: tried again, alone)
    processing -> quarantined (INBOUND_MAX_ATTEMPTS claims never finished: not tried again by itself)
    processed | ignored | unverified | failed | quarantined -> received (reprocess by hand: attempts reset)
    processing -> received (its content, kept in S3 by the provider, could not be fetched: retried at
                  lease_until) | failed (could not be fetched, and no retry will fix it)

The expensive work (parsing, reply extraction) runs outside any transaction, between short
ones: claim, look up senders and apply reports, write outcomes. An outcome is written only
while the claim is still the worker's own (compare-and-set on state and attempts), so a worker
that lost its lease cannot overwrite another's result.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from sqlalchemy import Integer, and_, bindparam, delete, func, or_, select, update
from sqlmodel import Session

from app import logs
from app.checkins import away, comments, entries, goals
from app.checkins import questions as asked
from app.checkins.outgoing import ReminderTexts
from app.checkins.reply_tokens import token_from_address
from app.checkins.times import local_date
from app.db import in_list, pg_update_rows
from app.errors import FetchError, TransientFetchError
from app.inbound import s3
from app.inbound.accept import text
from app.inbound.identify import Senders, find_senders, identify, identify_digest, is_auto_reply, is_automatic
from app.metrics import families as metrics
from app.models import Entry, InboundMessage
from app.relay import feedback, tracking, webhooks
from app.settings import Settings
from parsers.away import return_date
from parsers.dsn import parse_report
from parsers.goals import GoalMarks, goal_marks
from parsers.message import InboundEmail, parse_mime
from parsers.providers import PROVIDERS, Payload, S3Object
from parsers.reply import Reply, extract_reply

log = logging.getLogger("donebox.inbound")
FINAL = ("processed", "ignored", "unverified", "failed", "quarantined")  # what reprocessing starts again
QUARANTINED_NOTE = "not parsed: quarantined (its processing never finished); reprocess it by hand"
SWEEP_LIMIT = 1000  # rows the sweeper takes per tick and kind


def _set_state(s: Session, inbound_id: int, state: str, expected: tuple[str, ...], **values) -> bool:
    table = InboundMessage.__table__
    res = s.connection().execute(  # core, not ORM: the compare-and-set is all we need
        update(table)
        .where(table.c.id == inbound_id, table.c.state.in_(expected))
        .values(state=state, **values)
    )
    return res.rowcount == 1


class Raced(Exception):
    """Raised when a claim checked under lock changed before its outcome was written (it cannot)."""


def _set_states(s: Session, changes: list[dict]) -> None:
    """Move claimed rows from processing to their new state: one UPDATE per set of columns, each
    row's a compare-and-set on its claim (state and attempts). PostgreSQL: one statement of all
    the set's rows (app.db.pg_update_rows); elsewhere an executemany."""
    table = InboundMessage.__table__
    groups: dict[tuple[str, ...], list[dict]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    conn = s.connection()
    for columns, rows in groups.items():
        if conn.dialect.name == "postgresql":
            moved = pg_update_rows(conn, table, rows, keys=("id", "attempts"), where="t.state = 'processing'")
            if moved.rowcount != len(rows):
                raise Raced([row["id"] for row in rows])
            continue
        stmt = (
            update(table)
            .where(
                table.c.id == bindparam("b_id"),
                table.c.state == "processing",
                table.c.attempts == bindparam("b_attempts"),
            )
            .values({c: bindparam(f"b_{c}") for c in columns if c not in ("id", "attempts")})
        )
        params = [{f"b_{c}": row[c] for c in columns} for row in rows]
        if conn.execute(stmt, params).rowcount != len(rows):
            raise Raced([row["id"] for row in rows])


def processing_lease(settings: Settings) -> timedelta:
    """How long a claim holds: the job's time limit plus LEASE_S, so a live job is never swept."""
    return timedelta(seconds=settings.inbound_job_time_limit_s + settings.lease_s)


@cache
def _claim_statement(top_up: bool):
    """The claim's UPDATE (see ``claim``), built once: building it anew for each job took 0.5 ms,
    most of the cost of a job whose messages another job had taken along."""
    t = InboundMessage.__table__
    free = select(t.c.id).where(in_list(t.c.id, "ids"), t.c.state == "received")
    if top_up:  # each part its own locking CTE, so both are ranges of (state, id), then the key
        after = (
            select(t.c.id)
            .where(t.c.state == "received", t.c.id > bindparam("after"), t.c.attempts == 0)
            .order_by(t.c.id)
            .limit(bindparam("more", type_=Integer()))
        )
        own, others = (q.with_for_update(skip_locked=True).cte() for q in (free, after))
        free = select(own.c.id).union_all(select(others.c.id))
    else:
        free = free.with_for_update(skip_locked=True)
    return (
        update(t)
        .where(t.c.id.in_(free), t.c.state == "received")
        .values(state="processing", attempts=t.c.attempts + 1, lease_until=bindparam("lease_until"))
        .returning(
            t.c.id,
            t.c.provider,
            t.c.raw,
            t.c.payload,
            t.c.payload_type,
            t.c.attempts,
            t.c.message_key,
            t.c.fingerprint,
            t.c.received_at,
        )  # fmt: skip
    )


def claim(s: Session, inbound_ids: list[int], *, now: datetime, settings: Settings, top_up: int = 0) -> list:
    """Claim the received messages among ``inbound_ids`` in one statement: processing, attempts
    + 1, a lease; rows claimed by another worker are skipped (SKIP LOCKED on PostgreSQL, the
    compare-and-set on state everywhere). The claimed rows with what parsing needs, by id.

    ``top_up``: also claim the first never-tried received messages after the highest of
    ``inbound_ids``, so that the batch holds ``top_up`` messages (a backlog's next ones, whose
    own jobs then find them taken and finish at once): a worker's batches stay large however
    small the groups intake enqueued. A message tried before (attempts > 0) is never taken
    along: it goes alone."""
    more = top_up - len(inbound_ids)
    params = {"ids": list(inbound_ids), "lease_until": now + processing_lease(settings)}
    if more > 0:
        params.update(after=max(inbound_ids), more=more)
        if s.get_bind().dialect.name == "postgresql":
            # statistics lag a backlog as it builds up: estimating a few received rows, the planner
            # took a bitmap scan of them all and sorted it (8.0 ms with 11,757 received; 0.1 ms so)
            s.connection().exec_driver_sql("SET LOCAL enable_bitmapscan = off")
    found = s.connection().execute(_claim_statement(more > 0), params)
    return sorted(found.all(), key=lambda row: row.id)


@cache
def _held_statement():
    t = InboundMessage.__table__
    return (
        select(t.c.id, t.c.state, t.c.attempts)
        .where(in_list(t.c.id, "ids"))
        .with_for_update()  # SQLite: the session's BEGIN IMMEDIATE already holds the write lock
    )


@cache
def _states_statement():
    t = InboundMessage.__table__
    return select(t.c.id, t.c.state).where(in_list(t.c.id, "ids"))


def _held(s: Session, claimed: list) -> dict[int, str]:
    """The claimed rows still held by this claim (locked until commit), and the state of the rest."""
    statement = _held_statement()
    found = s.connection().execute(statement, {"ids": [row.id for row in claimed]})
    mine = {row.id: row.attempts for row in claimed}
    return {
        row.id: "mine" if row.state == "processing" and row.attempts == mine[row.id] else row.state
        for row in found
    }


class Copy(NamedTuple):
    """An earlier message with a claimed row's Message-ID and envelope recipient."""

    first: int  # the first message stored with them
    same: int | None  # the first with the same content too: this row is a second delivery of it

    def note(self) -> str:
        """What the row's notes say about it."""
        if self.same is not None:
            return f"same Message-ID and content as inbound message {self.same}: a second delivery"
        return f"same Message-ID as inbound message {self.first}, different content"


@cache
def _copies_statement():
    t = InboundMessage.__table__
    return (
        select(t.c.message_key, t.c.fingerprint, func.min(t.c.id))
        .where(in_list(t.c.message_key, "keys"))
        .group_by(t.c.message_key, t.c.fingerprint)
    )


def earlier_copies(s: Session, rows: list) -> dict[int, Copy]:
    """The claimed rows whose Message-ID and envelope recipient (``message_key``) an earlier
    message has, by id; one indexed query for the batch. A row whose fingerprint is unknown (''
    before migration 0012) is never a second delivery."""
    wanted = {row.message_key for row in rows if row.message_key}
    if not wanted:
        return {}
    statement = _copies_statement()
    firsts: dict[tuple[str, str], int] = {
        (key, fp): first for key, fp, first in s.connection().execute(statement, {"keys": sorted(wanted)})
    }
    oldest: dict[str, int] = {}  # the first of each message_key, whatever its content
    for (key, _), first in firsts.items():
        oldest[key] = min(first, oldest.get(key, first))
    out = {}
    for row in rows:
        if row.message_key and oldest[row.message_key] < row.id:
            same = firsts.get((row.message_key, row.fingerprint)) if row.fingerprint else None
            out[row.id] = Copy(oldest[row.message_key], same if same is not None and same < row.id else None)
    return out


def unsubscribe_request(s: Session, email: InboundEmail, settings: Settings, now: datetime) -> str:
    """Mail to ``unsubscribe+<token>@`` (the mailto of our List-Unsubscribe header): suppress the
    recipient of the token's message, as the https link does; what happened, or '' for other mail."""
    for addr in (*email.envelope_to, *email.to, *email.cc):
        token = token_from_address(addr, settings.reply_domain, "unsubscribe")
        if token is None:
            continue
        message_id = tracking.verify_mailto_token(settings.secret_key, token)
        if message_id is None:
            return f"unsubscribe request to {addr[:200]}: its token does not verify (nothing changed)"
        agent = f"mail from {email.from_addr}"[:200]
        who = tracking.unsubscribe(s, message_id, now=now, user_agent=agent, via="mailto")
        if who is None:
            return f"unsubscribe request for message {message_id}, which does not exist"
        return f"unsubscribe request (List-Unsubscribe mailto): {who} is suppressed"
    return ""


class Reminders:
    """The lines of the reminders a batch's replies quote, per member and day."""

    def __init__(self, settings: Settings):
        self.texts = ReminderTexts(settings)
        self._lines: dict[tuple, tuple[str, ...]] = {}

    def lines(self, member, team, day, questions: tuple[str, ...]) -> tuple[str, ...]:
        """The lines of ``member``'s reminder of ``day`` that a quote of it holds."""
        if (member.id, day) not in self._lines:
            self._lines[member.id, day] = tuple(
                line
                for line in self.texts(member, team, day, questions=questions).splitlines()
                # the questions are headings people keep in their answers: not where a quote begins
                if line.strip() and (len(questions) == 1 or not any(q in line for q in questions))
            )
        return self._lines[member.id, day]


def _outcome(
    email: InboundEmail,
    senders: Senders,
    settings: Settings,
    now: datetime,
    reminders: Reminders,
    report: str = "",
):
    """(state, row values, entry drafts and their member/team/day) of one parsed message;
    ``report`` says what a bounce or complaint report in it was (applied by app.relay.feedback)."""
    base = {
        "processed_at": now,
        "message_id": text(email.message_id)[:1000],
        "from_addr": text(email.from_addr)[:320],
        "subject": text(email.subject),
        "notes": text("\n".join(email.notes))[:4000],
    }
    if not email.headers and not email.from_addr:
        why = "; ".join(email.notes) or "the payload holds no message"
        return "failed", {**base, "error": text(why)[:4000]}, None
    why = report or is_automatic(email)
    if why and (report or not is_auto_reply(why)):
        return "ignored", {**base, "error": text(why)[:4000]}, None
    if why:  # an out-of-office answering a reminder: a pause when it says when they are back
        return _auto_reply(email, senders, settings, now, why, base)
    digest = identify_digest(email, senders, settings, now=now)
    if digest is not None:  # a reply to a digest: a comment, no entries
        return _digest_reply(email, digest, base)
    member, team, day, how = identify(email, senders, settings, now=now)
    if member is None:
        return "unverified", {**base, "error": text(how)[:4000]}, None
    day = day or local_date(now, member.timezone or team.timezone)
    questions = asked.of_text(senders.questions.get(team.id, ""))
    # our own reminder is known text: where the quote holds it, the cut is certain
    reply = extract_reply(email, known_quotes=reminders.lines(member, team, day, questions))
    # goals are listed (and closed by number) only where a question asks for them
    drafts, notes, marked = reply_drafts(reply.text, questions)
    notes = [base["notes"], *notes]
    values = {
        **base,
        "member_id": member.id,
        "day": day,
        "error": "",
        "reply_text": text(reply.text),
        "quoted_text": text(reply.quoted),
        "signature_text": text(reply.signature),
        "notes": text("\n".join(n for n in notes if n))[:4000],
        **cut_values(reply),
    }
    return "processed", values, (member, team, day, drafts, marked)


def cut_values(reply: Reply) -> dict:
    """The row values that keep where ``reply`` was cut: its lines (JSON), whether they are the HTML
    part's, the first line not kept, the rule and its confidence (app.inbound.corrections moves it)."""
    return {
        "reply_lines": text(json.dumps(list(reply.lines), ensure_ascii=False)),
        "reply_html": reply.from_html,
        "cut_at": reply.cut_at,
        "cut_rule": text(reply.rule)[:64],
        "cut_confidence": text(reply.confidence)[:8],
    }


def reply_drafts(reply_text: str, questions: tuple[str, ...]):
    """(entry drafts, notes, goal marks) of a reply's text for a team asking ``questions``: goals
    closed by number where a question carries goals, then the answers mapped to the questions."""
    carries = asked.goal_question(questions) is not None
    marks = goal_marks(reply_text, goals.MAX_LISTED) if carries else GoalMarks((), reply_text)
    drafts, notes = asked.drafts(marks.text, questions)
    return drafts, [*notes, *marks.notes], marks.marks


class Away(NamedTuple):
    """An auto-reply's pause for the write step (app.checkins.away)."""

    member: object
    team: object
    span: tuple


def _auto_reply(
    email: InboundEmail, senders: Senders, settings: Settings, now: datetime, why: str, base: dict
):
    """``ignored`` (it is no entry), with what it said about its writer's return: the pause to
    make when it names a member of ours and a day they are back (parsers.away), else a note."""
    member, team, _day, how = identify(email, senders, settings, now=now)
    if member is None:
        return "ignored", {**base, "error": text(f"{why}; no pause: {how}")[:4000]}, None
    today = local_date(now, member.timezone or team.timezone)
    said = "\n".join((email.subject, extract_reply(email).text))
    hints = tuple(h.strip() for h in email.header("Content-Language").split(",") if h.strip())
    span = away.planned(member, team, return_date(said, today, hints), now)
    values = {**base, "member_id": member.id, "error": text(f"{why}; {away.note(span)}")[:4000]}
    return "ignored", values, (Away(member, team, span) if span else None)


class DigestReply(NamedTuple):
    """A reply to a digest for the write step (app.checkins.comments)."""

    member: object
    team: object
    day: object
    body: str
    text: str


# lines of our digest a reply may quote without quote marks (templates/email/digest.txt)
DIGEST_QUOTES = ("Reply to this email to comment: quote an entry to comment on it, or name a teammate.",)


def _digest_reply(email: InboundEmail, found: tuple, base: dict):
    """``processed`` with the reply's text kept apart from the quoted digest (parsers.reply), and
    the comment to make; ``unverified`` when its digest+ address is bad or stale."""
    member, team, day, how = found
    if member is None:
        return "unverified", {**base, "error": text(how)[:4000]}, None
    reply = extract_reply(email, known_quotes=DIGEST_QUOTES)
    note = f"a reply to the digest of {day.isoformat()} ({how}): a comment"
    values = {
        **base,
        "member_id": member.id,
        "day": day,
        "error": "",
        "notes": text("\n".join(n for n in (base["notes"], note) if n))[:4000],
        "reply_text": text(reply.text),
        "quoted_text": text(reply.quoted),
        "signature_text": text(reply.signature),
    }
    return "processed", values, DigestReply(member, team, day, email.text or "", reply.text)


def process_many(
    s: Session,
    inbound_ids: list[int],
    *,
    now: datetime,
    settings: Settings,
    created_mail: list[int] | None = None,
    top_up: int = 0,
    taken: list[int] | None = None,
) -> dict[int, str]:
    """Turn received messages into entries; their new states by id (idempotent). Commits ``s``
    between its steps; the caller's commit ends the last one. Mail it queued (an auto-reply's
    pause notice, a comment's notice) is appended to ``created_mail``, for the caller to enqueue
    after that commit (unenqueued, the sweeper finds it after LEASE_S). ``top_up``: as ``claim``'s;
    the ids claimed are appended to ``taken`` once committed (for the caller to give back when
    the call fails), and the states returned include those taken along.

    1. claim the received rows (one statement) and commit: the lease is the lock;
    2. parse each message, and any bounce or complaint report in it, outside any transaction;
    3. look up the senders (at most three queries) and apply the reports, and commit;
    4. identify and extract each reply (``_outcome``), outside any transaction;
    5. check the claims are still ours (one query, locking the rows), then write the new states
       (one UPDATE per outcome, compare-and-set on the claim) and the entries (one INSERT).

    A message whose parsing or extraction raises is stored ``failed`` with the reason and the
    others go on; a database error, or the job's time limit, fails the whole call (the claims
    stay, for ``retry_or_quarantine`` or the sweeper). A claim lost meanwhile (the lease ran
    out and another worker claimed the row) writes nothing: its row's state is returned.
    """
    started = time.perf_counter()
    wanted = sorted(set(inbound_ids))
    states = dict.fromkeys(wanted, "missing")
    claimed = claim(s, wanted, now=now, settings=settings, top_up=top_up)
    others = set(wanted) - {row.id for row in claimed}
    if others:
        statement = _states_statement()
        states.update(s.connection().execute(statement, {"ids": sorted(others)}).all())
    s.commit()
    if taken is not None:
        taken.extend(row.id for row in claimed)
    if not claimed:
        return states
    attempts = {row.id: row.attempts for row in claimed}
    parsed: list[tuple[int, InboundEmail, object]] = []
    changes: list[dict] = []
    fetched: dict[int, bytes] = {}  # content fetched from where the provider kept it: stored as raw
    for row in claimed:
        with logs.bound(inbound_id=row.id):
            try:
                raw = row.raw or b""
                where = stored_elsewhere(row)
                if where is not None:
                    try:
                        raw = fetched[row.id] = s3.fetch(where, settings)
                    except FetchError as e:
                        changes.append(_unfetched(row, load_email(row), e, now=now, settings=settings))
                        continue
                email = load_email(row, raw)
                parsed.append((row.id, email, parse_report(email, raw)))
            except Exception as e:  # noqa: BLE001 - recorded on the row for `donebox inbound reprocess`
                log.exception("inbound %s failed", row.id)
                changes.append({"id": row.id, "state": "failed", "error": _why(e), "processed_at": now})
    senders = find_senders(s, [email for _, email, _ in parsed], settings) if parsed else None
    copies = earlier_copies(s, claimed)
    reports: dict[int, str] = {}
    for iid, email, report in parsed:
        with logs.bound(inbound_id=iid):
            copy = copies.get(iid)
            if copy is not None and copy.same is not None:  # the mail again: no reports, no entries twice
                changes.append({"id": iid, "state": "ignored", **_copy_values(email, copy, now)})
                continue
            try:
                # List-Unsubscribe mailto requests, and bounces and complaints about our mail (which
                # move it and suppress the address), make no entries; applying them twice adds nothing
                reports[iid] = unsubscribe_request(s, email, settings, now) or feedback.apply_report(
                    s,
                    report,
                    ref=f"inbound:{iid}",
                    now=now,
                    to=(*email.envelope_to, *email.to),  # a bounce to our VERP return path names its message
                    secret=settings.secret_key,
                )
            except Exception as e:  # noqa: BLE001 - as above
                log.exception("inbound %s failed", iid)
                changes.append({"id": iid, "state": "failed", "error": _why(e), "processed_at": now})
    s.commit()
    reminders = Reminders(settings)
    replies: list[entries.Reply] = []
    received: dict[int, tuple[int, dict]] = {}  # {inbound id: (team id, its inbound_received data)}
    later: list[tuple[int, Away | DigestReply]] = []  # pauses and comments, made after the entries
    marks: list = []  # (inbound id, member id, day, ((goal number, action), ...)) of replies closing goals
    for iid, email, _ in parsed:
        with logs.bound(inbound_id=iid):
            if iid not in reports:
                continue
            try:
                state, values, made = _outcome(email, senders, settings, now, reminders, reports[iid])
            except Exception as e:  # noqa: BLE001 - as above
                log.exception("inbound %s failed", iid)
                state, values, made = "failed", {"error": _why(e), "processed_at": now}, None
            if iid in copies:  # a reused Message-ID with other content: another mail, processed as any
                values["same_message_id_as"] = copies[iid].first
                values["notes"] = text(
                    "\n".join(n for n in (copies[iid].note(), values.get("notes", "")) if n)
                )[:4000]
            changes.append({"id": iid, "state": state, **values})
            if isinstance(made, (Away, DigestReply)):
                later.append((iid, made))
            elif made is not None:
                member, team, day, drafts, marked = made
                replies.append(entries.Reply(team.id, member.id, day, iid, drafts))
                received[iid] = (team.id, _received(iid, member, day, values, len(drafts)))
                if marked:
                    marks.append((iid, member.id, day, marked))
    held = _held(s, claimed)
    for iid in attempts:
        states[iid] = held.get(iid, "missing")
    lost = {iid for iid in attempts if held.get(iid) != "mine"}
    if lost:
        log.warning("inbound %s: the claim ran out and the row moved on; nothing written", sorted(lost))
    changes = [
        {**c, "attempts": attempts[c["id"]], **({"raw": fetched[c["id"]]} if c["id"] in fetched else {})}
        for c in changes
        if c["id"] not in lost
    ]
    _set_states(s, changes)
    arrived = {row.id: row.received_at for row in claimed}
    metrics.processed(
        [c["state"] for c in changes],
        [(now - arrived[c["id"]]).total_seconds() for c in changes if c["state"] != "received"],
        time.perf_counter() - started,
    )
    kept = [r for r in replies if r.inbound_id not in lost]
    # one lookup of the endpoints that want these events; nothing is written for teams with none
    to = webhooks.listening(s, (r.team_id for r in kept), ("inbound_received", "entry_created"))
    owed = [received[r.inbound_id] for r in kept]
    webhooks.emit(s, "inbound_received", owed, now=now, to=to["inbound_received"])
    entries.add_many(s, kept, now=now, settings=settings, listening=to["entry_created"])
    noted = goals.apply_marks(s, [m for m in marks if m[0] not in lost], now=now)
    entries.add_notes(s, noted)
    for iid, a in later:
        if iid in lost:
            continue
        if isinstance(a, Away):
            mail = away.pause_for_auto_reply(
                s, a.member, a.team, a.span, inbound_id=iid, now=now, settings=settings
            )
        else:
            _, mail = comments.add_from_reply(
                s,
                a.member,
                a.team,
                a.day,
                body=a.body,
                reply=a.text,
                inbound_id=iid,
                now=now,
                settings=settings,
            )
        if mail is not None and created_mail is not None:
            created_mail.append(mail)
    states.update((c["id"], c["state"]) for c in changes)
    return states


def _received(iid: int, member, day, values: dict, drafts: int) -> dict:
    """What an inbound_received webhook says of a processed reply."""
    inbound = {
        "id": iid,
        "from": values.get("from_addr", ""),
        "subject": values.get("subject", ""),
        "message_id": values.get("message_id", ""),
        "member": {"id": member.id, "email": member.email, "name": member.name},
        "day": day.isoformat(),
        "entries": drafts,
    }
    return {"inbound": inbound}


def stored_elsewhere(row) -> S3Object | None:
    """Where the provider kept the content of a stored message whose payload carries only a
    summary and whose raw is still empty (an SES S3 action's mail not fetched yet); else None."""
    provider = PROVIDERS.get(row.provider)
    if row.raw or row.payload is None or provider is None:
        return None
    return provider.s3_object(Payload(row.payload, row.payload_type))


def _unfetched(row, email: InboundEmail, e: FetchError, *, now: datetime, settings: Settings) -> dict:
    """The change for a claimed message whose content could not be fetched: its summary's From,
    subject and Message-ID and the error; back to received, due again after a wait that grows
    with each attempt, while the fault is transient and attempts remain; else failed. No
    entries: a summary holds no reply."""
    base = {
        "id": row.id,
        "message_id": text(email.message_id)[:1000],
        "from_addr": text(email.from_addr)[:320],
        "subject": text(email.subject),
        "notes": text("\n".join(email.notes))[:4000],
        "processed_at": now,
    }
    tries = f"attempt {row.attempts} of {settings.inbound_max_attempts}"
    if isinstance(e, TransientFetchError) and row.attempts < settings.inbound_max_attempts:
        wait_s = settings.lease_s * row.attempts
        log.warning("inbound %s: %s; trying again in %s s", row.id, e, wait_s)
        return {
            **base,
            "state": "received",
            "lease_until": now + timedelta(seconds=wait_s),  # the sweeper enqueues it then
            "error": text(f"{e} ({tries}; trying again in {wait_s} s)")[:4000],
        }
    log.warning("inbound %s: %s", row.id, e)
    gave_up = f" ({tries}: given up)" if isinstance(e, TransientFetchError) else ""
    return {**base, "state": "failed", "error": text(f"{e}{gave_up}")[:4000]}


def _copy_values(email: InboundEmail, copy: Copy, now: datetime) -> dict:
    """The row values of a second delivery (``ignored``): what it is, and which message it repeats."""
    return {
        "processed_at": now,
        "message_id": text(email.message_id)[:1000],
        "from_addr": text(email.from_addr)[:320],
        "subject": text(email.subject),
        "notes": text("\n".join((copy.note(), *email.notes)))[:4000],
        "error": copy.note(),
        "same_message_id_as": copy.first,
    }


def _why(e: BaseException) -> str:
    return text(f"{type(e).__name__}: {e}")[:4000]


def process(s: Session, inbound_id: int, *, now: datetime, settings: Settings) -> str:
    """Turn one received message into entries; returns its new state (idempotent)."""
    return process_many(s, [inbound_id], now=now, settings=settings)[inbound_id]


def retry_or_quarantine(
    s: Session, inbound_ids: list[int], why: str, *, now: datetime, settings: Settings, alone: bool
) -> list[int]:
    """After a job on ``inbound_ids`` ran out of time or crashed: its messages still processing
    go back to received, to be tried again each on its own; a message that was ``alone`` in its
    job and has had INBOUND_MAX_ATTEMPTS claims is quarantined with ``why`` instead. Returns the
    ids to enqueue again, one job each: every unfinished one after a batch (so the one that
    blows up fails alone), and after a single job only a claimed one (each retry is a new
    claim, so this ends at the quarantine)."""
    t = InboundMessage.__table__
    c = s.connection()
    # a row another job claimed meanwhile (a duplicate broker message) is taken back too: that
    # job's outcome then finds the claim gone and writes nothing, and the retry does the work
    mine = and_(t.c.id.in_(inbound_ids), t.c.state == "processing")
    if alone:
        _quarantine_spent(c, mine, why, now=now, settings=settings)
    back = (
        update(t).where(mine).values(state="received", lease_until=now + timedelta(seconds=settings.lease_s))
    )
    moved = [row.id for row in c.execute(back.returning(t.c.id))]
    if alone:
        return sorted(moved)
    still = c.execute(select(t.c.id).where(t.c.id.in_(inbound_ids), t.c.state == "received")).scalars()
    return sorted(still)


def _quarantine_spent(c, rows, why: str, *, now: datetime, settings: Settings) -> None:
    """Quarantine those of ``rows`` that have had their INBOUND_MAX_ATTEMPTS claims, with ``why``."""
    t = InboundMessage.__table__
    c.execute(
        update(t)
        .where(rows, t.c.attempts >= settings.inbound_max_attempts)
        .values(
            state="quarantined",
            lease_until=None,
            processed_at=now,
            error=text(f"quarantined after {settings.inbound_max_attempts} attempts: {why}")[:4000],
        )
    )


def sweep(s: Session, *, now: datetime, settings: Settings) -> tuple[list[int], list[int]]:
    """Repair what lost broker messages and dead workers left: (fresh ids, ids tried before).

    - processing past its lease (the worker died or hung): quarantined after INBOUND_MAX_ATTEMPTS
      claims, else back to received;
    - received and not claimed within LEASE_S of arriving, or of being enqueued again: enqueued
      again, its ``lease_until`` moved on so the next tick does not enqueue it once more.
    Rows tried before are returned apart: they go one per job, so a poisoned one fails alone.
    """
    t = InboundMessage.__table__
    c = s.connection()
    lease_s = timedelta(seconds=settings.lease_s)
    expired = select(t.c.id).where(t.c.state == "processing", t.c.lease_until < now).limit(SWEEP_LIMIT)
    ids = list(c.execute(expired).scalars())
    if ids:
        stale = and_(t.c.id.in_(ids), t.c.state == "processing", t.c.lease_until < now)
        why = "the worker did not finish within its lease (it died, or hung where it cannot be interrupted)"
        _quarantine_spent(c, stale, why, now=now, settings=settings)
        c.execute(update(t).where(stale).values(state="received", lease_until=now))
    due = or_(t.c.lease_until <= now, and_(t.c.lease_until.is_(None), t.c.received_at < now - lease_s))
    rows = c.execute(
        select(t.c.id, t.c.attempts).where(t.c.state == "received", due).order_by(t.c.id).limit(SWEEP_LIMIT)
    ).all()
    if rows:
        c.execute(update(t).where(t.c.id.in_([r.id for r in rows])).values(lease_until=now + lease_s))
    return [r.id for r in rows if not r.attempts], [r.id for r in rows if r.attempts]


def quarantined(s: Session) -> int:
    """How many messages are quarantined (for /healthz and the inbound page)."""
    t = InboundMessage.__table__
    return s.connection().execute(select(func.count()).where(t.c.state == "quarantined")).scalar_one()


def reset_for_reprocess(s: Session, inbound_ids: list[int]) -> list[int]:
    """Put finished or quarantined messages back to received with no attempts, dropping the
    entries they made; the ids that moved."""
    moved = []
    comments.forget(s, inbound_ids)
    for iid in inbound_ids:
        s.execute(delete(Entry).where(Entry.inbound_id == iid))
        if _set_state(s, iid, "received", FINAL, error="", attempts=0, lease_until=None):
            moved.append(iid)
    return moved


def load_email(row, raw: bytes | None = None) -> InboundEmail:
    """The normalized email of a stored message (an InboundMessage or a row with its provider,
    payload, payload_type and raw): its provider's adapter on the stored payload (and the raw
    beside it), or the raw MIME. ``raw``: instead of the row's (content fetched just now)."""
    raw = row.raw if raw is None else raw
    provider = PROVIDERS.get(row.provider)
    if row.payload is not None and provider is not None:
        return provider.parse_stored(Payload(row.payload, row.payload_type), raw or b"")
    if provider is not None and not provider.stores_payload:  # raw, imap: the payload is the message
        return provider.parse(Payload(raw, "message/rfc822"))
    return parse_mime(raw, provider=row.provider)
