"""``deliver_many(ids)``: the relay as a list of named steps.

STEPS send a message the relay renders (a template and its context); COMPOSED_STEPS send a
message an application composed (``body_id``: the full send API, SMTP submission) from its stored
bytes, adding only what the relay owns.

A batch of messages is claimed in one statement, and the suppression list read
for their recipients right after; then, one message after another, each step takes the
Delivery and either returns None (go on) or an Outcome that ends the attempt
with a state. Reading STEPS top to bottom tells the policy. The outcomes are
recorded (committed) together, those of all the process's threads in one statement (``Outcomes``).

A transport's ``send`` takes one of the process's send slots (app/relay/slots.py),
given back once the outcome is committed: a kill -9 duplicates at most SEND_SLOTS
messages per process.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr

from sqlalchemy import Row, and_, func, or_
from sqlmodel import Session

from app import logs
from app.db import get_engine, session
from app.errors import PermanentSendError, RenderError, TransientSendError, UnregisteredKind
from app.metrics import families as metrics
from app.models import ChatDestination, OutboundMessage, utcnow
from app.relay import (
    chat,
    composed,
    domains,
    limits,
    outbox,
    passthrough,
    render,
    routing,
    slots,
    suppressions,
    tracking,
)
from app.relay.dkim import sign_raw
from app.relay.render import Parts, ascii_address, build_message
from app.relay.shared_renders import SharedRenders
from app.relay.transports import transport_for
from app.relay.transports.base import Outgoing, SendResult
from app.relay.transports.webhook import Post, WebhookTransport
from app.settings import Settings, get_settings
from parsers.html_bounds import bound_html

log = logging.getLogger("donebox.relay")

# batches a worker process works on at once, whatever its threads (as jobs.actors' inbound
# batches): a batch is mostly rendering, signing and building, which hold the GIL, so more at once
# only share one core between more of them, and more of the CPU goes to their switching. A batch
# waiting on its sender (the rate limit, a send slot, the server's replies) gives its turn up
# meanwhile (``_Turns.away``): the threads a process runs for slow servers still wait on them
# together.
BATCHES_AT_ONCE = 2


class _Turns:
    """The process's BATCHES_AT_ONCE turns at working on a batch, and which threads hold one.

    Turns are handed out in the order they were asked for: a batch back from its sender queues
    behind the batches already waiting. A semaphore let the batches at work take their turn back
    after every send ahead of a batch waiting to start, and a small team's batch, claimed between
    a flood's, waited until most of the flood had gone out."""

    def __init__(self, n: int):
        self._free = n
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._mine = threading.local()

    def holding(self) -> bool:
        return getattr(self._mine, "held", False)

    def _acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            handed = threading.Event()
            self._waiting.append(handed)
        handed.wait()  # _release hands its turn straight over

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    @contextmanager
    def batch(self):
        """Hold a turn for a batch (nested: the outer batch's)."""
        if self.holding():
            yield
            return
        self._acquire()
        self._mine.held = True
        try:
            yield
        finally:
            self._mine.held = False
            self._release()

    @contextmanager
    def away(self):
        """Give this thread's turn up while it waits on its sender, then wait for one again (no
        turn held: nothing to give up). A thread waits for a turn here holding nothing another
        thread's turn waits on: a writer of outcomes never takes a turn, so it cannot be one."""
        if not self.holding():
            yield
            return
        self._mine.held = False
        self._release()
        try:
            yield
        finally:
            self._acquire()
            self._mine.held = True


turns = _Turns(BATCHES_AT_ONCE)

MAX_AGE = timedelta(hours=72)  # transient failures stop being retried after this
MAX_BACKOFF_S = 6 * 3600
MAX_SENDERS_PER_ATTEMPT = 3  # senders tried in one attempt before the message is deferred
CLAIM_BATCH = 20  # messages claimed in one statement, then sent one after another
OUTCOME_WAIT_S = 1.0  # an outcome waits to be written with others about this long at most
_clock = time.monotonic  # Outcomes' clock (tests move it)


@dataclass
class Outcome:
    """How an attempt ended: the state to move to and why."""

    state: str
    detail: str = ""
    retry_in_s: float = 0.0


@dataclass
class Delivery:
    """One attempt at one message, filled in step by step."""

    message: Row  # the claimed OutboundMessage row (read-only)
    settings: Settings
    transport: object  # MAIL_TRANSPORT's, used while no Sender is configured; None: none
    now: datetime
    context: dict = field(default_factory=dict)
    text: str = ""
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)  # original URLs of tracked links, in token order
    parts: Parts | None = None
    raw: bytes = b""  # the message as sent: serialized once, then only prepended to (DKIM)
    sender: str = ""  # the Sender row's name that carried (or last tried) it; "" for MAIL_TRANSPORT
    result: SendResult | None = None
    suppressed: str = ""  # the suppression list's reason for the recipient, read when it was claimed
    slot: slots.Slots | None = None  # the send slot it holds (sent, not yet recorded)
    handed: bytes | None = None  # the bytes last handed to a transport's send (kept with the outcome)
    passed_through: bool = False  # its tracking was skipped: pass-through (noted with the outcome)
    renders: RenderBatch | None = None  # its batch's render session (None: one of its own)
    shared: tuple | None = None  # the key of the shared render its text and HTML are (None: its own)
    outcomes: Outcomes | None = None  # its batch's outcomes not yet written (None: its own, at once)
    woke: tuple[str, str] | None = None  # (sender, '' or domain): its success closed that circuit
    # the breaker's closings before an attempt that senders' faults deferred (None: not so deferred)
    held: int | None = None


