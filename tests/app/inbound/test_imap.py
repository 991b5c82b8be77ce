"""The IMAP poller against a real Dovecot: new mail, IDLE, restarts, UIDVALIDITY change, kill -9."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import ssl
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db import session
from app.models import InboundMessage
from app.settings import get_settings
from parsers.message import raw_message_id
from tests.conftest import need, reset_caches
from tests.dovecot import Dovecot, available

FOLDER = "donebox"


def mail(n: int) -> bytes:
    return (
        f"From: Ada <ada@example.com>\r\nTo: team@example.com\r\nSubject: update {n}\r\n"
        f"Message-ID: <imap-{n}@example.com>\r\n\r\nDid thing {n}.\r\n"
    ).encode()


@pytest.fixture
def dovecot():
    why = available()
    if why:
        need("Dovecot", why)
    # not pytest's tmp_path: its parents are 0700 root, and Dovecot's users must reach the files
    tmp = Path(tempfile.mkdtemp(prefix="donebox-dovecot-"))
    os.chmod(tmp, 0o755)
    d = Dovecot(tmp)
    d.start()
    yield d
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def stored() -> list[str]:
    """Message-IDs of the stored messages (raw bytes: nothing processes them in these tests)."""
    with session() as s:
        return sorted(raw_message_id(raw) for raw in s.execute(select(InboundMessage.raw)).scalars())


def rows() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(InboundMessage)).scalar()


def eventually(check, timeout_s: float = 60.0):
    """Wait until ``check()`` is truthy (a generous safety bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout_s} s: {check.__doc__ or check}")


@pytest.fixture
def poller(db, env, dovecot):
    """Start the poller on FOLDER in a thread; yields a function to start it (idempotent)."""
    from app.inbound.imap import parse_mailbox, run_mailbox

    env.setenv("IMAP_MAILBOXES", dovecot.url(FOLDER))
    env.setenv("IMAP_BACKOFF_MAX_S", "1")
    env.setenv("IMAP_POLL_S", "600")  # Dovecot has IDLE: only its notifications can wake the poller
    env.setenv("IMAP_IDLE_S", "600")
    env.setenv("IMAP_TIMEOUT_S", "3")
    reset_caches()
    settings = get_settings()
    box = parse_mailbox(settings.imap_mailboxes[0], production=False)
    stop = threading.Event()
    threads = []

    def start():
        t = threading.Thread(target=run_mailbox, args=(box, settings, stop), daemon=True)
        t.start()
        threads.append(t)
        return box

    yield start
    stop.set()
    for t in threads:
        t.join(timeout=15)


def test_new_mail_is_stored_then_moved_to_the_done_folder(poller, dovecot):
    dovecot.append(FOLDER, mail(1))
    dovecot.append(FOLDER, b"no headers at all, still kept\r\n")
    poller()
    eventually(lambda: rows() == 2 and dovecot.uids(FOLDER) == [])
    assert "<imap-1@example.com>" in stored() and len(dovecot.uids("donebox-processed")) == 2


def test_mail_arriving_while_idle_is_picked_up(poller, dovecot):
    poller()
    time.sleep(1.0)  # let it connect and enter IDLE
    dovecot.append(FOLDER, mail(2))
    eventually(lambda: stored() == ["<imap-2@example.com>"])
    with dovecot.client() as c:
        assert c.has_capability("IDLE")


def test_mail_arriving_between_the_search_and_the_idle_is_picked_up_at_once(poller, dovecot, monkeypatch):
    """The server reports it as IDLE starts, often in the packet of its "+ idling" line: it must not
    wait in the client's read buffer for the server's next report (this Dovecot re-checks every 10
    min; the mailbox's IDLE lasts IMAP_IDLE_S, 600 s here)."""
    import app.inbound.imap as imap

    real_wait, appended = imap.wait, []

    def wait_after_an_arrival(client, settings, stop):
        if not appended:  # the first poll found nothing; the mail lands before IDLE is sent
            dovecot.append(FOLDER, mail(7))
            appended.append(True)
        return real_wait(client, settings, stop)

    monkeypatch.setattr(imap, "wait", wait_after_an_arrival)
    with dovecot.client() as c:
        c.create_folder(FOLDER)  # empty: the first poll finds nothing
    poller()
    eventually(lambda: stored() == ["<imap-7@example.com>"])


def test_the_poller_reconnects_after_the_server_restarts(poller, dovecot):
    poller()
    dovecot.append(FOLDER, mail(3))
    eventually(lambda: rows() == 1)
    dovecot.stop()
    time.sleep(1.0)
    dovecot.start()
    dovecot.append(FOLDER, mail(4))
    eventually(lambda: stored() == ["<imap-3@example.com>", "<imap-4@example.com>"])


def test_a_uidvalidity_change_rereads_without_duplicates(poller, dovecot):
    poller()
    dovecot.append(FOLDER, mail(5))
    eventually(lambda: rows() == 1 and dovecot.uids(FOLDER) == [])
    with dovecot.client() as c:  # a new folder of the same name: a new UIDVALIDITY, old mail back in it
        c.delete_folder(FOLDER)
        c.create_folder(FOLDER)
        c.append(FOLDER, mail(5))
        c.append(FOLDER, mail(6))
    eventually(lambda: dovecot.uids(FOLDER) == [] and rows() == 2)
    assert stored() == ["<imap-5@example.com>", "<imap-6@example.com>"]


