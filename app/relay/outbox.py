"""The outbound state machine: the one module that writes ``OutboundMessage.state``.

Every change is a compare-and-set (``UPDATE ... WHERE id = :id AND state IN
(:expected)``) plus an appended MessageEvent in the same transaction, so two
workers, two schedulers or a late provider event can never move a message
along a path that TRANSITIONS does not allow.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, Row, and_, func, insert, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.errors import TransitionError
from app.models import MessageEvent, OutboundContent, OutboundMessage
from app.relay import packing, webhooks

# state -> the states it may move to (DESIGN.md). Final states map to nothing.
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"queued", "cancelled", "suppressed"}),
    "queued": frozenset({"sending", "cancelled", "suppressed"}),
    "sending": frozenset({"sent", "deferred", "failed", "bounced", "suppressed"}),
    "deferred": frozenset({"queued", "cancelled", "suppressed", "failed"}),
    "sent": frozenset({"delivered", "bounced", "complained"}),
    "delivered": frozenset({"bounced", "complained"}),
    "bounced": frozenset(),
    "complained": frozenset(),
    "failed": frozenset({"queued"}),  # redrive only (app.relay.redrive)
    "cancelled": frozenset(),
    "suppressed": frozenset({"queued"}),  # redrive only, once the address is off the list
}
PRE_SEND = ("scheduled", "queued", "deferred")


def new_message_id(domain: str) -> str:
    """A fresh RFC 5322 Message-ID in our domain."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def known_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """The idempotency keys among ``keys`` that a message already has (no statement for none)."""
    keys = list(keys)
    if not keys:
        return set()
    stmt = select(OutboundMessage.idempotency_key).where(OutboundMessage.idempotency_key.in_(keys))
    return set(session.execute(stmt).scalars())


def create(session: Session, *, now: datetime, **fields) -> tuple[int, bool]:
    """Insert a message unless its idempotency_key exists; returns (id, created).

    The unique constraint decides: a conflict means "already done", so running
    a producer twice, or two producers at once, creates one row.
    """
    fields.setdefault("state", "queued")
    if fields["state"] not in ("scheduled", "queued"):
        raise TransitionError(f"a message starts scheduled or queued, not {fields['state']}")
    if fields["state"] == "queued":  # due now: how long it waits is read from here (oldest_due)
        fields.setdefault("next_attempt_at", now)
    if isinstance(fields.get("context"), dict):
        fields["context"] = json.dumps(fields["context"], sort_keys=True)
    fields.update(created_at=now, updated_at=now)
    table = OutboundMessage.__table__
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(**fields).on_conflict_do_nothing(index_elements=["idempotency_key"])
    new_id = session.execute(stmt.returning(table.c.id)).scalar()
    if new_id is not None:
        session.add(MessageEvent(message_id=new_id, kind=fields["state"], created_at=now))
        session.flush()
        return new_id, True
    existing = session.execute(
        select(table.c.id).where(table.c.idempotency_key == fields["idempotency_key"])
    ).scalar_one()
    return existing, False


_BULK_COLUMNS = (
    "idempotency_key",
    "kind",
    "team_id",
    "member_id",
    "to_addr",
    "subject",
    "template",
    "context",
    "message_id",
    "expires_at",
)
_PG_TYPES = ("text", "text", "int", "int", "text", "text", "text", "text", "text", "timestamptz")
_PG_RECORD = ", ".join(f"{c} {t}" for c, t in zip(_BULK_COLUMNS, _PG_TYPES, strict=True))


def pg_create_queued(rows: str) -> str:
    """The tail of a PostgreSQL statement that creates queued messages, for a ``WITH`` to end on:
    ``rows`` is a SELECT of _BULK_COLUMNS in that order; its new rows (a key that exists is
    skipped) get state queued, the lease ``:lease_until``, due ``:now``, and a 'queued' event each;
    the statement returns their ids. create_many and the scheduler's set-based path
    (app.checkins.due) both end on it, so what a new message is lives here."""
    return f"""ins AS (
        INSERT INTO outboundmessage ({", ".join(_BULK_COLUMNS)}, state, attempts, error,
            lease_until, next_attempt_at, created_at, updated_at)
        SELECT r.*, 'queued', 0, '', :lease_until, :now, :now, :now FROM ({rows}) AS r
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
    ), ev AS (
        INSERT INTO messageevent (message_id, kind, from_state, detail, created_at)
        SELECT id, 'queued', '', '', :now FROM ins
    )
    SELECT id FROM ins"""


# one round trip: rows travel as one JSON document (no per-value parameter dumping)
_PG_CREATE_MANY = text(
    "WITH " + pg_create_queued(f"SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS u({_PG_RECORD})")
)
_PG_EVENTS = text(
    """INSERT INTO messageevent (message_id, kind, from_state, detail, created_at)
    SELECT u.id, :kind, :from_state, :detail, :now FROM unnest(CAST(:ids AS int[])) AS u(id)"""
)


def _json_default(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


SQLITE_CHUNK = 500  # rows per multi-row INSERT on SQLite (its bound-parameter limit is 32766)


def create_many(session: Session, rows: list[dict], *, now: datetime, lease_until: datetime) -> list[int]:
    """Insert queued messages in bulk, skipping keys that exist; the ids of the new rows.

    ``rows`` carry the keys of _BULK_COLUMNS (context as a JSON string). One
    multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (PostgreSQL: over
    json_to_recordset, one statement per call), plus a 'queued' event per new row.
    """
    if not rows:
        return []
    if session.get_bind().dialect.name == "postgresql":
        params = {"rows": json.dumps(rows, default=_json_default), "now": now, "lease_until": lease_until}
        return list(session.connection().execute(_PG_CREATE_MANY, params).scalars())
    table = OutboundMessage.__table__
    extra = {
        "state": "queued",
        "attempts": 0,
        "error": "",
        "lease_until": lease_until,
        "next_attempt_at": now,
    }
    ids = []
    for i in range(0, len(rows), SQLITE_CHUNK):
        chunk = [{**r, **extra, "created_at": now, "updated_at": now} for r in rows[i : i + SQLITE_CHUNK]]
        stmt = sqlite_insert(table).values(chunk).on_conflict_do_nothing(index_elements=["idempotency_key"])
        ids += list(session.execute(stmt.returning(table.c.id)).scalars())
    _events_many(session, ids, "queued", "", now)
    return ids


def _events_many(
    session: Session, ids: list[int], kind: str, from_state: str, now: datetime, detail: str = ""
) -> None:
    if not ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        params = {"ids": ids, "kind": kind, "from_state": from_state, "detail": detail, "now": now}
        session.execute(_PG_EVENTS, params)
        return
    session.execute(
        insert(MessageEvent.__table__),
        [
            {"message_id": i, "kind": kind, "from_state": from_state, "detail": detail, "created_at": now}
            for i in ids
        ],
    )


def on_each(cond):
    """``cond`` (a condition on a message's state) compared on each row the other conditions found,
    never an index condition: for statements that find their rows by id. As a plain comparison
    the planner may serve it from ix_outbound_due, and takes that index when it expects few rows in
    the state: SQLite always for an IN list of more than a few ids; PostgreSQL when its statistics
    are older than the burst of rows just made (the scheduler's tick, a big send). It then walks
    every row in the state once per statement (measured, PostgreSQL: 10-40 ms a claim of 20 with
    3,000 queued, where the primary key takes 0.8 ms). Written ``(cond) IS true``."""
    return cond.is_(true())


def release_due(session: Session, *, now: datetime, lease_s: int, limit: int = 5000) -> list[int]:
    """Move up to ``limit`` due scheduled messages to queued in one statement; their ids.

    The UPDATE re-checks ``state = 'scheduled'``, so it is a bulk compare-and-set; on
    PostgreSQL the candidates are locked with SKIP LOCKED so concurrent schedulers split them.
    """
    M = OutboundMessage
    pick = select(M.id).where(M.state == "scheduled", M.send_at <= now).order_by(M.send_at).limit(limit)
    values = {"state": "queued", "updated_at": now, "lease_until": now + timedelta(seconds=lease_s)}
    values["next_attempt_at"] = M.send_at  # due since its time came, however late the release
    if session.get_bind().dialect.name == "postgresql":
        # a materialized CTE: as an IN (subquery) the planner may run LIMIT ... FOR UPDATE more than once
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        cond = and_(M.id == picked.c.id, on_each(M.state == "scheduled"))
    else:
        cond = and_(M.id.in_(pick.scalar_subquery()), on_each(M.state == "scheduled"))
    stmt = update(M).where(cond).values(**values).returning(M.id).execution_options(synchronize_session=False)
    ids = sorted(session.execute(stmt).scalars())
    _events_many(session, ids, "queued", "scheduled", now)
    return ids


def cancel_many(session: Session, cond, *, now: datetime, detail: str) -> list[int]:
    """Cancel every still-scheduled message matching ``cond`` in one compare-and-set; their ids."""
    M = OutboundMessage
    stmt = (
        update(M)
        .where(cond, M.state == "scheduled")
        .values(state="cancelled", updated_at=now)
        .returning(M.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(session.execute(stmt).scalars())
    _events_many(session, ids, "cancelled", "scheduled", now, detail)
    return ids


def transition(
    session: Session,
    message_id: int,
    to: str,
    *,
    expected: str | Iterable[str],
    now: datetime,
    detail: str = "",
    values: dict | None = None,
    where=None,
) -> bool:
    """Move one message to ``to`` if it is in ``expected``; True when this call moved it."""
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    for state in expected:
        if to not in TRANSITIONS[state]:
            raise TransitionError(f"{state} -> {to} is not allowed")
    cond = and_(OutboundMessage.id == message_id, on_each(OutboundMessage.state.in_(expected)))
    if where is not None:
        cond = and_(cond, where)
    # read the old state under the same condition, so the event records where it came from
    old = session.execute(select(OutboundMessage.state).where(cond).with_for_update()).scalar()
    if old is None:
        return False
    res = session.execute(
        update(OutboundMessage)
        .where(and_(OutboundMessage.id == message_id, on_each(OutboundMessage.state == old)))
        .values(state=to, updated_at=now, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return False
    session.add(MessageEvent(message_id=message_id, kind=to, from_state=old, detail=detail, created_at=now))
    session.flush()
    webhooks.emit_messages(session, [(message_id, to, detail)], now=now)
    return True


def transition_many(
    session: Session,
    to: str,
    events: dict[int, dict],
    *,
    expected: Iterable[str],
    now: datetime,
    hooks: list | None = None,
) -> dict[int, str]:
    """Move each message of ``events`` to ``to`` if it is in ``expected``; {id: the state it left}.

    One compare-and-set UPDATE per expected state, then one multi-row insert of the moved
    messages' events; ``events[id]`` holds the extra MessageEvent fields of that message
    (``detail``, ``provider_event_id``). A message in any other state is left alone. The webhooks
    the moves owe are written too, or appended to ``hooks`` for the caller to write in one go
    (``webhooks.emit_messages``).
    """
    expected = tuple(expected)
    for state in expected:
        if to not in TRANSITIONS[state]:
            raise TransitionError(f"{state} -> {to} is not allowed")
    M = OutboundMessage
    pending, moved = set(events), {}
    for state in expected:
        if not pending:
            break
        stmt = (
            update(M)
            .where(M.id.in_(sorted(pending)), on_each(M.state == state))
            .values(state=to, updated_at=now)
            .returning(M.id)
            .execution_options(synchronize_session=False)
        )
        for mid in session.execute(stmt).scalars():
            moved[mid] = state
            pending.discard(mid)
    if moved:
        rows = [
            {"detail": "", "provider_event_id": None, **events[mid]}
            | {"message_id": mid, "kind": to, "from_state": old, "created_at": now}
            for mid, old in sorted(moved.items())
        ]
        session.execute(insert(MessageEvent.__table__), rows)
        owed = [(r["message_id"], to, r["detail"]) for r in rows]
        if hooks is None:
            webhooks.emit_messages(session, owed, now=now)
        else:
            hooks += owed
    return moved


def requeue_many(
    session: Session, ids: list[int], *, expected: Iterable[str], now: datetime, lease_s: int, detail: str
) -> dict[int, str]:
    """Send each message of ``ids`` that is in ``expected`` again: -> queued with its attempts and
    error reset, due now, a fresh lease; {id: the state it left}. One compare-and-set UPDATE per
    expected state, so two redrives of the same ids move each message once; an event each."""
    expected = tuple(expected)
    for state in expected:
        if "queued" not in TRANSITIONS[state]:
            raise TransitionError(f"{state} -> queued is not allowed")
    M = OutboundMessage
    values = {
        "state": "queued",
        "attempts": 0,
        "error": "",
        "next_attempt_at": now,
        "lease_until": now + timedelta(seconds=lease_s),
        "updated_at": now,
    }
    moved: dict[int, str] = {}
    pg = session.get_bind().dialect.name == "postgresql"
    for state in expected:
        pending = sorted(set(ids) - set(moved))
        if not pending:
            break
        if pg:
            # rows locked in id order, and a row another redrive holds is skipped, not waited for:
            # two redrives of overlapping sets never deadlock, and the CAS moves each row once
            pick = select(M.id).where(M.id.in_(pending), on_each(M.state == state)).order_by(M.id)
            picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            cond = and_(M.id == picked.c.id, on_each(M.state == state))
        else:
            cond = and_(M.id.in_(pending), on_each(M.state == state))
        stmt = update(M).where(cond).values(**values).returning(M.id)
        for mid in session.execute(stmt.execution_options(synchronize_session=False)).scalars():
            moved[mid] = state
    if moved:
        rows = [
            {"message_id": mid, "kind": "queued", "from_state": old, "detail": detail, "created_at": now}
            for mid, old in sorted(moved.items())
        ]
        session.execute(insert(MessageEvent.__table__), rows)
    return moved


_CLAIM_COLUMNS = tuple(OutboundMessage.__table__.c)
# columns by name, in the model's order: a migrated table's own order may differ; the state
# compared on each row the primary key finds (see on_each)
_PG_CLAIM = text(
    f"""WITH picked AS MATERIALIZED (
        SELECT id FROM outboundmessage WHERE id = ANY(CAST(:ids AS int[])) AND (state = 'queued') IS TRUE
        ORDER BY id FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE outboundmessage m SET state = 'sending', updated_at = :now, lease_until = :lease_until,
            attempts = m.attempts + 1, next_attempt_at = NULL
        FROM picked WHERE m.id = picked.id AND (m.state = 'queued') IS TRUE
        RETURNING {", ".join(f"m.{c.name}" for c in _CLAIM_COLUMNS)}
    ), ev AS (
        INSERT INTO messageevent (message_id, kind, from_state, detail, created_at)
        SELECT id, 'sending', 'queued', '', :now FROM claimed
    )
    SELECT {", ".join(c.name for c in _CLAIM_COLUMNS)} FROM claimed"""
).columns(*_CLAIM_COLUMNS)  # typed: times come back aware UTC


def claim_many(session: Session, message_ids: list[int], *, now: datetime, lease_s: int) -> list[Row]:
    """Take the still-queued messages among ``message_ids`` for delivery (queued -> sending, with a
    lease, an event each): one compare-and-set for all of them; the claimed rows (every column
    of OutboundMessage, read-only) in id order.

    PostgreSQL: one statement; rows another transaction holds are skipped (``SKIP LOCKED``), never
    waited for, so two workers given overlapping ids split them without deadlocking.
    """
    ids = sorted(set(message_ids))
    if not ids:
        return []
    lease_until = now + timedelta(seconds=lease_s)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_PG_CLAIM, {"ids": ids, "now": now, "lease_until": lease_until}).all()
        return sorted(rows, key=lambda r: r.id)
    M = OutboundMessage.__table__
    stmt = (
        update(M)
        .where(M.c.id.in_(ids), on_each(M.c.state == "queued"))
        .values(
            state="sending",
            updated_at=now,
            lease_until=lease_until,
            attempts=M.c.attempts + 1,
            next_attempt_at=None,
        )
        .returning(*_CLAIM_COLUMNS)
    )
    claimed = sorted(conn.execute(stmt).all(), key=lambda r: r.id)
    _events_many(session, [r.id for r in claimed], "sending", "queued", now)
    return claimed


def claim(session: Session, message_id: int, *, now: datetime, lease_s: int) -> Row | None:
    """Take a queued message for delivery (queued -> sending, with a lease); its row, None if not ours."""
    claimed = claim_many(session, [message_id], now=now, lease_s=lease_s)
    return claimed[0] if claimed else None


# the outcome of an attempt: a NULL parameter leaves its column as it was; the row found by its
# primary key alone (see on_each)
_PG_FINISH = text(
    """WITH done AS (
        UPDATE outboundmessage SET state = :to, updated_at = :now, error = :error, lease_until = NULL,
            sender = COALESCE(CAST(:sender AS varchar), sender),
            links = COALESCE(CAST(:links AS text), links),
            sent_at = COALESCE(CAST(:sent_at AS timestamptz), sent_at),
            provider_id = COALESCE(CAST(:provider_id AS varchar), provider_id),
            provider_response = COALESCE(CAST(:provider_response AS text), provider_response),
            next_attempt_at = COALESCE(CAST(:next_attempt_at AS timestamptz), next_attempt_at)
        WHERE id = :id AND (state = 'sending') IS TRUE
        RETURNING id, team_id
    ), content AS (
        INSERT INTO outboundcontent (message_id, raw_zlib)
        SELECT id, CAST(:raw_zlib AS bytea) FROM done WHERE CAST(:raw_zlib AS bytea) IS NOT NULL
        ON CONFLICT (message_id) DO UPDATE SET raw_zlib = EXCLUDED.raw_zlib
    ), hooks AS (
        -- the webhooks owed (app.relay.webhooks.emit_messages): none unless the team has an
        -- endpoint that wants this kind (:hook_like is NULL for a kind no endpoint can want)
        INSERT INTO webhookdelivery (endpoint_id, team_id, kind, message_id, payload, detail, state,
            attempts, next_attempt_at, retry_until, last_error, created_at)
        SELECT e.id, e.team_id, :to, done.id, '', :error, 'pending', 0, :now, :hook_until, '', :now
        FROM done JOIN webhookendpoint e ON e.team_id = done.team_id
        WHERE (' ' || e.kinds || ' ') LIKE CAST(:hook_like AS text)
    )
    INSERT INTO messageevent (message_id, kind, from_state, detail, created_at)
    SELECT id, :to, 'sending', :error, :now FROM done
    RETURNING message_id"""
)
_FINISH_VALUES = ("sender", "links", "sent_at", "provider_id", "provider_response", "next_attempt_at")
# handed to psycopg as it is: through SQLAlchemy, setting up the statement and its result took
# more of a worker's time than psycopg's execution of it (py-spy on the workers, all statements:
# SQLAlchemy's part 11 % of the samples, psycopg's 7 %)
_PG_FINISH_SQL = str(_PG_FINISH.compile(dialect=postgresql_psycopg.dialect()))


def _check_finish(to: str, values: dict) -> None:
    """TransitionError unless ``sending -> to`` is allowed; ValueError for a value ``finish``
    cannot set."""
    if to not in TRANSITIONS["sending"]:
        raise TransitionError(f"sending -> {to} is not allowed")
    unknown = set(values) - set(_FINISH_VALUES)
    if unknown:
        raise ValueError(f"finish cannot set {sorted(unknown)}")


def pg_finish_params(message_id: int, to: str, *, now: datetime, error: str, raw_zlib, **values) -> dict:
    """The parameters of _PG_FINISH_SQL for ``finish``'s arguments."""
    params = dict.fromkeys(_FINISH_VALUES) | values
    params |= {"id": message_id, "to": to, "now": now, "error": error, "raw_zlib": raw_zlib}
    kind = webhooks.FROM_EVENT.get(to)
    return params | {"hook_like": kind and webhooks.like(kind), "hook_until": now + webhooks.retry_window()}


def _driver(session: Session):
    """The psycopg connection under ``session``, in the session's transaction. A session bound to a
    connection in autocommit (the workers') and not in a transaction gets it without beginning
    one: there a statement is its own transaction, and a session transaction begun and committed
    around it would be bookkeeping in Python alone, once per message sent."""
    bind = session.bind
    if isinstance(bind, Connection) and not session.in_transaction():
        driver = bind.connection.dbapi_connection
        if driver.autocommit:
            return driver
    return session.connection().connection.dbapi_connection


def finish(
    session: Session,
    message_id: int,
    to: str,
    *,
    now: datetime,
    error: str = "",
    raw: bytes | None = None,
    **values,
) -> bool:
    """Record how the attempt on a ``sending`` message ended (sent, deferred, failed, bounced,
    suppressed): ``error`` and ``values`` (columns of _FINISH_VALUES) on the row, the lease
    dropped, an event appended, and ``raw`` (the bytes the transport was handed, if given) kept
    compressed in OutboundContent, replacing an earlier attempt's. True when this call moved it.
    PostgreSQL: one statement."""
    _check_finish(to, values)
    packed = None if raw is None else packing.pack(raw)
    if session.get_bind().dialect.name == "postgresql":
        params = pg_finish_params(message_id, to, now=now, error=error, raw_zlib=packed, **values)
        return _driver(session).execute(_PG_FINISH_SQL, params, prepare=True).fetchone() is not None
    moved = transition(
        session,
        message_id,
        to,
        expected="sending",
        now=now,
        detail=error,
        values={"error": error, "lease_until": None, **values},
    )
    if moved and packed is not None:
        stmt = sqlite_insert(OutboundContent.__table__).values(message_id=message_id, raw_zlib=packed)
        session.execute(stmt.on_conflict_do_update(index_elements=["message_id"], set_={"raw_zlib": packed}))
    return moved


# several outcomes in one statement: finish's _PG_FINISH with each parameter an array, a row each
_PG_FINISH_MANY = text(
    """WITH v AS MATERIALIZED (
        SELECT * FROM unnest(CAST(:id AS int[]), CAST(:to AS varchar[]), CAST(:now AS timestamptz[]),
            CAST(:error AS text[]), CAST(:sender AS varchar[]), CAST(:links AS text[]),
            CAST(:sent_at AS timestamptz[]), CAST(:provider_id AS varchar[]),
            CAST(:provider_response AS text[]), CAST(:next_attempt_at AS timestamptz[]),
            CAST(:raw_zlib AS bytea[]), CAST(:hook_like AS text[]), CAST(:hook_until AS timestamptz[]))
            AS v(id, to_state, now, error, sender, links, sent_at, provider_id, provider_response,
                 next_attempt_at, raw_zlib, hook_like, hook_until)
    ), done AS (
        UPDATE outboundmessage m SET state = v.to_state, updated_at = v.now, error = v.error,
            lease_until = NULL,
            sender = COALESCE(v.sender, m.sender),
            links = COALESCE(v.links, m.links),
            sent_at = COALESCE(v.sent_at, m.sent_at),
            provider_id = COALESCE(v.provider_id, m.provider_id),
            provider_response = COALESCE(v.provider_response, m.provider_response),
            next_attempt_at = COALESCE(v.next_attempt_at, m.next_attempt_at)
        FROM v WHERE m.id = v.id AND (m.state = 'sending') IS TRUE
        RETURNING m.id, m.team_id, v.to_state, v.now, v.error, v.raw_zlib, v.hook_like, v.hook_until
    ), content AS (
        INSERT INTO outboundcontent (message_id, raw_zlib)
        SELECT id, raw_zlib FROM done WHERE raw_zlib IS NOT NULL
        ON CONFLICT (message_id) DO UPDATE SET raw_zlib = EXCLUDED.raw_zlib
    ), hooks AS (
        INSERT INTO webhookdelivery (endpoint_id, team_id, kind, message_id, payload, detail, state,
            attempts, next_attempt_at, retry_until, last_error, created_at)
        SELECT e.id, e.team_id, done.to_state, done.id, '', done.error, 'pending', 0, done.now,
            done.hook_until, '', done.now
        FROM done JOIN webhookendpoint e ON e.team_id = done.team_id
        WHERE (' ' || e.kinds || ' ') LIKE done.hook_like
    )
    INSERT INTO messageevent (message_id, kind, from_state, detail, created_at)
    SELECT id, to_state, 'sending', error, now FROM done ORDER BY id
    RETURNING message_id"""
)
# its arrays go in PostgreSQL's binary format (psycopg's ``%(name)b``): as text, psycopg writes each
# of the bytes kept out in hex and escapes it for the array literal, in Python, which took more of
# a worker's time than the rest of the statement (py-spy on bench/outbound.py's workers), and
# formats each time stamp
_PG_FINISH_MANY_SQL = str(_PG_FINISH_MANY.compile(dialect=postgresql_psycopg.dialect())).replace(
    ")s AS ", ")b AS "
)


class Finish(NamedTuple):
    """One attempt's outcome for ``finish_many``: ``finish``'s arguments."""

    message_id: int
    to: str
    now: datetime
    error: str = ""
    raw: bytes | None = None
    values: dict = {}


def finish_many(session: Session, outcomes: list[Finish]) -> set[int]:
    """``finish`` for several ``sending`` messages, each outcome as ``finish`` writes it; the ids
    this call moved. PostgreSQL: one statement for all of them (for one, finish's own: the arrays
    cost more than they save); SQLite: ``finish`` for each, in the session's transaction."""
    for o in outcomes:  # every one before any is written
        _check_finish(o.to, o.values)
    if not outcomes:
        return set()
    if len(outcomes) == 1 or session.get_bind().dialect.name != "postgresql":
        return {
            o.message_id
            for o in outcomes
            if finish(session, o.message_id, o.to, now=o.now, error=o.error, raw=o.raw, **o.values)
        }
    rows = [
        pg_finish_params(
            o.message_id,
            o.to,
            now=o.now,
            error=o.error,
            raw_zlib=None if o.raw is None else packing.pack(o.raw),
            **o.values,
        )
        for o in outcomes
    ]
    params = {k: [r[k] for r in rows] for k in rows[0]}
    found = _driver(session).execute(_PG_FINISH_MANY_SQL, params, prepare=True).fetchall()
    return {r[0] for r in found}


def content(session: Session, message_id: int) -> bytes | None:
    """The bytes the message was handed to its transport as (its final attempt), or None: never
    handed, sent before they were kept (migration 0012), or purged (its ``purged_at``)."""
    packed = session.execute(
        select(OutboundContent.raw_zlib).where(OutboundContent.message_id == message_id)
    ).scalar()
    return None if packed is None else packing.unpack(packed)


def sweep(session: Session, *, now: datetime, lease_s: int, limit: int = 1000) -> list[int]:
    """Repair what a lost broker message or a killed worker left; returns ids to enqueue.

    - sending past its lease -> deferred (the worker died), due at once;
    - deferred and due -> queued;
    - scheduled and due -> queued (in bulk, release_due);
    - queued but never claimed within its lease -> enqueued again (claims are CAS, so
      a duplicate broker message is harmless);
    - anything pre-send past ``expires_at`` -> cancelled.
    """
    lease = timedelta(seconds=lease_s)
    M = OutboundMessage

    def ids(cond) -> list[int]:
        return list(session.execute(select(M.id).where(cond).order_by(M.id).limit(limit)).scalars())

    for mid in ids(and_(M.state.in_(PRE_SEND), M.expires_at.is_not(None), M.expires_at < now)):
        transition(session, mid, "cancelled", expected=PRE_SEND, now=now, detail="expired before sending")
    for mid in ids(and_(M.state == "sending", M.lease_until < now)):
        transition(
            session,
            mid,
            "deferred",
            expected="sending",
            now=now,
            detail="lease expired: the worker did not finish",
            values={"next_attempt_at": now},
            where=M.lease_until < now,
        )
    due = release_due(session, now=now, lease_s=lease_s, limit=limit)
    for mid in ids(and_(M.state == "deferred", M.next_attempt_at <= now)):
        if transition(
            session,
            mid,
            "queued",
            expected="deferred",
            now=now,
            values={"lease_until": now + lease},
        ):
            due.append(mid)
    stale = ids(and_(M.state == "queued", or_(M.lease_until.is_(None), M.lease_until < now)))
    if stale:
        session.execute(update(M).where(M.id.in_(stale)).values(lease_until=now + lease))
    return due + stale


def wake_deferred(session: Session, cond, *, now: datetime) -> int:
    """Make the deferred messages that match ``cond`` and wait for a later retry due at ``now`` (what
    deferred them has gone: a sender carries mail again); how many. They stay deferred and the next
    sweep queues them, as any deferred message whose time has come; a range of ix_outbound_due."""
    M = OutboundMessage
    stmt = (
        update(M)
        .where(M.state == "deferred", M.next_attempt_at > now, cond)
        .values(next_attempt_at=now, updated_at=now)
    )
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount


def oldest_due(session: Session, *, now: datetime) -> datetime | None:
    """Since when the message waiting longest to be sent has been due, or None when none waits: a
    queued row (its ``next_attempt_at`` is when it became due: created, released at its send_at,
    redriven, or deferred until then) or a deferred one whose retry time has come. Scheduled rows
    and retries still ahead do not wait. Two look-ups, each the first entry of a range of
    ix_outbound_due (state, next_attempt_at), however long the queue."""
    M = OutboundMessage

    def first(state: str):
        cond = and_(M.state == state, M.next_attempt_at <= now)
        return select(func.min(M.next_attempt_at)).where(cond).scalar_subquery()

    times = [t for t in session.execute(select(first("queued"), first("deferred"))).one() if t is not None]
    return min(times) if times else None


def events(session: Session, message_id: int) -> list[MessageEvent]:
    """The message's timeline, oldest first."""
    stmt = select(MessageEvent).where(MessageEvent.message_id == message_id).order_by(MessageEvent.id)
    return list(session.execute(stmt).scalars())