# whose bytes are never kept: a sign-in link is a credential until it expires
UNKEPT_KINDS = frozenset({"signin"})
# a composed message's copies are kept up to this size (text and HTML mail): past it, each
# recipient's copy (attachments and all) would multiply the stored body by the recipients, and
# compressing it would be most of the message's cost (a 140 KB message: 2 to 4 times slower, measured);
# its OutboundBody shows what was sent
COMPOSED_KEPT_MAX_BYTES = 64 * 1024
# MAIL_TRANSPORT's name to the breaker, as to the send metrics (``_send``): the one sender while no
# Sender row exists, so never a row's
DEFAULT_SENDER = "default"
UNREGISTERED_RETRY_S = 300.0  # a kind no package registered: waits for a process that has it


def skip_if_suppressed(d: Delivery) -> Outcome | None:
    reason = d.suppressed  # read right after this attempt's claim
    if suppressions.stops(reason, d.message.kind):
        return Outcome("suppressed", f"address suppressed ({reason})")
    return None


shared_renders = SharedRenders()


def reset() -> None:
    """Forget shared renders (tests: another test's database)."""
    shared_renders.clear()


def _shared_key(d: Delivery) -> tuple | None:
    m = d.message
    # a kind registered ``shared`` has the same context for every recipient of a team; rows of one
    # batch share created_at, so one batch renders once and a later batch renders afresh
    if not render.registered(m.kind).shared:
        return None
    return (d.settings.database_url, m.kind, m.template, m.team_id, m.context, m.created_at)


class RenderBatch:
    """The session a claimed batch's messages are rendered in, opened at the first render: what
    their context builders read is read for all of them first (app.relay.render.prefetch: a few
    set queries per kind, not a few queries per message), except for messages whose shared render
    is kept already (app.relay.shared_renders)."""

    def __init__(self, messages: list[Row], settings: Settings):
        self.messages, self.settings = messages, settings
        self._s: Session | None = None
        self._missed: set[tuple] = set()  # shared renders Redis did not have when asked

    def session(self) -> Session:
        if self._s is None:
            self._s = Session(get_engine(), expire_on_commit=False)
            wanted = [
                m
                for m in self.messages
                if m.body_id is None and m.kind != chat.CHAT_KIND and not self._kept(m)
            ]
            try:
                render.prefetch(self._s, wanted, self.settings)
            except Exception:  # noqa: BLE001 - the builders read for themselves, as without a batch
                log.warning("the batch's render reads failed; each message reads its own", exc_info=True)
                self.failed()
            else:
                self.done()
        return self._s

    def done(self) -> None:
        """End the session's transaction (its connection back to the pool; SQLite's write lock
        given up): what it read stays, as with app.db.session's ``expire_on_commit=False``."""
        if self._s is not None:
            self._s.commit()

    def _kept(self, m: Row) -> bool:
        """Whether ``m`` has a shared render kept (it reads nothing: no prefetch for it)."""
        try:
            key = _shared_key(Delivery(message=m, settings=self.settings, transport=None, now=m.created_at))
        except UnregisteredKind:
            return False
        return key is not None and self._asked(shared_renders.has, key)

    def shared(self, key: tuple) -> tuple[dict, str, str] | None:
        """The shared render of ``key``: Redis is asked once per batch; after a miss, only what
        this process has kept since (a message of this batch rendered it)."""
        return self._asked(shared_renders.get, key)

    def _asked(self, ask: Callable, key: tuple):
        if key in self._missed:
            return ask(key)
        found = ask(key, self.settings.redis_url)
        if not found:
            self._missed.add(key)
        return found

    def failed(self) -> None:
        """A render failed in the session: roll it back, so the next message reads afresh."""
        if self._s is not None:
            render.forget_kept(self._s)
            self._s.rollback()

    def close(self) -> None:
        if self._s is not None:
            self._s.close()
            self._s = None


def _render(d: Delivery) -> tuple[dict, str, str]:
    if d.renders is None:
        with session() as s:
            return render.render_message(s, d.message, d.settings)
    try:
        rendered = render.render_message(d.renders.session(), d.message, d.settings)
    except BaseException:
        d.renders.failed()
        raise
    d.renders.done()
    return rendered


def render_body(d: Delivery) -> Outcome | None:
    """The message's context, text and HTML (app.relay.render.render_message, in its batch's
    session), or a team's shared render of the same batch (app.relay.shared_renders)."""
    redis_url = d.settings.redis_url
    try:
        key = _shared_key(d)
        if key is None:
            hit = None
        else:
            hit = d.renders.shared(key) if d.renders else shared_renders.get(key, redis_url)
        if hit:
            d.context, d.text, d.html = hit
        else:
            d.context, d.text, d.html = _render(d)
            if key:
                d.context = shared_renders.put(key, d.context, d.text, d.html, redis_url)
        d.shared = key
    except UnregisteredKind as e:
        return Outcome("deferred", str(e), retry_in_s=UNREGISTERED_RETRY_S)
    except RenderError as e:
        return Outcome("failed", str(e))
    d.headers = dict(d.context.get("_headers", {}))
    own = render.registered(d.message.kind).headers
    if own is not None:  # a shared render's per-recipient headers
        d.headers.update(own(d.message, d.context, d.settings))
    return None


