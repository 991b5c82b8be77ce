"""RFC 2920 from the server's side: a scripted SMTP server on a loopback socket checks what
arrives, and when, before it answers."""

from __future__ import annotations

import socket
import threading

import pytest

from app.errors import PermanentSendError, TransientSendError
from app.relay.transports.base import Outgoing
from app.relay.transports.smtp import SMTPTransport
from tests.app.relay.transports.test_smtp import outgoing

EHLO = b"250-sink.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
EHLO_PLAIN = b"250-sink.test\r\n250 8BITMIME\r\n"


class Scripted:
    """One connection at a time, served by ``script(self)`` in a thread; ``seen`` collects what
    the script read, ``failure`` what it found wrong."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[bytes] = []
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        self.conn = conn
        self.buffer = b""
        try:
            conn.sendall(b"220 sink.test ESMTP\r\n")
            self.script(self)
        except Exception as e:  # noqa: BLE001 - the test reads it
            self.failure = f"{type(e).__name__}: {e}"
        finally:
            conn.close()

    def _readline(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                got, self.buffer = self.buffer, b""
                return got
            self.buffer += chunk
        got, _, self.buffer = self.buffer.partition(b"\n")
        return got + b"\n"

    def line(self) -> bytes:
        got = self._readline()
        self.seen.append(got)
        return got

    def expect(self, prefix: bytes) -> bytes:
        got = self.line()
        if not got.upper().startswith(prefix.upper()):
            raise AssertionError(f"expected {prefix!r}, got {got!r}")
        return got

    def content(self) -> bytes:
        """The DATA content up to the lone dot, as sent (dots still doubled)."""
        lines = []
        while (got := self._readline()) != b".\r\n":
            if not got:
                raise AssertionError("the connection closed inside DATA")
            lines.append(got)
        return b"".join(lines)

    def nothing_more_within(self, seconds: float) -> bool:
        """True when the client sends nothing for ``seconds`` (it waits for our reply)."""
        if self.buffer:  # already here
            return False
        self.conn.settimeout(seconds)
        try:
            return self.conn.recv(1, socket.MSG_PEEK) == b""
        except TimeoutError:
            return True
        finally:
            self.conn.settimeout(None)

    def reply(self, *lines: bytes) -> None:
        self.conn.sendall(b"".join(line + b"\r\n" for line in lines))

    def done(self) -> None:
        self.thread.join(10)
        self.listener.close()
        assert self.failure is None, self.failure


def transport(server: Scripted) -> SMTPTransport:
    return SMTPTransport(f"smtp://127.0.0.1:{server.port}?tls=none&pool=1&timeout=5")


def greet(s: Scripted, ehlo: bytes = EHLO) -> None:
    s.expect(b"EHLO ")
    s.conn.sendall(ehlo)


def envelope(s: Scripted, rcpt: bytes = b"", replies=(b"250 ok", b"250 ok", b"354 go on")) -> None:
    """Read MAIL FROM, RCPT TO (to ``rcpt`` when given) and DATA, all three before any reply (a
    client that waited for the reply to MAIL FROM would hang here, and time out), then reply."""
    s.expect(b"MAIL FROM:")
    s.expect(b"RCPT TO:" + rcpt)
    s.expect(b"DATA")
    s.reply(*replies)


def accept(s: Scripted, reply: bytes) -> None:
    """Read the content (kept in ``seen``) and answer ``reply``."""
    s.seen.append(s.content())
    s.reply(reply)


def quit_(s: Scripted) -> None:
    s.expect(b"QUIT")
    s.reply(b"221 bye")


def test_envelope_and_data_command_arrive_in_one_go_before_any_reply():
    def script(s: Scripted):
        greet(s)
        envelope(s, b"<ada@example.com>")
        accept(s, b"250 2.0.0 queued as P1")
        quit_(s)

    s = Scripted(script)
    t = transport(s)
    o = outgoing()
    result = t.send(o)
    t.close()
    s.done()
    assert result.detail == "250 2.0.0 queued as P1"
    assert s.seen[1] == b"MAIL FROM:<donebox@mail.test>\r\n"
    assert s.seen[-2] == o.raw  # build_message's bytes: CRLF already, no leading dots


def test_without_pipelining_each_command_waits_for_the_reply_before_it():
    def script(s: Scripted):
        greet(s, EHLO_PLAIN)
        for command, answer in ((b"MAIL FROM:", b"250 ok"), (b"RCPT TO:", b"250 ok"), (b"DATA", b"354 go")):
            s.expect(command)
            if not s.nothing_more_within(0.3):
                raise AssertionError(f"the client sent on before the reply to {command!r}")
            s.reply(answer)
        accept(s, b"250 queued as P2")
        quit_(s)

    s = Scripted(script)
    t = transport(s)
    assert t.send(outgoing()).detail == "250 queued as P2"
    t.close()
    s.done()


def test_a_refused_recipient_with_data_accepted_all_the_same_gets_the_lone_dot_then_rset():
    def script(s: Scripted):
        greet(s)
        envelope(s, b"<nouser@example.com>", (b"250 ok", b"550 5.1.1 no such user", b"354 go on"))
        s.expect(b".\r\n")  # the empty message RFC 2920 asks for: none of the content
        s.reply(b"554 5.5.1 no valid recipients")
        s.expect(b"RSET")
        s.reply(b"250 reset")
        # the same connection carries the next message
        envelope(s, b"<ada@example.com>")
        accept(s, b"250 queued as P3")
        quit_(s)

    s = Scripted(script)
    t = transport(s)
    with pytest.raises(PermanentSendError) as e:
        t.send(outgoing(to="nouser@example.com"))
    assert e.value.bounce and e.value.enhanced == "5.1.1" and "(at rcpt)" in str(e.value)
    assert t.send(outgoing()).detail == "250 queued as P3"
    t.close()
    s.done()


def test_leading_dots_are_doubled_and_a_line_that_is_only_a_dot_cannot_end_the_message():
    raw = b".first\r\nFrom: a@mail.test\r\n\r\n.\r\n..two\r\nlast\r\n"

    def script(s: Scripted):
        greet(s)
        envelope(s)
        accept(s, b"250 queued")
        quit_(s)

    s = Scripted(script)
    t = transport(s)
    t.send(Outgoing("donebox@mail.test", "ada@example.com", raw, outgoing().parts, 1))
    t.close()
    s.done()
    assert s.seen[-2] == b"..first\r\nFrom: a@mail.test\r\n\r\n..\r\n...two\r\nlast\r\n"


def test_a_break_after_the_content_went_is_not_sent_again_on_a_new_connection():
    """Once the content has gone, the server may have taken the message: retrying on a fresh
    connection could deliver it twice, so the send fails (the outbox retries it later)."""

    def script(s: Scripted):
        greet(s)
        envelope(s)
        accept(s, b"250 queued as P4")
        # second message on the pooled connection: the server drops it after the content
        envelope(s)
        s.content()

    s = Scripted(script)
    t = transport(s)
    t.send(outgoing())
    with pytest.raises(TransientSendError, match="broke") as e:
        t.send(outgoing(to="bob@example.com"))
    s.done()
    assert e.value.connection
