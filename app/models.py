"""The tables. Times are aware UTC; ``state`` columns are written only by their owning module."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from parsers.storable import unstorable as bad_text  # noqa: F401 - the tables' callers ask here


def utcnow() -> datetime:
    return datetime.now(UTC)


MAX_ID = 2**31 - 1  # ids are 32-bit integer columns: PostgreSQL refuses a query with a larger one


def id_in_range(value: int) -> bool:
    """True when ``value`` can be a row id (so a lookup beyond the range is a 404, not a 500)."""
    return 1 <= value <= MAX_ID


class UTCDateTime(TypeDecorator):
    """Aware UTC in, aware UTC out, on SQLite (which keeps naive text) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = True, index: bool = False):
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Team(SQLModel, table=True):
    """A team: who is asked, when, and who gets the digest."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    reminder_time: str = Field(default="17:00", max_length=5)  # local HH:MM
    digest_time: str = Field(default="08:00", max_length=5)
    workdays: str = Field(default="12345", max_length=7)  # ISO weekdays, 1 = Monday
    digest_workdays: str = Field(default="12345", max_length=7)  # weekdays the digest is sent
    skip_empty_digests: bool = False  # no digest for a day nobody wrote in
    weekly_digest_day: int = 0  # ISO weekday the weekly digest goes out with the daily one; 0: none
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


ROLES = ("admin", "member", "observer")  # a member's role in a team, most rights first


_DUE = text("at IS NOT NULL")


class Member(SQLModel, table=True):
    """A person in a team; ``timezone`` None means the team's."""

    # (team_id, email) also serves lookups by team: no single-column team_id index (migration 0007)
    __table_args__ = (UniqueConstraint("team_id", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    email: str = Field(max_length=320, index=True)
    name: str = Field(default="", max_length=200)
    role: str = Field(default="member", max_length=16)  # admin | member | observer
    timezone: str | None = Field(default=None, max_length=64)
    reminder_time: str | None = Field(default=None, max_length=5)  # None: the team's
    reminder_days: str | None = Field(default=None, max_length=7)  # None: the team's workdays
    digest_time: str | None = Field(default=None, max_length=5)
    digest_days: str | None = Field(default=None, max_length=7)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


DUE_KINDS = ("reminder", "digest", "nudge")  # what falls due for a member (MemberDue.kind)


class MemberDue(SQLModel, table=True):
    """When a member's next reminder, digest or nudge is due: a row per member and kind, none (or
    ``at`` None) when nothing is. The nudge of the day's reminder is set when that reminder is made
    (app.checkins.due); the other two by app.checkins.schedules.

    Its own narrow table, not columns of ``member``: the scheduler moves ``at`` on every row it fires,
    and an update that changes an indexed column writes an entry into every index of the row's
    table; on ``member`` those were five, four of them at random places of 1M-row indexes
    (migration 0033)."""

    __table_args__ = (Index("ix_memberdue_kind_at", "kind", "at", postgresql_where=_DUE, sqlite_where=_DUE),)
    member_id: int = Field(foreign_key="member.id", primary_key=True)
    kind: str = Field(primary_key=True, max_length=8)  # one of DUE_KINDS
    at: datetime | None = _ts()


class Entry(SQLModel, table=True):
    """One thing a member got done (or plans, or is blocked on) on a day."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    day: date = Field(index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(default="done", max_length=16)  # done | goal | blocker
    tags: str = Field(default="", max_length=1000)  # space-separated, without '#'
    mentions: str = Field(default="", max_length=1000)  # space-separated, without '@'
    inbound_id: int | None = Field(default=None, foreign_key="inboundmessage.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    question: int = 0  # which of the team's questions it answers, from 0 (TeamSettings.questions)
    closed_on: date | None = None  # a goal: the day it was closed (done or carried); None while open
    closed_as: str = Field(default="", max_length=16)  # '' open | done | carried
    # a blocker stays open until its author or an admin resolves it (by reply or on the web)
    resolved_at: datetime | None = _ts()
    resolved_by: int | None = None  # the member who resolved it


class Comment(SQLModel, table=True):
    """A reply to a team's digest: on an entry it quoted, a member it named, or the day itself."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    day: date  # the digest's day (the entry's day when on an entry)
    # not foreign keys: an entry may be deleted (a comment on it then shows on its day), and
    # retention deletes inbound rows
    entry_id: int | None = Field(default=None, index=True)
    member_id: int | None = Field(default=None, foreign_key="member.id")  # the member it is about
    author_id: int = Field(foreign_key="member.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    inbound_id: int | None = Field(default=None, index=True)  # the reply it came from
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))

    __table_args__ = (Index("ix_comment_team_day", "team_id", "day"),)


class InboundMessage(SQLModel, table=True):
    """A received email exactly as it arrived, plus what processing made of it."""

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=512, unique=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default="received", max_length=16)  # indexed with id (below)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    message_id: str = Field(default="", max_length=1000)
    from_addr: str = Field(default="", max_length=320)
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    member_id: int | None = Field(default=None, foreign_key="member.id", index=True)
    day: date | None = None
    reply_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    quoted_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    signature_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    received_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    processed_at: datetime | None = _ts()
    # the provider's request body as received (None for raw and IMAP mail, where ``raw`` is the payload)
    payload: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    payload_type: str = Field(default="", max_length=255)  # the payload's Content-Type
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # parse limits hit
    attempts: int = 0  # claims so far (app.inbound.process); INBOUND_MAX_ATTEMPTS unfinished -> quarantined
    # processing: until when the claiming worker holds it; received: when the sweeper enqueues it again
    lease_until: datetime | None = _ts()
    # sha256 of the mail's content (parsers Keys.fingerprint): a copy with a known dedupe key and
    # the same fingerprint is a retry; another fingerprint is another mail, stored ('' before 0012)
    fingerprint: str = Field(default="", max_length=64)
    # Message-ID + envelope recipient (app.inbound.accept.message_key); None without a Message-ID
    message_key: str | None = Field(default=None, max_length=512, index=True)
    # the first message stored with the same message_key, when this one is not it (not a foreign
    # key: retention deletes rows in any order)
    same_message_id_as: int | None = None
    # the reply's body as the extractor read it (parsers.reply.Reply.lines, a JSON list; '' before
    # migration 0030 and for mail that made no entries) and its cut: ``cut_at`` the first line not
    # kept (None: nothing cut), the rule that cut there and how sure it was (high | low; '' before
    # 0030). A person moving the cut (app.inbound.corrections) sets them again, rule ``corrected``.
    reply_lines: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    reply_html: bool = False  # the lines are the HTML part's (the mail had no text part to read)
    cut_at: int | None = None
    cut_rule: str = Field(default="", max_length=64)
    cut_confidence: str = Field(default="", max_length=8)

    # claims read the received ones by id (app.inbound.process.claim); every look-up by state too
    __table_args__ = (Index("ix_inboundmessage_state_id", "state", "id"),)


class ReplyCase(SQLModel, table=True):
    """A cut a person moved: the reply as the extractor read it and the text they said it holds, kept as
    a case of reply extraction (``donebox replies export-cases`` writes them masked; app.inbound.cases)."""

    id: int | None = Field(default=None, primary_key=True)
    # not a foreign key: retention deletes inbound rows, and the case outlives them
    inbound_id: int = Field(index=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    member_id: int = Field(foreign_key="member.id")  # who wrote the reply
    by_user_id: int = Field(foreign_key="appuser.id")  # who moved the cut
    by_role: str = Field(max_length=16)  # author | admin | operator
    kind: str = Field(max_length=8)  # plain | html: what ``input`` is
    input: str = Field(sa_column=Column(Text, nullable=False))  # the body the extractor read
    from_name: str = Field(default="", max_length=320)  # the sender's display name (masked on export)
    lines: str = Field(sa_column=Column(Text, nullable=False))  # the lines shown, a JSON list
    cut_before: int | None = None  # where the extractor (or an earlier correction) had cut
    rule_before: str = Field(default="", max_length=64)
    confidence_before: str = Field(default="", max_length=8)
    cut_at: int  # the first line not kept, as the person said (len(lines): nothing cut)
    expected: str = Field(sa_column=Column(Text, nullable=False))  # the reply's text as corrected
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


_SCHEDULED = text("state = 'scheduled'")
_BATCHED = text("batch_id IS NOT NULL")
_ASKED = text("kind IN ('invite', 'signin')")  # mail a person's action makes (app.relay.quotas)
_ACTED = text("actor IS NOT NULL")
_API = text("kind = 'api'")
_BODY = text("body_id IS NOT NULL")  # mail applications send (API, SMTP): the team quotas count it
_PROVIDER_ID = text("provider_id <> ''")  # set by the attempt that sent it: '' until then
_PROVIDER_EVENT = text("provider_event_id IS NOT NULL")  # only a provider's events carry one


class OutboundMessage(SQLModel, table=True):
    """One email in the outbox; its ``state`` is owned by app.relay.outbox."""

    __table_args__ = (
        Index("ix_outbound_due", "state", "next_attempt_at"),
        # partial: most rows are never scheduled or batched, and skip these indexes on insert
        Index("ix_outbound_scheduled", "send_at", postgresql_where=_SCHEDULED, sqlite_where=_SCHEDULED),
        Index("ix_outbound_batch", "batch_id", postgresql_where=_BATCHED, sqlite_where=_BATCHED),
        # the per-recipient and per-actor quotas count the last hour of user-made mail (migration 0011)
        Index("ix_outbound_asked", "to_addr", "created_at", postgresql_where=_ASKED, sqlite_where=_ASKED),
        Index("ix_outbound_actor", "actor", "created_at", postgresql_where=_ACTED, sqlite_where=_ACTED),
        # the per-team quotas count the last day of application mail (migration 0016)
        Index("ix_outbound_api", "team_id", "created_at", postgresql_where=_API, sqlite_where=_API),
        # only composed mail has a stored body: check-in rows skip the index (migration 0031)
        Index("ix_outboundmessage_body_id", "body_id", postgresql_where=_BODY, sqlite_where=_BODY),
        # a provider's id arrives with the attempt that sent the message: the row's insert and its
        # claim skip the index (migration 0032); app.relay.feedback looks up "provider_id <> ''" too
        Index(
            "ix_outboundmessage_provider_id",
            "provider_id",
            postgresql_where=_PROVIDER_ID,
            sqlite_where=_PROVIDER_ID,
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=16)  # reminder | digest | weekly | api | ... | chat
    # not foreign keys: rows are made only for a team and member just read in the same transaction,
    # and teams and members are never deleted; the checks cost a lookup and a row lock on the team
    # and the member per row, and two schedulers sharing a team's row lock (migration 0032). The
    # team's is indexed (the mail log and the API list a team's messages); no query looks rows up
    # by member, and every insert, claim and outcome wrote an entry for it (migration 0036)
    team_id: int | None = Field(default=None, index=True)
    member_id: int | None = Field(default=None)
    to_addr: str = Field(max_length=320)
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    template: str = Field(default="", max_length=64)
    context: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON
    message_id: str = Field(max_length=255, index=True)  # our Message-ID, reused by every attempt
    state: str = Field(default="queued", max_length=16)
    attempts: int = 0
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    send_at: datetime | None = _ts()
    lease_until: datetime | None = _ts()  # the sweeper finds expired leases by state (ix_outbound_due)
    next_attempt_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    batch_id: str | None = Field(default=None, max_length=255)  # API caller's batch
    expires_at: datetime | None = _ts()  # after this, no attempt is made (reminders: local midnight)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    sender: str = Field(default="", max_length=64)  # the Sender that transmitted the last attempt
    provider_id: str = Field(default="", max_length=255)  # e.g. SendGrid's X-Message-Id; indexed where set
    provider_response: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    links: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # JSON: tracked URLs
    purged_at: datetime | None = _ts()  # content and provider response removed (RETENTION_DAYS)
    actor: str | None = Field(
        default=None, max_length=320
    )  # who asked for it (a user's email); None: no person
    # a message an application composed (the full send API, SMTP submission): its bytes, stored once
    # for all its recipients (OutboundBody; app.relay.composed); None: rendered from template/context
    body_id: int | None = Field(default=None)
    from_addr: str = Field(default="", max_length=320)  # the application's From; "": MAIL_FROM


class OutboundContent(SQLModel, table=True):
    """The exact bytes a transport was handed for a message, packed (app.relay.packing: Zstandard,
    zlib in rows written before it); written with the outcome (app.relay.outbox.finish), deleted by
    retention (the message's ``purged_at``)."""

    # the message's id; not a foreign key, as MessageEvent's: written only with the message's own
    # outcome, and messages are never deleted (migration 0012)
    message_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    # named for the format it first held; app.relay.packing reads either
    raw_zlib: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class OutboundBody(SQLModel, table=True):
    """A message as an application composed it, packed (app.relay.packing), stored once for all its recipients
    (app.relay.composed); the relay adds only what it owns when it sends each recipient's copy."""

    id: int | None = Field(default=None, primary_key=True)
    # named for the format it first held; app.relay.packing reads either
    raw_zlib: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = 0  # bytes before compression
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class SendingDomain(SQLModel, table=True):
    """A domain applications may send From (app.relay.domains): its DNS records and their verdicts."""

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=253, unique=True)  # lower-case, IDNA (A-labels)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)  # None: every team
    return_path_host: str = Field(default="", max_length=253)  # the VERP envelope sender's domain
    checks: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON verdicts
    verified_at: datetime | None = _ts()  # every required record found at the last check
    checked_at: datetime | None = _ts()
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class DkimKey(SQLModel, table=True):
    """A domain's DKIM signing key (PKCS#8 PEM), in the database so every worker of a fleet signs with
    it (app.relay.domains, cached per process); ``donebox domain add`` makes an RSA and an Ed25519 one."""

    __table_args__ = (UniqueConstraint("domain", "selector"),)
    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=253, index=True)  # lower-case, IDNA, as SendingDomain.domain
    selector: str = Field(max_length=63)  # <selector>._domainkey.<domain>
    private_pem: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class MessageEvent(SQLModel, table=True):
    """Append-only log: every state change and every tracking or provider event of a message."""

    # unique where set: state and tracking events (most of them) have none and skip the index (0032)
    __table_args__ = (
        Index(
            "ix_messageevent_provider_event_id",
            "provider_event_id",
            unique=True,
            postgresql_where=_PROVIDER_EVENT,
            sqlite_where=_PROVIDER_EVENT,
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    # indexed, not a foreign key: events are appended only for messages just read or written in the
    # same transaction, and messages are never deleted (migration 0009)
    message_id: int = Field(index=True)
    kind: str = Field(max_length=32)  # a state name, or open | click | unsubscribe | ...
    from_state: str = Field(default="", max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    provider_event_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class Suppression(SQLModel, table=True):
    """An address donebox must not send to, and why."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    reason: str = Field(max_length=32)  # bounce | complaint | unsubscribe | manual
    # the team whose mail caused it (or whose admin added it); None: instance-wide, an operator's to lift
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    expires_at: datetime | None = _ts()  # None: for good; past it the entry no longer suppresses
    # what caused it: the event's kind and provider id ('' when none) and the message it was about
    event_kind: str = Field(default="", max_length=32)
    event_id: str = Field(default="", max_length=255)
    message_id: int | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token for /api/: only its sha256 is stored; ``team_id`` None means every team."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    token_sha256: str = Field(max_length=64, unique=True)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    # what it may do, space-separated: send, read, manage (app.relay.api_tokens.SCOPES)
    scopes: str = Field(default="send read manage", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    revoked_at: datetime | None = _ts()


class User(SQLModel, table=True):
    """A person who signs in; their Members are the rows whose email matches (one per team)."""

    __tablename__ = "appuser"  # "user" is reserved in PostgreSQL
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)  # lower-case
    is_operator: bool = False  # runs the instance: every team, every message
    session_epoch: int = 0  # sessions carry it; signing out bumps it, ending every session of the user
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    last_signin_at: datetime | None = _ts()


class SigninToken(SQLModel, table=True):
    """A magic sign-in link: signed, single-use (``used_at``), valid until ``expires_at``."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, index=True)
    nonce_sha256: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = _ts()
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class TeamSettings(SQLModel, table=True):
    """A team's options beyond its schedule; a team without a row has the defaults."""

    team_id: int = Field(foreign_key="team.id", primary_key=True)
    digest_enabled: bool = True  # send the morning digest at all
    digest_include_quiet: bool = True  # list members who wrote nothing
    # open pixel and rewritten links in the team's reminders and digests; off unless an admin turns it
    # on (the one switch: the check-in producers stamp it on each outbox row, the relay obeys the row)
    tracking: bool = False
    # the domain of the team's reply+ addresses: '' means REPLY_DOMAIN; else one of INBOUND_DOMAINS
    reply_domain: str = Field(default="", max_length=253)
    # the questions a reminder asks, one a line (1-5); '' asks the one default question
    questions: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # nudges: a second reminder this many hours before the digest that covers the day, to members
    # who have not replied; 0 is off. Never at or after ``nudge_cutoff`` (the member's local HH:MM).
    nudge_hours: int = 0
    nudge_cutoff: str = Field(default="21:00", max_length=5)
    # the weekly participation summary to the team's admins (app.checkins.summary); off unless turned on
    participation_summary: bool = False
    # the member a blocker notifies instead of the admins, who may resolve blockers as an admin does;
    # None: the admins. Not a foreign key: an owner who left the team counts as none (app.checkins.notices)
    blocker_owner_id: int | None = None


class ChatDestination(SQLModel, table=True):
    """A chat channel a team's digest is posted to through an incoming webhook (app.relay.chat);
    outbox rows name it ``chat:<id>`` in ``to_addr``, never by its URL, which is a secret."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    service: str = Field(max_length=16)  # slack | teams | googlechat | mattermost | discord
    url: str = Field(sa_column=Column(Text, nullable=False))  # the webhook URL: shown masked
    label: str = Field(default="", max_length=200)  # what the team calls it ("#standup")
    blockers: bool = False  # also post each new blocker entry, as it is written (app.checkins.chat)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class Notice(SQLModel, table=True):
    """Someone to tell about an entry: a member it @mentions, or for a blocker the team's blocker owner
    (TeamSettings.blocker_owner_id) or else its admins.

    Written with the entry (app.checkins.entries, same transaction); the scheduler's tick makes one
    outbox row per recipient, kind and ``hour`` once that hour is over (app.checkins.notices).
    ``entry_id`` is not a foreign key: an entry deleted before the email goes is left out of it."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # mention | blocker
    member_id: int = Field(foreign_key="member.id")  # who is told
    entry_id: int
    hour: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))  # the UTC hour it was written in
    # '' waiting | sent (outbox_id says which message) | paused | inactive | gone (entry deleted)
    outcome: str = Field(default="", max_length=16)
    outbox_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))

    __table_args__ = (Index("ix_notice_waiting", "outcome", "hour"),)