# check-in mail: always List-Unsubscribe, tracked or not
LIST_KINDS = ("digest", "reminder", "nudge", "mention", "blocker", "participation")


def tracks(d: Delivery, asked: bool) -> bool:
    """Whether this attempt adds tracking its producer ``asked`` for: not while pass-through skips
    it for bulk mail, which is then marked on ``d`` (``record`` notes it on the timeline)."""
    if asked and passthrough.skips_tracking(d.message, d.settings):
        d.passed_through = True
        return False
    return asked


def add_tracking(d: Delivery) -> Outcome | None:
    """The open pixel and rewritten links when the message's producer said so (``_track`` in the
    stored context, decided when the row was made: the check-in producers stamp the team's
    setting) and pass-through does not skip them, and List-Unsubscribe on recurring and tracked
    mail (kept when pass-through skipped the tracking)."""
    m, st = d.message, d.settings
    if tracks(d, d.context.get("_track") is True):
        if d.shared is not None:  # where the tokens go, found once for every recipient of the render
            html = d.html
            plan = shared_renders.derived(
                d.shared, f"plan {st.base_url}", lambda: tracking.plan_of(html, st.base_url).packed()
            ).plan()
        else:  # a render of its own (a reminder): without a parse when it has no link
            plan = tracking.linkless_plan(d.html, st.base_url)
        d.html, d.links = tracking.add_tracking(
            d.html, base_url=st.base_url, secret=st.secret_key, message_id=m.id, plan=plan
        )
    if m.kind in LIST_KINDS or d.links or d.passed_through:
        d.headers.update(
            tracking.unsubscribe_headers(
                base_url=st.base_url, secret=st.secret_key, reply_domain=st.reply_domain, message_id=m.id
            )
        )
    return None


def build(d: Delivery) -> Outcome | None:
    """The MIME message, built and serialized once; every later step works on these bytes."""
    m = d.message
    name, addr = parseaddr(m.from_addr) if m.from_addr else ("donebox", d.settings.mail_from)
    try:
        d.raw, d.parts = build_message(
            from_addr=addr or m.from_addr,
            from_name=name,
            to=m.to_addr,
            subject=m.subject,
            text=d.text,
            html=d.html,
            message_id=m.message_id,
            date=d.now,
            headers=d.headers,
        )
    except RenderError as e:
        return Outcome("failed", str(e))
    return None


# ---------------------------------------------------------------- composed messages

BODY_GONE = "its body is gone (purged after RETENTION_DAYS): it can no longer be sent"
RELAY_OWNED = frozenset({"bcc"})  # never sent on: who else got it is the sender's secret


def load_body(d: Delivery) -> Outcome | None:
    """The composed message's stored bytes (app.relay.composed), without any Bcc header."""
    m = d.message
    with session() as s:
        raw = composed.load(s, m.body_id)
    if raw is None:
        return Outcome("failed", f"message {m.id}: {BODY_GONE}")
    d.context = json.loads(m.context or "{}")
    d.raw = composed.without(raw, RELAY_OWNED)
    return None


def track_html_parts(d: Delivery) -> Outcome | None:
    """The open pixel and rewritten links in each HTML part when ``_track`` (the team's setting,
    stamped when the row was made) and pass-through does not skip them (``tracks``); the links
    recorded in order across parts. HTML past what donebox will parse is sent untracked."""
    if not tracks(d, d.context.get("_track") is True):
        return None
    st, links = d.settings, d.links

    def track(html: str) -> str | None:
        if bound_html(html).notes:
            return None
        tracked, found = tracking.add_tracking(
            html, base_url=st.base_url, secret=st.secret_key, message_id=d.message.id, first_link=len(links)
        )
        links.extend(found)
        return tracked

    d.raw = composed.edit_html(d.raw, track)
    return None


def add_relay_headers(d: Delivery) -> Outcome | None:
    """What the relay owns on top of the application's headers: our Message-ID and a Date when the
    message has none, List-Unsubscribe when it is tracked (and has none of its own)."""
    m, st = d.message, d.settings
    present = composed.header_names(d.raw)
    headers: list[tuple[str, str]] = []
    if "message-id" not in present:
        headers.append(("Message-ID", m.message_id))
    if "date" not in present:
        headers.append(("Date", format_datetime(d.now)))
    if d.context.get("_track") is True and "list-unsubscribe" not in present:
        headers += tracking.unsubscribe_headers(
            base_url=st.base_url, secret=st.secret_key, reply_domain=st.reply_domain, message_id=m.id
        ).items()
    d.raw = composed.add_headers(d.raw, headers)
    d.parts = Parts(
        from_addr=m.from_addr or st.mail_from,
        from_name="",
        to=m.to_addr,
        to_name="",
        subject=m.subject,
        text="",
        html="",
        message_id=m.message_id,
        composed=True,
    )
    return None


def sign(d: Delivery) -> Outcome | None:
    """A DKIM signature per key of the From domain (the message's ``from_addr``, or MAIL_FROM's)."""
    domain = domains.domain_of(d.message.from_addr or d.settings.mail_from)
    keys = domains.signing.get(domain, d.settings).keys
    d.raw = sign_raw(d.raw, keys, now=int(d.now.timestamp()))
    return None