def _killed_after_commit(url: str, env: dict) -> None:
    """Child process: run the poller and SIGKILL itself right after the first commit, before the move."""
    os.environ.update(env)
    import app.inbound.imap as imap

    reset_caches()
    settings = get_settings()
    imap.after_commit = lambda uid: os.kill(os.getpid(), signal.SIGKILL)
    imap.run_mailbox(imap.parse_mailbox(url, production=False), settings, threading.Event())


def test_kill_9_between_store_and_move_loses_nothing_and_duplicates_nothing(poller, dovecot):
    dovecot.append(FOLDER, mail(7))
    env = {
        k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "VAR_DIR", "SECRET_KEY", "DONEBOX_ENV")
    }
    child = multiprocessing.get_context("spawn").Process(
        target=_killed_after_commit, args=(dovecot.url(FOLDER), env)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    assert rows() == 1 and dovecot.uids(FOLDER) != []  # committed, not moved
    poller()
    eventually(lambda: dovecot.uids(FOLDER) == [])
    assert rows() == 1 and stored() == ["<imap-7@example.com>"]
    assert len(dovecot.uids("donebox-processed")) == 1


def test_flag_mode_flags_instead_of_moving(db, env, dovecot):
    from app.inbound.imap import connect, parse_mailbox, poll_once

    dovecot.append(FOLDER, mail(8))
    box = parse_mailbox(dovecot.url(FOLDER, after="flag"), production=False)
    client = connect(box, get_settings())
    try:
        assert poll_once(client, box) == 1
        assert poll_once(client, box) == 0  # flagged: not read again
    finally:
        client.logout()
    assert dovecot.uids(FOLDER) != [] and rows() == 1


def test_a_fetched_batch_is_enqueued_as_one_processing_job(db, env, dovecot):
    from app.inbound.imap import connect, parse_mailbox, poll_once

    for n in (11, 12, 13):
        dovecot.append(FOLDER, mail(n))
    box = parse_mailbox(dovecot.url(FOLDER), production=False)
    client = connect(box, get_settings())
    jobs: list = []
    try:
        assert poll_once(client, box, jobs.append) == 3
    finally:
        client.logout()
    assert len(jobs) == 1 and len(jobs[0]) == 3 == rows()


def test_mailbox_urls_are_parsed_and_plain_imap_is_refused_in_production():
    from app.inbound.imap import parse_mailbox
    from app.settings import SettingsError

    box = parse_mailbox("imaps://me%40x.org:p%2Cw@imap.x.org/Team%20Replies?done=Done", production=True)
    assert (box.user, box.password, box.folder, box.port, box.tls, box.done) == (
        "me@x.org",
        "p,w",
        "Team Replies",
        993,
        "tls",
        "Done",
    )
    assert parse_mailbox("imap://u:p@imap.x.org/INBOX", production=True).tls == "starttls"
    with pytest.raises(SettingsError, match="plain IMAP"):
        parse_mailbox("imap://u:p@imap.x.org/INBOX?starttls=0", production=True)


def test_donebox_imap_without_mailboxes_says_what_to_set(env, capsys):
    from app.cli import main

    assert main(["imap"]) == 2
    assert "IMAP_MAILBOXES" in capsys.readouterr().err


@pytest.mark.parametrize("scheme", ["imaps", "imap"])
def test_tls_and_starttls_mailboxes_are_read_with_the_servers_certificate_verified(db, env, scheme):
    from app.inbound.imap import connect, parse_mailbox, poll_once

    why = available()
    if why:
        need("Dovecot", why)
    tmp = Path(tempfile.mkdtemp(prefix="donebox-dovecot-"))
    os.chmod(tmp, 0o755)
    d = Dovecot(tmp, tls=True)
    d.start()
    try:
        d.append(FOLDER, mail(9))
        port = d.imaps_port if scheme == "imaps" else d.port
        url = f"{scheme}://test%40example.com:secret@localhost:{port}/{FOLDER}"
        env.setenv("IMAP_CA_FILE", str(d.ca_file))
        reset_caches()
        box = parse_mailbox(url, production=True)
        assert box.tls == ("tls" if scheme == "imaps" else "starttls")
        client = connect(box, get_settings())
        try:
            assert poll_once(client, box) == 1
        finally:
            client.logout()
        assert stored() == ["<imap-9@example.com>"] and d.uids(FOLDER) == []
        env.setenv("IMAP_CA_FILE", "")  # the system CAs do not know ours: refused
        reset_caches()
        with pytest.raises(ssl.SSLError):
            connect(box, get_settings())
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_copy_is_stored_once_and_a_reused_message_id_with_another_body_is_kept_and_linked(db, env, dovecot):
    from app.inbound.imap import connect, parse_mailbox, poll_once

    first = mail(20)
    dovecot.append(FOLDER, first)
    dovecot.append(
        FOLDER, b"Received: from relay2.example.net by mx; Mon, 23 Nov 2026 17:00:09 +0000\r\n" + first
    )
    dovecot.append(FOLDER, first.replace(b"Did thing 20.", b"Did another thing."))
    box = parse_mailbox(dovecot.url(FOLDER), production=False)
    client = connect(box, get_settings())
    jobs: list = []
    try:
        poll_once(client, box, jobs.append)
    finally:
        client.logout()
    with session() as s:
        found = s.execute(
            select(InboundMessage.id, InboundMessage.same_message_id_as).order_by(InboundMessage.id)
        )
        (one, none), (two, linked) = found.all()
    assert none is None and linked == one and jobs == [[one, two]]
