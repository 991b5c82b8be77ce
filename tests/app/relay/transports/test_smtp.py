import dataclasses
import re
import threading
import time
from email.parser import BytesParser
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import PermanentSendError, TransientSendError
from app.relay.render import build_message
from app.relay.transports.base import Outgoing
from app.relay.transports.smtp import SMTPConfig, SMTPTransport, smtp_content, smtp_data
from tests.app.relay.transports import smtp_server
from tests.conftest import FIXED_NOW


def outgoing(to="ada@example.com", text="Hello", raw: bytes | None = None) -> Outgoing:
    built, parts = build_message(
        from_addr="donebox@mail.test",
        from_name="donebox",
        to=to,
        subject="Hi",
        text=text,
        html="<p>x</p>",
        message_id="<m1@mail.test>",
        date=FIXED_NOW,
    )
    return Outgoing("donebox@mail.test", to, raw if raw is not None else built, parts, 1)


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
def server(request):
    c = smtp_server.start(pipelining=request.param)
    yield c
    if c._thread is not None:  # a test may have stopped it already
        c.stop()


@pytest.fixture
def cert(tmp_path):
    return smtp_server.make_cert(tmp_path)


def url(c, query="tls=none", auth=""):
    return f"smtp://{auth}{c.hostname}:{c.port}?{query}"