def _outcome(e: TransientSendError | PermanentSendError) -> Outcome:
    if isinstance(e, TransientSendError):
        return Outcome("deferred", str(e), retry_in_s=e.retry_in_s)
    return Outcome("bounced" if e.bounce else "failed", str(e))


def _send(d: Delivery, transport, outgoing: Outgoing | Post) -> SendResult:
    """``transport.send`` in one of the process's send slots, which stays held (until its outcome
    is committed) when it is accepted; a failure gives it back at once. With no slot free, the
    outcomes this thread's batch holds slots for are written first, then it waits for one. The
    batch's turn (``turns``) is given up meanwhile."""
    with turns.away():
        return _send_in_slot(d, transport, outgoing)


def _send_in_slot(d: Delivery, transport, outgoing: Outgoing | Post) -> SendResult:
    slot = slots.send_slots(d.settings)
    if not slot.acquire(blocking=False):
        if d.outcomes is not None:  # never wait for a slot while holding some (two threads would wait
            d.outcomes.flush()  # for each other's for good)
        slot.acquire()
    d.handed = outgoing.raw
    # the sender label: a Sender row's name, "chat" for chat posts, "default" for MAIL_TRANSPORT
    label = "chat" if isinstance(outgoing, Post) else d.sender or DEFAULT_SENDER
    started = time.perf_counter()
    try:
        result = transport.send(outgoing)
    except BaseException as e:
        slot.release()
        metrics.sent(label, _send_result(e), time.perf_counter() - started)
        raise
    metrics.sent(label, "sent", time.perf_counter() - started)
    d.slot = slot
    return result


def _send_result(e: BaseException) -> str:
    """The ``result`` label of a send that raised."""
    if isinstance(e, TransientSendError):
        return "transient"
    return "permanent" if isinstance(e, PermanentSendError) else "error"


def _release_slot(d: Delivery) -> None:
    if d.slot is not None:
        d.slot, slot = None, d.slot
        slot.release()


def transmit(d: Delivery) -> Outcome:
    """Hand the message to the default transport, or to routed senders with failover between them.
    The envelope sender is the message's VERP address (app.relay.verp), so a bounce finds it."""
    m = d.message
    outgoing = Outgoing(
        mail_from=domains.envelope_sender(m.from_addr, m.id, d.settings),
        rcpt_to=ascii_address(m.to_addr, utf8_local=m.body_id is not None),  # SMTPUTF8 when composed
        raw=d.raw,
        parts=d.parts,
        outbound_id=m.id,
    )
    config = routing.config_cache(d.settings).get()
    if not config.senders:  # nothing configured: MAIL_TRANSPORT, the embedded default
        if d.transport is None:  # MAIL_TRANSPORT=none (production): wait for a sender, never pretend
            return Outcome("deferred", routing.NO_SENDER, retry_in_s=d.settings.breaker_cooldown_s)
        return _through_default(d, outgoing)
    breaker = routing.breaker(d.settings)
    closings = breaker.closings  # read first: a circuit that closes from here on may miss this deferral
    domain = outgoing.rcpt_domain
    tried: set[str] = set()
    last: TransientSendError | PermanentSendError | None = None
    while len(tried) < MAX_SENDERS_PER_ATTEMPT:
        sender = routing.pick(config, breaker, m.team_id, domain, exclude=frozenset(tried))
        if sender is None:
            break
        tried.add(sender.name)
        d.sender = sender.name
        try:
            transport = transport_for(sender.url, d.settings)
            with turns.away():
                limits.wait_turn(d.settings, sender)
            d.result = _send(d, transport, outgoing)
        except ValueError as e:  # a sender URL that cannot work: fail over, and let the breaker see it
            last = TransientSendError(f"sender {sender.name}: {e}", connection=True)
        except (TransientSendError, PermanentSendError) as e:
            if not (e.connection or e.block):
                return _outcome(e)  # about the message or its recipient: no other sender would do better
            last = e
        else:
            _went_through(d, breaker, sender.name, domain)
            return Outcome("sent", f"{sender.name} {d.result.provider_id}".strip())
        breaker.failure(sender.name, domain, connection=last.connection)
    return _senders_fault(d, closings, domain, d.sender, last)


def _went_through(d: Delivery, breaker: routing.Breaker, sender: str, domain: str) -> None:
    """``sender`` took the message: its circuits close. When one was open, this was the probe: the
    mail that circuit's outage deferred is woken with this outcome (``Outcomes._wake``)."""
    if (closed := breaker.success(sender, domain)) is not None:
        d.woke = (sender, closed)


def _senders_fault(
    d: Delivery, closings: int, domain: str, sender: str = "", error: Exception | None = None
) -> Outcome:
    """The deferral when no sender was healthy (``error`` None), or when each one tried failed on
    its own side (down, or blocked for this domain; ``error`` the last one's): not the message's
    fault. It keeps the breaker's ``closings`` read before the attempt, for ``Outcomes._wake_late``.
    A sender that could not be reached is tried again when its circuit lets a probe through
    (BREAKER_COOLDOWN_S), not after the transport's fixed minute: a short outage delays mail little."""
    d.held = closings
    cooldown_s = d.settings.breaker_cooldown_s
    if error is None:
        return Outcome("deferred", f"{routing.NO_HEALTHY}{domain}", retry_in_s=cooldown_s)
    retry_in_s = getattr(error, "retry_in_s", 60.0)
    if error.connection:
        retry_in_s = min(retry_in_s, cooldown_s)
    return Outcome("deferred", f"{sender}: {error}", retry_in_s=retry_in_s)