class WebhookToken(SQLModel, table=True):
    """A signed webhook token already used (Mailgun): a replay of it is refused."""

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    token: str = Field(max_length=255, unique=True)
    seen_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), index=True))


class ImapCursor(SQLModel, table=True):
    """Where the IMAP poller is in one mailbox: its UIDVALIDITY and the last UID committed."""

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=500, unique=True)  # user@host/folder
    uidvalidity: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, default=0)
    )  # 32-bit unsigned
    last_uid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class MemberPause(SQLModel, table=True):
    """A member's pause (vacation): no reminder and no digest on local days first_day..last_day."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    first_day: date
    last_day: date  # inclusive
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class Sender(SQLModel, table=True):
    """A way out: a transport URL (smtp://, sendgrid://, maildir:) with a weight; the URL holds secrets."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    url: str = Field(sa_column=Column(Text, nullable=False), repr=False)
    weight: int = 1  # share of traffic under the spread strategy
    enabled: bool = True
    rate_per_s: float = 0.0  # messages per second across all workers; 0 = no limit
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


class PassThrough(SQLModel, table=True):
    """The relay's pass-through mode, one row (id 1) every worker of a fleet reads: written by the
    scheduler's tick and the operator (app.relay.passthrough)."""

    id: int = Field(default=1, primary_key=True)
    mode: str = Field(default="auto", max_length=8)  # auto | on | off (the operator's choice)
    active: bool = False  # bulk mail goes out untracked now
    changed_at: datetime | None = _ts()  # when ``active`` last changed
    oldest_wait_s: int | None = None  # the oldest due message's wait at the last evaluation; None: none
    threshold_s: int = 0  # PASS_THROUGH_AFTER_S of the last evaluation
    evaluated_at: datetime | None = _ts()
    switched_on: int = 0  # times it went from inactive to active
    passed: int = 0  # messages sent untracked because of it
    mode_by: str = Field(default="", max_length=320)  # who set the mode (an operator, a token, the CLI)
    mode_at: datetime | None = _ts()


class TeamRelay(SQLModel, table=True):
    """How a team's mail leaves: its senders in order and the strategy (tracking is TeamSettings')."""

    team_id: int = Field(foreign_key="team.id", primary_key=True)
    senders: str = Field(default="", max_length=1000)  # sender names, comma-separated, in order
    strategy: str = Field(default="spread", max_length=16)  # spread | failover
    # application mail (API, SMTP) the team may submit per hour and per day: None = TEAM_QUOTA_HOUR
    # / TEAM_QUOTA_DAY, 0 = unlimited (app.relay.quotas.team_limits)
    quota_hour: int | None = None
    quota_day: int | None = None


class Route(SQLModel, table=True):
    """Recipient domains (``hotmail.com``, ``*.gov``) that go through given senders, overriding spread."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)  # None: every team
    domain: str = Field(max_length=255)
    senders: str = Field(max_length=1000)  # sender names, comma-separated, in order


class WebhookEndpoint(SQLModel, table=True):
    """A URL of a team's that donebox POSTs signed events to (app.relay.webhooks)."""

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    url: str = Field(max_length=2000)
    # signs every POST (HMAC-SHA256); shown once, when the endpoint is created
    secret: str = Field(max_length=100, repr=False)
    kinds: str = Field(max_length=500)  # the event kinds it wants, space-separated (webhooks.KINDS)
    description: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))


