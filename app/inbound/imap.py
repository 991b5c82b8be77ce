"""The IMAP poller: mailboxes -> stored inbound messages, each moved (or flagged) only once committed.

For each configured mailbox a loop connects (TLS or STARTTLS), selects the folder and
fetches every message in it: the ones above the committed UID cursor are stored (deduped
by Message-ID + recipient, so a UIDVALIDITY change re-reads without duplicating), and then
every committed one is moved to the done folder, or flagged. Mail that was committed but
not yet moved when the poller died is simply moved on the next pass. It waits with IDLE
where the server has it, else polls; it reconnects with backoff and never deletes mail.
"""

from __future__ import annotations

import logging
import select as io_select
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from imapclient import IMAPClient
from sqlalchemy import select

from app.db import session
from app.inbound.accept import accept_many, item
from app.metrics import families as metrics
from app.models import ImapCursor, utcnow
from app.settings import Settings, SettingsError
from parsers.providers import PROVIDERS, Keys, Payload, PayloadError

log = logging.getLogger("donebox.imap")
DONE_FLAG = b"$DoneboxProcessed"
FETCH_BATCH = 50


@dataclass(frozen=True)
class Mailbox:
    """One mailbox to read, from an ``imaps://user:pass@host:port/Folder?after=move&done=Processed`` URL."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    tls: str = "tls"  # tls | starttls | none
    after: str = "move"  # move | flag
    done: str = "donebox-processed"

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"


def parse_mailbox(url: str, *, production: bool) -> Mailbox:
    """A Mailbox from its URL; raises SettingsError with the reason when it is unusable."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise SettingsError("IMAP_MAILBOXES entries look like imaps://user:password@host/Folder")
    tls = "tls" if parts.scheme == "imaps" else ("none" if query.get("starttls") == "0" else "starttls")
    if tls == "none" and production and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SettingsError("plain IMAP (starttls=0) is refused in production except on loopback")
    after = query.get("after", "move")
    if after not in ("move", "flag"):
        raise SettingsError("IMAP ?after= must be move or flag")
    return Mailbox(
        host=parts.hostname,
        port=parts.port or (993 if tls == "tls" else 143),
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
        tls=tls,
        after=after,
        done=query.get("done", "donebox-processed"),
    )


def connect(box: Mailbox, settings: Settings) -> IMAPClient:
    """A logged-in client with the folder selected."""
    ctx = ssl.create_default_context(cafile=settings.imap_ca_file or None)
    client = IMAPClient(
        box.host, port=box.port, ssl=box.tls == "tls", ssl_context=ctx, timeout=settings.imap_timeout_s
    )
    if box.tls == "starttls":
        client.starttls(ctx)
    client.login(box.user, box.password)
    if box.after == "move" and not client.folder_exists(box.done):
        try:
            client.create_folder(box.done)
        except IMAPClient.Error as e:  # another poller (or a client) created it meanwhile
            if "ALREADYEXISTS" not in str(e).upper():
                raise
    return client


def _cursor(s, box: Mailbox) -> ImapCursor:
    row = s.execute(select(ImapCursor).where(ImapCursor.mailbox == box.key)).scalar()
    if row is None:
        row = ImapCursor(mailbox=box.key, uidvalidity=0, last_uid=0, updated_at=utcnow())
        s.add(row)
        s.flush()
    return row


def store_message(box: Mailbox, uid: int, uidvalidity: int, raw: bytes) -> tuple[int | None, bool]:
    """Commit one fetched message and the cursor past it, in one transaction; (id, duplicate)."""
    with session() as s:
        cur = _cursor(s, box)
        cur.last_uid, cur.uidvalidity, cur.updated_at = max(cur.last_uid, uid), uidvalidity, utcnow()
        try:
            keys = PROVIDERS["imap"].keys(Payload(raw, "message/rfc822"))
        except PayloadError as e:  # stored all the same (keyed by its header hash): nothing is dropped
            log.warning("%s UID %s does not look like a message (%s); stored anyway", box.key, uid, e)
            keys = Keys(raw_mime=raw)
        return accept_many(s.connection(), [item("imap", keys)], now=utcnow())[0]


def finish(client: IMAPClient, box: Mailbox, uids: list[int]) -> None:
    """Move committed messages to the done folder (or flag them); never deletes."""
    if not uids:
        return
    if box.after == "flag":
        client.add_flags(uids, [DONE_FLAG])
    elif client.has_capability("MOVE"):
        client.move(uids, box.done)
    else:  # COPY + \Deleted + expunge of just these UIDs is the same move, done by hand
        client.copy(uids, box.done)
        client.delete_messages(uids)
        client.uid_expunge(uids) if client.has_capability("UIDPLUS") else client.expunge()