def _through_default(d: Delivery, outgoing: Outgoing) -> Outcome:
    """MAIL_TRANSPORT as the one sender, behind the breaker as a Sender is: while it cannot be
    reached, mail is deferred without waiting out a connection timeout each, and the probe that
    gets through wakes what the outage deferred. Blocks and the recipient's refusals are the
    message's outcome, as ever (no other sender could do better)."""
    breaker = routing.breaker(d.settings)
    closings = breaker.closings  # read first, as in transmit
    domain = outgoing.rcpt_domain
    if not breaker.allow(DEFAULT_SENDER, domain):
        return _senders_fault(d, closings, domain)
    try:
        d.result = _send(d, d.transport, outgoing)
    except (TransientSendError, PermanentSendError) as e:
        if not (isinstance(e, TransientSendError) and e.connection):
            return _outcome(e)
        breaker.failure(DEFAULT_SENDER, domain, connection=True)
        return _senders_fault(d, closings, domain, DEFAULT_SENDER, e)
    _went_through(d, breaker, DEFAULT_SENDER, domain)
    return Outcome("sent", f"{d.result.transport} {d.result.provider_id}".strip())


Step = Callable[[Delivery], Outcome | None]
STEPS: tuple[Step, ...] = (
    skip_if_suppressed,
    render_body,
    add_tracking,
    build,
    sign,
    transmit,
)
# a composed message (body_id): its bytes as the application gave them, plus what the relay owns
COMPOSED_STEPS: tuple[Step, ...] = (
    skip_if_suppressed,
    load_body,
    track_html_parts,
    add_relay_headers,
    sign,
    transmit,
)


chat_transport = WebhookTransport()  # the process's; tests may replace it (a shorter timeout)


def post_chat(d: Delivery) -> Outcome:
    """A chat post (app/relay/chat.py): the stored post in its destination's service's format, POSTed
    to the destination's webhook. A destination removed since the row was made fails it."""
    m = d.message
    dest_id = chat.destination_id(m.to_addr)
    with session() as s:
        dest = s.get(ChatDestination, dest_id) if dest_id else None
        if dest is not None:
            s.expunge(dest)
    if dest is None or dest.team_id != m.team_id:
        return Outcome("failed", f"chat destination {m.to_addr} no longer exists")
    try:
        body = chat.payload(dest.service, chat.Post.from_json(m.context))
    except ValueError as e:
        return Outcome("failed", str(e))
    try:
        d.result = _send(d, chat_transport, Post(dest.url, body, m.id))
    except (TransientSendError, PermanentSendError) as e:
        return _outcome(e)
    return Outcome("sent", f"{dest.service} {d.result.detail}")


# a chat post is not mail: no suppression list, rendering, tracking, MIME or DKIM
CHAT_STEPS: tuple[Step, ...] = (post_chat,)


def steps_for(message) -> tuple[Step, ...]:
    """The steps a message goes through: CHAT_STEPS for chat posts, COMPOSED_STEPS for a message an
    application composed, else STEPS (rendered from its template)."""
    if message.kind == chat.CHAT_KIND:
        return CHAT_STEPS
    return COMPOSED_STEPS if message.body_id is not None else STEPS


def backoff_s(attempts: int, base_s: float) -> float:
    """Exponential backoff with full jitter, capped at MAX_BACKOFF_S."""
    return random.uniform(base_s, min(MAX_BACKOFF_S, base_s * 2 ** max(0, attempts - 1)) + base_s)


def _final(d: Delivery, outcome: Outcome) -> outbox.Finish:
    """What ``outbox.finish`` writes for the attempt's outcome: its final state (deferred past its
    max age or expiry becomes failed), the error, the bytes kept and the row's values."""
    m = d.message
    values: dict = {}
    error = "" if outcome.state == "sent" else outcome.detail
    state = outcome.state
    if d.sender:
        values["sender"] = d.sender
    if d.links:
        values["links"] = json.dumps(d.links)
    if state == "sent":
        values["sent_at"] = d.now
        values["provider_id"] = d.result.provider_id[:255]
        values["provider_response"] = d.result.response
    if state == "deferred":
        retry_at = d.now + timedelta(seconds=backoff_s(m.attempts, max(outcome.retry_in_s, 1.0)))
        expired = m.expires_at is not None and retry_at >= m.expires_at
        if retry_at - m.created_at > MAX_AGE or expired:
            state = "failed"
            error = f"gave up: {outcome.detail}"
        else:
            values["next_attempt_at"] = retry_at
    # the bytes a transport was handed are kept once the attempt is final (a deferred message is
    # built again, with a new Date and signature, on its next attempt); never a sign-in link
    raw = d.handed if state != "deferred" and m.kind not in UNKEPT_KINDS else None
    if raw is not None and m.body_id is not None and len(raw) > COMPOSED_KEPT_MAX_BYTES:
        raw = None
    return outbox.Finish(m.id, state, d.now, error, raw, values)


def _alone(d: Delivery, f: outbox.Finish) -> bool:
    """Whether the outcome writes more than its row and event (``record`` on its own)."""
    return f.to == "bounced" or (d.passed_through and f.to == "sent")