_PENDING = text("state = 'pending'")


class WebhookDelivery(SQLModel, table=True):
    """One event owed to one endpoint: written in the transaction of the event's cause, then POSTed
    by jobs (app.relay.webhooks) until delivered or its retry_until passes (failed)."""

    __table_args__ = (
        # the sweeper finds due deliveries; delivered and failed rows stay out of this index
        Index("ix_webhook_due", "next_attempt_at", postgresql_where=_PENDING, sqlite_where=_PENDING),
    )
    id: int | None = Field(default=None, primary_key=True)
    # not a foreign key: removing an endpoint keeps its log until retention (webhooks.remove)
    endpoint_id: int = Field(index=True)
    team_id: int = Field(index=True)
    kind: str = Field(max_length=32)  # one of webhooks.KINDS
    message_id: int | None = None  # the outbound message of a message event
    # the JSON body: built when the event is emitted (inbound, entries) or at the first attempt
    # (message events, from the message row and ``detail``); every attempt and replay sends it as is
    payload: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    state: str = Field(default="pending", max_length=16)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    lease_until: datetime | None = _ts()  # a job holds it until then
    retry_until: datetime | None = _ts()  # past it, a failed attempt gives up (WEBHOOK_RETRY_HOURS)
    last_status: int | None = None  # the HTTP status of the last attempt
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), index=True))
    delivered_at: datetime | None = _ts()


class WebhookAttempt(SQLModel, table=True):
    """Append-only log of the POSTs of a delivery: what came back and how long it took."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime()))
    status: int | None = None  # HTTP status; None: no response (connection refused, timeout)
    latency_ms: int = 0
    response: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # an excerpt
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