def send_together(t, n):
    """``n`` threads each send a message through ``t``, all started together."""
    start = threading.Barrier(n)

    def one(i):
        start.wait()
        t.send(outgoing(to=f"u{i}@example.com"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)


def test_messages_go_through_one_pooled_connection(server):
    t = SMTPTransport(url(server, "tls=none&pool=1"))
    for i in range(5):
        r = t.send(outgoing(to=f"user{i}@example.com"))
        assert r.transport == "smtp" and "queued as ABC123" in r.detail
    t.close()
    assert [e.rcpt_tos for e in server.handler.envelopes] == [[f"user{i}@example.com"] for i in range(5)]
    assert len(server.handler.sessions) == 1


def test_threads_share_a_pool_of_several_connections(server):
    t = SMTPTransport(url(server, "tls=none&pool=3"))
    threads = [threading.Thread(target=t.send, args=(outgoing(to=f"u{i}@example.com"),)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    t.close()
    assert len(server.handler.envelopes) == 12
    assert 1 <= len(server.handler.sessions) <= 3


def test_without_a_pool_in_its_url_a_sender_keeps_a_connection_for_each_worker_thread(server):
    """Six worker threads (WORKER_THREADS, as `donebox worker --threads 6` sets it) send at once to
    a server whose replies come late: each has a connection of its own, where a pool of four made
    two of them wait; a pool the URL names is kept."""
    from app.relay.transports import transport_for
    from app.settings import get_settings

    server.handler.data_delay_s = 0.3
    settings = dataclasses.replace(get_settings(), worker_threads=6)

    def send_at_once(t, n):
        send_together(t, n)
        t.close()

    send_at_once(transport_for(url(server), settings), 6)
    assert len(server.handler.envelopes) == 6 and len(server.handler.sessions) == 6
    server.handler.sessions.clear()
    send_at_once(transport_for(url(server, "tls=none&pool=2"), settings), 6)
    assert len(server.handler.envelopes) == 12 and len(server.handler.sessions) == 2


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_starttls_with_auth(cert, pipelining):
    c = smtp_server.start(tls="starttls", cert=cert, users={"app": "s3cret"}, pipelining=pipelining)
    try:
        t = SMTPTransport(url(c, f"tls=starttls&ca={cert[0]}", auth="app:s3cret@"))
        t.send(outgoing())
        t.close()
        assert len(c.handler.envelopes) == 1
        bad = SMTPTransport(url(c, f"tls=starttls&ca={cert[0]}", auth="app:wrong@"))
        with pytest.raises(PermanentSendError) as e:
            bad.send(outgoing())
        assert e.value.smtp_code == 535 and e.value.connection
    finally:
        c.stop()


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_implicit_tls_checks_the_certificate(cert, pipelining):
    c = smtp_server.start(tls="implicit", cert=cert, pipelining=pipelining)
    try:
        t = SMTPTransport(url(c, f"tls=implicit&ca={cert[0]}"))
        t.send(outgoing())
        t.close()
        assert len(c.handler.envelopes) == 1
        untrusted = SMTPTransport(url(c, "tls=implicit&timeout=5"))
        with pytest.raises(TransientSendError) as e:
            untrusted.send(outgoing())
        assert e.value.connection
    finally:
        c.stop()


@pytest.mark.parametrize(
    "local, exc, check",
    [
        ("later", TransientSendError, lambda e: not e.block and e.retry_in_s == 60),
        ("greylist", TransientSendError, lambda e: e.block),
        ("nouser", PermanentSendError, lambda e: e.bounce and e.enhanced == "5.1.1" and not e.block),
        ("blocked", PermanentSendError, lambda e: e.block and not e.bounce and e.smtp_code == 550),
    ],
)
def test_replies_map_by_enhanced_status_code(server, local, exc, check):
    t = SMTPTransport(url(server))
    with pytest.raises(exc) as e:
        t.send(outgoing(to=f"{local}@example.com"))
    assert check(e.value)
    t.send(outgoing())  # the connection is still usable after a refused recipient
    t.close()
    assert len(server.handler.sessions) == 1


def test_a_refused_data_is_permanent(server):
    server.handler.data_reply = "554 5.6.0 content rejected"
    with pytest.raises(PermanentSendError) as e:
        SMTPTransport(url(server)).send(outgoing())
    assert e.value.enhanced == "5.6.0"


def test_a_server_that_is_down_is_a_connection_failure():
    port = smtp_server.free_port()
    with pytest.raises(TransientSendError) as e:
        SMTPTransport(f"smtp://127.0.0.1:{port}?tls=none&timeout=2").send(outgoing())
    assert e.value.connection


def test_a_pooled_connection_the_server_dropped_is_replaced(server):
    t = SMTPTransport(url(server, "tls=none&pool=1"))
    t.send(outgoing())
    server.stop()
    again = smtp_server.start(port=server.port, handler=server.handler)  # same port, old connection gone
    try:
        t.send(outgoing(to="bob@example.com"))
        assert [e.rcpt_tos for e in server.handler.envelopes][-1] == ["bob@example.com"]
        t.close()
    finally:
        again.stop()


def test_when_the_server_dropped_every_pooled_connection_the_next_message_still_goes(server):
    """Three connections pooled, then the server restarts (as one drops the sessions it found idle):
    the next message goes on a new connection after the first dead one, not on the next dead one
    (two dead connections in a row deferred it), and the pool keeps no dead connection after."""
    server.handler.data_delay_s = 0.2
    t = SMTPTransport(url(server, "tls=none&pool=3"))
    send_together(t, 3)
    assert len(server.handler.sessions) == 3
    server.handler.data_delay_s = 0.0
    server.stop()
    again = smtp_server.start(port=server.port, handler=server.handler)
    try:
        for to in ("bob@example.com", "cy@example.com", "di@example.com"):
            t.send(outgoing(to=to))
        got = [e.rcpt_tos for e in server.handler.envelopes][-3:]
        assert got == [["bob@example.com"], ["cy@example.com"], ["di@example.com"]]
        t.close()
    finally:
        again.stop()


def test_a_connection_idle_for_longer_than_idle_s_is_closed_not_used(server, monkeypatch):
    from app.relay.transports import smtp

    monkeypatch.setattr(smtp, "IDLE_S", 0.2)
    t = SMTPTransport(url(server, "tls=none&pool=1"))
    t.send(outgoing(to="a@example.com"))
    t.send(outgoing(to="b@example.com"))  # at once: the same connection
    assert len(server.handler.sessions) == 1
    time.sleep(0.3)
    t.send(outgoing(to="c@example.com"))
    t.close()
    assert len(server.handler.sessions) == 2 and len(server.handler.envelopes) == 3


def test_dots_and_bare_line_endings_cannot_smuggle_a_second_message(server):
    evil = (
        b"From: a@mail.test\r\nTo: ada@example.com\r\nSubject: x\r\n\r\n"
        b"line\n.\nMAIL FROM:<x@evil>\r\n.\r\nRCPT TO:<victim@example.com>\r\n\r.\r"
        b"\r\n.\r\nDATA\r\n..\r\nend"
    )
    t = SMTPTransport(url(server))
    t.send(outgoing(raw=evil))
    t.close()
    (env,) = server.handler.envelopes
    assert env.rcpt_tos == ["ada@example.com"]
    content = env.original_content
    assert content == smtp_data(evil)
    assert b"MAIL FROM:<x@evil>" in content and content.endswith(b"end\r\n")


ENDS = st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\n\r", b"\r\r\n", b"\n."]), max_size=30)


@given(st.binary(max_size=300) | ENDS.map(b"".join))
def test_smtp_data_never_has_a_bare_cr_or_lf(raw):
    data = smtp_data(raw)
    assert data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n") and data.endswith(b"\r\n")
    plain = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)  # every line end made CRLF, however it was
    assert data == (plain if plain.endswith(b"\r\n") else plain + b"\r\n")
    lines = data.split(b"\r\n")[:-1]
    assert (
        smtp_content(data) == b"".join(b"." * ln.startswith(b".") + ln + b"\r\n" for ln in lines) + b".\r\n"
    )


def test_an_unusable_url_is_a_clear_error():
    with pytest.raises(ValueError, match="tls must be"):
        SMTPConfig.from_url("smtp://h?tls=maybe")
    c = SMTPConfig.from_url("smtp://us%40er:p%3Ass@relay.example.com?tls=implicit")
    assert (c.username, c.password, c.port) == ("us@er", "p:ss", 465)


def test_the_message_arrives_byte_for_byte(server):
    o = outgoing(text="Grüße\n.\n..\nend")
    SMTPTransport(url(server)).send(o)
    (env,) = server.handler.envelopes
    assert env.original_content == o.raw
    got = BytesParser(policy=default).parsebytes(env.original_content)
    assert got.get_body(("plain",)).get_content().replace("\r\n", "\n").startswith("Grüße\n.\n..\nend")


@pytest.mark.parametrize(
    ("tag", "header", "value"),
    [
        ("postmark", "X-PM-Metadata-donebox_id", "1"),
        ("mailgun", "X-Mailgun-Variables", '{"donebox_id": "1"}'),
    ],
)
def test_a_provider_relay_gets_our_outbox_id_in_the_header_its_events_echo(server, tag, header, value):
    o = outgoing()
    t = SMTPTransport(url(server, f"tls=none&tag={tag}"))
    t.send(o)
    t.close()
    (env,) = server.handler.envelopes
    got = BytesParser(policy=default).parsebytes(env.original_content)
    assert got[header] == value and got["Message-ID"] == "<m1@mail.test>"
    assert env.original_content.endswith(o.raw)  # our (signed) bytes follow, untouched


def test_the_provider_is_known_by_its_smtp_host_and_others_get_no_tag(server):
    assert SMTPConfig.from_url("smtp://u:p@smtp.postmarkapp.com").tag == "postmark"
    assert SMTPConfig.from_url("smtp://u:p@smtp.eu.mailgun.org").tag == "mailgun"
    assert SMTPConfig.from_url("smtp://u:p@smtp.postmarkapp.com?tag=none").tag == ""
    assert SMTPConfig.from_url("smtp://u:p@postmarkapp.com.evil.test").tag == ""
    with pytest.raises(ValueError, match="tag must be"):
        SMTPConfig.from_url("smtp://h?tag=acme")
    o = outgoing()
    t = SMTPTransport(url(server))
    t.send(o)
    t.close()
    assert server.handler.envelopes[0].original_content == o.raw


def test_a_utf8_address_goes_with_smtputf8_and_a_server_without_it_refuses_it_for_good():
    utf8 = smtp_server.start()
    ascii_only = smtp_server.start(smtputf8=False)
    to_jorg = dataclasses.replace(outgoing(), rcpt_to="jörg@example.com")
    try:
        t = SMTPTransport(url(utf8))
        t.send(to_jorg)
        (envelope,) = utf8.handler.envelopes
        assert envelope.rcpt_tos == ["jörg@example.com"] and "SMTPUTF8" in envelope.mail_options
        t.close()
        t = SMTPTransport(url(ascii_only))
        with pytest.raises(PermanentSendError, match="SMTPUTF8"):
            t.send(to_jorg)
        t.close()
    finally:
        utf8.stop()
        ascii_only.stop()