def record(s: Session, d: Delivery, outcome: Outcome, f: outbox.Finish | None = None) -> str:
    """Write the attempt's final state (the caller commits); deferred past its max age or expiry
    becomes failed. ``f``: what ``_final`` made of the outcome already (its retry time drawn once)."""
    m = d.message
    f = _final(d, outcome) if f is None else f
    state, error = f.to, f.error
    if d.passed_through and state == "sent":  # on the timeline before the outcome it explains
        passthrough.note(s, m.id, now=d.now)
    moved = outbox.finish(s, m.id, state, now=d.now, error=error, raw=f.raw, **f.values)
    if moved and state == "bounced":  # the receiving server refused the address itself
        detail = f"{error[:500]} (message {m.id})"
        suppressions.add(
            s,
            m.to_addr,
            "bounce",
            detail=detail,
            team_id=m.team_id,
            event_kind="bounced",
            message_id=m.id,
            now=d.now,
        )
    return state


def attempt(d: Delivery) -> Outcome:
    """Run the message's steps (``steps_for`` it) until one of them ends the attempt."""
    for step in steps_for(d.message):
        try:
            outcome = step(d)
        except Exception as e:  # noqa: BLE001 - an unexpected failure is recorded, never lost
            outcome = Outcome("deferred", f"{step.__name__}: {type(e).__name__}: {e}", retry_in_s=60)
        if outcome is not None:
            return outcome
    raise AssertionError("transmit always ends the steps")


def _suppressions(s: Session, messages: list[Row], now: datetime) -> dict[str, str]:
    return suppressions.reasons(s, (m.to_addr for m in messages), now=now)


def deliver_many(
    message_ids: list[int], *, transport, settings: Settings | None = None, now: datetime | None = None
) -> dict[int, str]:
    """Claim the still-queued messages among ``message_ids`` (one statement), then run STEPS and
    record each one in turn; {id: final state of its attempt, or 'not-claimed'}.

    One database connection serves the batch: the claim, the suppression check of the claimed
    recipients, then each message's outcome in its own transaction, committed before the next
    message is sent. A message whose lease is half gone before its turn (a slow sender or a rate
    limit held the batch up) is not started: it is deferred, due at once, so no sweeper retries
    it while this worker still sends it. ``transport`` carries the
    messages when no Sender is configured (MAIL_TRANSPORT's; None: they are deferred until one is);
    ``now`` fixes the clock (tests).
    """
    settings = settings or get_settings()
    states = dict.fromkeys(message_ids, "not-claimed")
    with turns.batch(), get_engine().connect() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:
            # there the claim and each outcome are one statement, a complete compare-and-set on its
            # own: no BEGIN and COMMIT round trips around them. Nor a wait for the WAL flush: a
            # commit is safe from a kill -9 of this worker once PostgreSQL has it; what a crash of
            # PostgreSQL itself could take back (its last fraction of a second) is an outcome, which
            # only makes the message go out again, never lost.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            # and one plan for each statement, made once: outbox.finish_many's arrays of a varying
            # length would otherwise be planned again at every run (a custom plan looks cheaper
            # for a short array than the generic one), which took more of PostgreSQL's time than
            # the statement's execution
            conn.exec_driver_sql("SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan")
        try:
            _deliver_batch(conn, message_ids, states, transport=transport, settings=settings, now=now)
        except BaseException:
            conn.invalidate()  # the pool never gets back a connection in an unknown state
            raise
        if pg:
            conn.exec_driver_sql("RESET synchronous_commit; RESET plan_cache_mode")
    return states


def _deliver_batch(conn, message_ids, states, *, transport, settings, now) -> None:
    with Session(bind=conn, expire_on_commit=False) as s:
        messages = outbox.claim_many(s, message_ids, now=now or utcnow(), lease_s=settings.lease_s)
        suppressed = _suppressions(s, messages, now or utcnow())
        s.commit()
        renders = RenderBatch(messages, settings)
        try:
            passed = _deliver_claimed(s, messages, suppressed, renders, states, transport, settings, now)
        finally:
            renders.close()
        if passed:
            passthrough.count_passed(s, passed)
            s.commit()


class _Waiting:
    """The process's outcomes that wait to be written, of every thread's batch (by database URL),
    and the databases whose waiting outcomes a thread is writing: one thread writes at a time,
    all that wait, in one statement on PostgreSQL."""

    def __init__(self):
        self.cond = threading.Condition(threading.Lock())
        self.items: dict[str, list[tuple[Outcomes, Delivery, Outcome, outbox.Finish]]] = {}
        self.since: dict[str, float] = {}  # _clock() when the first of a database's was added
        self.writing: set[str] = set()

    def due(self, url: str, send_slots: slots.Slots) -> bool:
        """Whether the outcomes waiting for ``url`` are to be written now (``cond`` held)."""
        items = self.items.get(url)
        return bool(items) and (
            send_slots.free == 0 or len(items) >= CLAIM_BATCH or _clock() - self.since[url] >= OUTCOME_WAIT_S
        )


_waiting = _Waiting()