def poll_once(client: IMAPClient, box: Mailbox, enqueue=None) -> int:
    """Read the folder once: store new mail, then move/flag what is committed; how many were stored."""
    info = client.select_folder(box.folder)
    uidvalidity = int(info[b"UIDVALIDITY"])
    with session() as s:
        cur = _cursor(s, box)
        if cur.uidvalidity != uidvalidity:
            if cur.uidvalidity:
                log.warning("%s UIDVALIDITY changed: reading it all again (Message-ID dedupe)", box.key)
            cur.uidvalidity, cur.last_uid = uidvalidity, 0
        last_uid = cur.last_uid
    criteria = ["NOT", "KEYWORD", DONE_FLAG.decode()] if box.after == "flag" else ["ALL"]
    uids = sorted(client.search(criteria))
    new = [u for u in uids if u > last_uid]
    stored = 0
    done = [u for u in uids if u <= last_uid]  # committed by an earlier pass, not moved yet
    for i in range(0, len(new), FETCH_BATCH):
        batch = new[i : i + FETCH_BATCH]
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        fresh = []
        for uid in batch:
            raw = fetched.get(uid, {}).get(b"BODY[]")
            if raw is None:
                continue
            iid, duplicate = store_message(box, uid, uidvalidity, raw)
            if iid is None:
                continue
            metrics.accepted("imap", duplicate)
            if not duplicate:
                stored += 1
                fresh.append(iid)
            after_commit(uid)
            done.append(uid)
        if fresh and enqueue is not None:  # one job for the fetched batch: processed together
            enqueue(fresh)
    finish(client, box, sorted(done))
    return stored


def after_commit(uid: int) -> None:
    """Called between a message's commit and its move (tests kill the process here)."""


def run_mailbox(box: Mailbox, settings: Settings, stop: threading.Event, enqueue=None) -> None:
    """Poll one mailbox until ``stop`` is set: IDLE where offered, reconnecting with backoff."""
    backoff = 1.0
    while not stop.is_set():
        client = None
        try:
            client = connect(box, settings)
            log.info("%s connected (%s)", box.key, "IDLE" if client.has_capability("IDLE") else "polling")
            backoff = 1.0
            while not stop.is_set():
                poll_once(client, box, enqueue)
                wait(client, settings, stop)
        except Exception as e:  # noqa: BLE001 - network, server and protocol faults: reconnect later
            if stop.is_set():
                break
            log.warning("%s: %s: %s; reconnecting in %.0f s", box.key, type(e).__name__, e, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, settings.imap_backoff_max_s)
        finally:
            if client is not None:
                try:
                    client.logout()
                except Exception:  # noqa: BLE001 - the connection may be gone already
                    pass


def wait(client: IMAPClient, settings: Settings, stop: threading.Event) -> None:
    """Until the server reports a change (IDLE) or the poll interval passed; checks ``stop`` often."""
    deadline = time.monotonic() + (
        settings.imap_idle_s if client.has_capability("IDLE") else settings.imap_poll_s
    )
    if not client.has_capability("IDLE"):
        stop.wait(max(0.0, deadline - time.monotonic()))
        return
    client.idle()
    while not stop.is_set() and time.monotonic() < deadline:
        if _buffered(client):
            break  # a change reported with IDLE's continuation line: idle_done reads it
        responses = client.idle_check(timeout=1.0)
        if any(r[:1] == (b"BYE",) for r in responses):
            raise ConnectionError("the server said BYE")
        if responses:
            break
        # imapclient's idle_check swallows EOF and returns nothing: a socket that is still
        # readable after it returned empty-handed is a closed connection
        if io_select.select([client.socket()], [], [], 0)[0]:
            raise ConnectionError("the server closed the connection")
    client.idle_done()


def _buffered(client: IMAPClient) -> bool:
    """Whether imaplib's reader already holds bytes the server sent. Mail that arrives between a
    poll's SEARCH and the IDLE command is reported as IDLE starts, often in the same packet as its
    "+ idling" line; the reader takes both, and idle_check, which waits on the socket only, would
    not see the report until the server's next one (minutes later). Peeks without blocking."""
    reader = getattr(client._imap, "file", None)
    if reader is None or not hasattr(reader, "peek"):
        return False
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return bool(reader.peek(1))
    except (BlockingIOError, ssl.SSLWantReadError, TimeoutError):
        return False  # nothing held, nothing waiting on the socket
    finally:
        sock.settimeout(timeout)


def mailboxes(settings: Settings) -> list[Mailbox]:
    """The configured mailboxes (IMAP_MAILBOXES)."""
    return [parse_mailbox(u, production=settings.production) for u in settings.imap_mailboxes]