class Outcomes:
    """A batch's outcomes that wait to be written, each message holding its send slot meanwhile.

    With one send slot (SEND_SLOTS=1) an outcome is written as soon as its message is sent, as
    every other thread waits for that slot. With more, the outcomes of every thread's batch wait
    together, process-wide (``_Waiting``), while a slot is left free. When none is, the thread
    whose outcome took the last one writes all of them (``outbox.finish_many``: one statement on
    PostgreSQL), and once more after that if none is free again, while the other threads go on
    sending: a process's statement carries the outcomes of all its threads' sends, not one
    thread's share of the slots (the more threads, the smaller). Still never more than SEND_SLOTS messages
    of the process sent and unrecorded. They are also written when a thread needs a slot and
    finds none (``_send``), once the first has waited about OUTCOME_WAIT_S (with a slow sender,
    the mail log and the webhooks would otherwise learn of a batch's first messages only at its
    end), and at the end of a batch, which ends only once none of its outcomes waits or is in
    another thread's write. An outcome that writes more than its row and event (a bounce: the
    suppression list; a pass-through note) is written alone, after those that wait.
    """

    def __init__(self, s: Session, states: dict[int, str], margin: timedelta, settings: Settings):
        self.s, self.states, self.margin = s, states, margin
        self.url, self.slots = settings.database_url, slots.send_slots(settings)
        self.unwritten = 0  # this batch's outcomes not yet written (waiting, or in a thread's write)
        self.error: Exception | None = None  # what a write of them raised: the batch ends

    def add(self, d: Delivery, outcome: Outcome) -> None:
        if d.woke is not None:
            self._wake(d.now, *d.woke)
        f = _final(d, outcome)
        if _alone(d, f):
            self.flush()
            self._write_alone(d, outcome, f)
            return
        with _waiting.cond:
            items = _waiting.items.setdefault(self.url, [])
            if not items:
                _waiting.since[self.url] = _clock()
            items.append((self, d, outcome, f))
            self.unwritten += 1
            # another thread's write under way sees these after it (``_write_waiting``)
            write = self.url not in _waiting.writing and _waiting.due(self.url, self.slots)
            if write:
                _waiting.writing.add(self.url)
        if write:
            self._write_waiting()

    def flush(self) -> None:
        """Have this batch's outcomes written: wait for another thread's write under way, then
        write what still waits (every thread's) when some of it is this batch's or no slot is free."""
        with _waiting.cond:
            while True:
                if self.url in _waiting.writing:
                    if not self.unwritten:
                        return  # the write under way gives its slots back, and looks again after
                    _waiting.cond.wait()
                    continue
                if not self.unwritten and not _waiting.due(self.url, self.slots):
                    return
                _waiting.writing.add(self.url)
                break
        self._write_waiting()

    def _write_waiting(self) -> None:
        """As the one thread writing for this database: every outcome that waits, again while
        more are due (no slot free, the oldest waited long enough), then let another write."""
        try:
            while True:
                with _waiting.cond:
                    waiting = _waiting.items.pop(self.url, [])
                if not waiting:
                    return

                def write(waiting=waiting) -> list[str]:
                    outbox.finish_many(self.s, [f for _, _, _, f in waiting])
                    return [f.to for _, _, _, f in waiting]

                self._write([(o, d, outcome) for o, d, outcome, _ in waiting], write)
                with _waiting.cond:
                    if not _waiting.due(self.url, self.slots):
                        return
        finally:
            with _waiting.cond:
                _waiting.writing.discard(self.url)
                _waiting.cond.notify_all()

    def _wake(self, now: datetime, sender: str, domain: str) -> None:
        """A probe got through ``sender`` (to ``domain``; '': after the whole sender was down): the
        messages its outage deferred are due now, not after the backoff their failed attempts grew
        (at each attempt the outage cost them, twice as long: minutes to hours). Those it deferred
        itself, and those deferred as no sender was healthy; for a domain's circuit, only mail to
        that domain. The next sweep queues them."""
        M = OutboundMessage
        mine = M.error.startswith(f"{sender}: ", autoescape=True)
        if domain:
            to_domain = func.lower(M.to_addr).endswith(f"@{domain}", autoescape=True)
            cond = or_(M.error == f"{routing.NO_HEALTHY}{domain}", and_(mine, to_domain))
        else:
            cond = or_(routing.waiting_for_a_sender(), mine)
        where = f" to {domain}" if domain else ""
        self._wake_where(cond, now, f"sender {sender} carries mail{where} again")

    def _wake_late(self, held: list[Delivery]) -> None:
        """Deferrals for senders' faults written after a circuit closed since their attempt: the
        probe's wake (``_wake``) may have run before they were committed, and missed them. Checked
        after their commit, so that one the wake missed is always seen here."""
        if not held:
            return
        closings = routing.breaker(held[0].settings).closings
        late = [d for d in held if d.held < closings]
        if not late:
            return
        ids = [d.message.id for d in late]
        self._wake_where(OutboundMessage.id.in_(ids), max(d.now for d in late), "a sender came back")

    def _wake_where(self, cond, now: datetime, why: str) -> None:
        """``outbox.wake_deferred`` and commit. A failure loses nothing: they go at their own time."""
        try:
            woken = outbox.wake_deferred(self.s, cond, now=now)
            self.s.commit()
        except Exception:  # noqa: BLE001 - they wait for their own retry time
            if self.s.in_transaction():
                self.s.rollback()
            log.warning("%s; the deferred mail could not be made due", why, exc_info=True)
            return
        log.info("%s: %d deferred messages due now", why, woken)

    def _write_alone(self, d: Delivery, outcome: Outcome, f: outbox.Finish) -> None:
        with _waiting.cond:
            self.unwritten += 1
        self._write([(self, d, outcome)], lambda: [record(self.s, d, outcome, f)])

    def _write(self, items: list[tuple[Outcomes, Delivery, Outcome]], write: Callable[[], list[str]]) -> None:
        """``write`` the outcomes of ``items`` (each with the batch it is of; it returns their
        states) and commit, then give back their slots. When the database went away after the
        transport had the messages, each outcome is written again on a new connection while the
        claim holds, keeping the slots (no other message goes out unrecorded meanwhile), and this
        thread's batch ends: the error is raised here and kept in ``error`` (``_send`` writes
        outcomes inside a step, which would catch it). Another batch whose outcomes were among
        them goes on: it finds the database gone at its own next write, or not, and a message it
        sent meanwhile is recorded as ever."""
        try:
            try:
                states = write()
                if self.s.in_transaction():  # not after outcomes written in autocommit alone
                    self.s.commit()
            except Exception as e:
                self.error = self.error or e
                if self.s.in_transaction():
                    self.s.rollback()
                for o, d, outcome in items:
                    o.states[d.message.id] = _record_again(d, outcome, until=d.message.lease_until - o.margin)
                raise
            for (o, d, _), state in zip(items, states, strict=True):
                o.states[d.message.id] = state
        finally:
            for _, d, _ in items:
                _release_slot(d)
            with _waiting.cond:
                for o, _, _ in items:
                    o.unwritten -= 1
                _waiting.cond.notify_all()
        for o, d, outcome in items:
            _log_outcome(d, o.states[d.message.id], outcome)
        self._wake_late(
            [d for o, d, _ in items if d.held is not None and o.states[d.message.id] == "deferred"]
        )


def _log_outcome(d: Delivery, state: str, outcome: Outcome) -> None:
    m = d.message
    why = "" if state == "sent" else f" ({outcome.detail[:300]})"
    with logs.bound(message_id=m.id, team_id=m.team_id):
        logs.line(log, logging.INFO, "message %s: %s%s", m.id, state, why, kind=m.kind)


def _deliver_claimed(s, messages, suppressed, renders, states, transport, settings, now) -> int:
    """Send each claimed message in turn and record its outcome (``Outcomes``); how many were sent
    without their tracking."""
    margin = timedelta(seconds=settings.lease_s / 2)
    outcomes = Outcomes(s, states, margin, settings)
    done: list[Delivery] = []
    try:
        for m in messages:
            with logs.bound(message_id=m.id, team_id=m.team_id):
                d = Delivery(
                    message=m,
                    settings=settings,
                    transport=transport,
                    now=now or utcnow(),
                    suppressed=suppressed.get(m.to_addr.lower(), ""),
                    renders=renders,
                    outcomes=outcomes,
                )
                if d.now > m.lease_until - margin:
                    outcomes.flush()  # those sent while the claim held
                    outbox.finish(
                        s,
                        m.id,
                        "deferred",
                        now=d.now,
                        error="lease half gone before its turn in the batch",
                        next_attempt_at=d.now,
                    )
                    s.commit()
                    states[m.id] = "deferred"
                    log.info("message %s: deferred (lease half gone before its turn in the batch)", m.id)
                    continue
                try:
                    outcome = attempt(d)
                except BaseException:
                    _release_slot(d)
                    raise
                if outcomes.error is not None:  # the waiting outcomes' write failed as it sent: the
                    raise outcomes.error  # batch ends, this message unsent (the sweeper gives it back)
                outcomes.add(d, outcome)
                done.append(d)
        outcomes.flush()
    except BaseException:
        try:
            outcomes.flush()  # what was sent before the batch broke off (nothing, when flush broke it)
        except Exception:  # noqa: BLE001 - the first error is the one raised
            log.warning("the batch's waiting outcomes could not be written", exc_info=True)
        raise
    return sum(d.passed_through and states[d.message.id] == "sent" for d in done)


RECORD_RETRY_S = 0.5  # between attempts to write an outcome while the database is unreachable


def _record_again(d: Delivery, outcome: Outcome, *, until: datetime) -> str:
    """Write an attempt's outcome on fresh connections, every RECORD_RETRY_S, until it is written or
    ``until`` (the claim's lease less its margin: after it the sweeper may hand the message to
    another worker); the state written, or 'not-recorded' (the sweeper sends it again: a duplicate
    when the transport had accepted it)."""
    end = time.monotonic() + (until - d.now).total_seconds()  # on the delivery's clock (tests fix it)
    while time.monotonic() + RECORD_RETRY_S < end:
        time.sleep(RECORD_RETRY_S)
        try:
            with get_engine().connect() as conn, Session(bind=conn, expire_on_commit=False) as s:
                state = record(s, d, outcome)
                s.commit()
        except Exception:  # noqa: BLE001 - still unreachable: try again while the claim holds
            log.warning("message %s: its outcome could not be written yet", d.message.id, exc_info=True)
            continue
        log.info("message %s: %s (written again after a database error)", d.message.id, state)
        return state
    log.error(
        "message %s: its outcome %s could not be written; the sweeper retries it", d.message.id, outcome.state
    )
    return "not-recorded"


def deliver(
    message_id: int, *, transport, settings: Settings | None = None, now: datetime | None = None
) -> str:
    """Claim one message, run STEPS, record; the final state of this attempt or 'not-claimed'."""
    return deliver_many([message_id], transport=transport, settings=settings, now=now)[message_id]
