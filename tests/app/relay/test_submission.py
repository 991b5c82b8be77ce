"""SMTP submission (`donebox smtp`): AUTH with an API token, the message stored as composed, one outbox
row per recipient, clear refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import smtplib
import ssl
from datetime import timedelta
from email import policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.db import session
from app.models import ApiToken, OutboundBody, OutboundMessage, SendingDomain, Team, TeamRelay, utcnow
from app.relay import composed, outbox
from app.relay.api_tokens import create_token
from app.relay.submission import make_server, serve, tls_context
from app.settings import SettingsError, get_settings, load
from tests.app.web.sns_fake import tls_files
from tests.e2e.conftest import free_port


class Listener(Controller):
    """aiosmtpd's Controller running our protocol factory on a free loopback port."""

    def __init__(self, settings, enqueue, context=None, implicit_tls=False):
        self._factory = make_server(settings, enqueue=enqueue, context=context, implicit_tls=implicit_tls)
        tls = context if implicit_tls else None
        super().__init__(handler=None, hostname="127.0.0.1", port=free_port(), ssl_context=tls)

    def factory(self):
        return self._factory()


@pytest.fixture(autouse=True)
def app_domain(request):
    """app.example, the applications' From domain in these tests, verified for every team."""
    if "db" not in request.fixturenames:
        return
    request.getfixturevalue("db")
    with session() as s:
        s.add(SendingDomain(domain="app.example", verified_at=utcnow()))


@pytest.fixture
def token(db):
    with session() as s:
        return create_token(s, "app", now=utcnow())


@pytest.fixture
def listener(db, env):
    enqueued: list[int] = []
    srv = Listener(get_settings(), enqueued.extend)
    srv.start()
    srv.enqueued = enqueued
    yield srv
    srv.stop()


def client(srv, token: str | None = None, host: str = "127.0.0.1") -> smtplib.SMTP:
    c = smtplib.SMTP(host, srv.port, timeout=10)
    c.ehlo("app.example")
    if token:
        c.login("app", token)
    return c


def message(subject="Your invoice", text="Hello,\nhere it is.\n", html=None, **headers) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "billing@app.example"
    m["To"] = "someone@example.org"
    m["Subject"] = subject
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(text)
    if html:
        m.add_alternative(html, subtype="html")
    return m


def rows() -> list[OutboundMessage]:
    with session() as s:
        return list(s.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars())


def bodies() -> list[bytes]:
    with session() as s:
        return [
            composed.load(s, b)
            for b in s.execute(select(OutboundBody.id).order_by(OutboundBody.id)).scalars()
        ]


def test_a_submitted_message_becomes_one_queued_row_per_recipient_and_is_enqueued(listener, token):
    with client(listener, token) as c:
        refused = c.send_message(
            message(html="<p>Hello, <b>here</b> it is.</p>"), to_addrs=["a@example.org", "b@example.net"]
        )
    assert refused == {}
    got = rows()
    assert [r.to_addr for r in got] == ["a@example.org", "b@example.net"]
    assert {r.state for r in got} == {"queued"} and {r.kind for r in got} == {"api"}
    assert {r.subject for r in got} == {"Your invoice"} and {r.from_addr for r in got} == {
        "billing@app.example"
    }
    assert len({r.body_id for r in got}) == 1 and len({r.message_id for r in got}) == 1
    assert json.loads(got[0].context) == {"_track": False}
    (body,) = bodies()
    assert b"<p>Hello, <b>here</b> it is.</p>" in body and b"Subject: Your invoice\r\n" in body
    assert listener.enqueued == [r.id for r in got]


def test_the_reply_names_the_stored_ids(listener, token):
    with client(listener, token) as c:
        c.mail("billing@app.example")
        c.rcpt("a@example.org")
        code, reply = c.data(message().as_bytes(policy=policy.SMTP))
    assert code == 250 and reply.decode().endswith(f"Queued as {rows()[0].id}")


def test_mail_without_auth_is_refused_and_a_wrong_token_does_not_authenticate(listener, token):
    with client(listener) as c:
        code, reply = c.mail("billing@app.example")
        assert code == 530 and b"Authentication required" in reply
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            c.login("app", "dbx_not-a-token")
        assert e.value.smtp_code == 535
    assert rows() == []


def test_a_revoked_token_stops_authenticating(listener, token):
    with session() as s:
        row = s.execute(select(ApiToken)).scalar_one()
        row.revoked_at = utcnow()
    with client(listener) as c, pytest.raises(smtplib.SMTPAuthenticationError):
        c.login("someone", token)


def test_a_bad_recipient_is_refused_at_rcpt_and_the_others_are_sent(listener, token):
    with client(listener, token) as c:
        c.mail("billing@app.example")
        assert c.rcpt("not an address")[0] == 550
        assert c.rcpt("ok@example.org")[0] == 250
        assert c.data(message().as_bytes(policy=policy.SMTP))[0] == 250
    assert [r.to_addr for r in rows()] == ["ok@example.org"]


def related(m: EmailMessage) -> EmailMessage:
    """``m`` with an HTML body showing an inline image by cid:."""
    m.add_alternative('<p>Invoice <img src="cid:logo.1@app.example"></p>', subtype="html")
    m.get_payload()[1].add_related(
        b"\x89PNG\r\n", maintype="image", subtype="png", cid="<logo.1@app.example>"
    )
    return m


def test_attachments_inline_images_and_headers_are_stored_as_submitted_without_bcc(listener, token):
    m = related(message(Reply_To="help@app.example", Cc="boss@example.org", X_Invoice="42"))
    m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
    stored = m.as_bytes(policy=policy.SMTP)
    head, body = stored.split(b"\r\n\r\n", 1)
    raw = head + b"\r\nBcc: audit@example.net\r\nX-Donebox-Batch-Id: b7\r\n\r\n" + body
    with client(listener, token) as c:
        assert c.sendmail("billing@app.example", ["a@example.org", "audit@example.net"], raw) == {}
    assert bodies() == [stored]
    assert [r.to_addr for r in rows()] == ["a@example.org", "audit@example.net"]
    assert {r.batch_id for r in rows()} == {"b7"}


def test_the_messages_own_message_id_is_the_rows_and_a_new_one_is_made_when_it_has_none(listener, token):
    with client(listener, token) as c:
        c.send_message(message(Message_ID="<inv-42@app.example>"), to_addrs=["a@example.org"])
        c.send_message(message(), to_addrs=["b@example.org"])
    own, made = rows()
    assert own.message_id == "<inv-42@app.example>"
    assert made.message_id.endswith("@mail.test>") and b"Message-ID" not in bodies()[1]


def test_a_from_domain_the_team_may_not_send_from_gets_550_with_the_reason_and_nothing_is_stored(
    listener, db
):
    with session() as s:
        mine, other = Team(name="Mine", created_at=utcnow()), Team(name="Other", created_at=utcnow())
        s.add_all([mine, other])
        s.flush()
        s.add(SendingDomain(domain="theirs.example", team_id=other.id, verified_at=utcnow()))
        tok = create_token(s, "team app", now=utcnow(), team_id=mine.id)
    for domain in ("elsewhere.example", "theirs.example"):
        m = message()
        m.replace_header("From", f"Billing <billing@{domain}>")
        with client(listener, tok) as c, pytest.raises(smtplib.SMTPDataError) as e:
            c.send_message(m, to_addrs=["a@example.org"])
        assert e.value.smtp_code == 550
        assert f"{domain} is not a sending domain of this team".encode() in e.value.smtp_error
    assert rows() == [] and bodies() == []


def test_an_unverified_sending_domain_gets_550_in_production_and_is_allowed_in_development(db, token):
    with session() as s:
        s.add(SendingDomain(domain="new.example"))
    m = message()
    m.replace_header("From", "billing@new.example")
    production = Listener(dataclasses.replace(get_settings(), env="production"), lambda ids: None)
    production.start()
    try:
        with client(production, token) as c, pytest.raises(smtplib.SMTPDataError) as e:
            c.send_message(m, to_addrs=["a@example.org"])
    finally:
        production.stop()
    assert e.value.smtp_code == 550 and b"new.example is not verified yet" in e.value.smtp_error
    assert rows() == [] and bodies() == []
    development = Listener(get_settings(), lambda ids: None)
    development.start()
    try:
        with client(development, token) as c:
            assert c.send_message(m, to_addrs=["a@example.org"]) == {}
    finally:
        development.stop()
    assert [r.from_addr for r in rows()] == ["billing@new.example"]


def test_one_refused_field_stores_none_of_the_recipients(listener, token):
    with client(listener, token) as c, pytest.raises(smtplib.SMTPDataError) as e:
        c.send_message(message(X_Donebox_Send_At="tomorrow"), to_addrs=["a@example.org", "b@example.org"])
    assert e.value.smtp_code == 554 and b"send_at" in e.value.smtp_error
    assert rows() == []


def test_headers_schedule_and_key_the_send_and_a_resubmission_creates_nothing(listener, token):
    when = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    m = message(
        X_Donebox_Send_At=when.isoformat(), X_Donebox_Idempotency_Key="inv-42", X_Donebox_Batch_Id="b1"
    )
    for _ in range(2):
        with client(listener, token) as c:
            c.send_message(m, to_addrs=["a@example.org", "b@example.org"])
    got = rows()
    assert len(got) == 2 and {r.state for r in got} == {"scheduled"} and {r.batch_id for r in got} == {"b1"}
    assert {r.send_at for r in got} == {when}
    assert sorted(r.idempotency_key for r in got) == [
        "api:all:inv-42:a@example.org",
        "api:all:inv-42:b@example.org",
    ]
    assert listener.enqueued == []  # scheduled: the tick queues them when they fall due
    assert len(bodies()) == 1  # the resubmission's copy of the message is not kept


def test_a_team_token_cannot_send_for_another_team(listener, db):
    with session() as s:
        mine, other = Team(name="Mine", created_at=utcnow()), Team(name="Other", created_at=utcnow())
        s.add_all([mine, other])
        s.flush()
        tok = create_token(s, "team app", now=utcnow(), team_id=mine.id)
        other_id = other.id
    with client(listener, tok) as c, pytest.raises(smtplib.SMTPDataError) as e:
        c.send_message(message(X_Donebox_Team_Id=str(other_id)), to_addrs=["a@example.org"])
    assert e.value.smtp_code == 550 and b"own team" in e.value.smtp_error
    with client(listener, tok) as c:
        c.send_message(message(), to_addrs=["a@example.org"])
    assert [r.team_id for r in rows()] == [mine.id]


def test_a_database_fault_answers_451_so_the_client_retries(listener, token, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(outbox, "create", down)
    with client(listener, token) as c, pytest.raises(smtplib.SMTPDataError) as e:
        c.send_message(message(), to_addrs=["a@example.org"])
    assert e.value.smtp_code == 451


PERMANENT = {  # refused the same way however often it is sent: 5xx, never 451
    "a NUL in the subject": (b"Subject: a\x00b\r\n", b"subject contains a NUL"),
    "send_at in year 1 at +14:00": (b"X-Donebox-Send-At: 0001-01-01T00:00:00+14:00\r\n", b"send_at"),
    "a team id past 32 bits": (b"X-Donebox-Team-Id: 99999999999\r\n", b"team_id"),
}


@pytest.mark.parametrize("case", PERMANENT)
def test_a_permanent_refusal_is_a_5xx_with_the_reason_and_stores_nothing(listener, token, case):
    header, reason = PERMANENT[case]
    raw = b"To: someone@example.org\r\nSubject: s\r\n" if b"Subject" not in header else b""
    raw = b"From: billing@app.example\r\n" + header + raw + b"\r\nHello\r\n"
    with client(listener, token) as c, pytest.raises(smtplib.SMTPDataError) as e:
        c.sendmail("billing@app.example", ["a@example.org"], raw)
    assert e.value.smtp_code == 554 and reason in e.value.smtp_error
    assert rows() == []


def test_an_address_parser_bomb_in_from_is_read_and_refused_as_no_from(listener, token):
    # the parser reads such a header by a plain scan (no recursion): it names no address
    raw = b"From: " + b"(\r\n " * 3000 + b"\r\nTo: someone@example.org\r\nSubject: s\r\n\r\nHello\r\n"
    with client(listener, token) as c, pytest.raises(smtplib.SMTPDataError) as e:
        c.sendmail("billing@app.example", ["a@example.org"], raw)
    assert e.value.smtp_code == 554 and b"no From address" in e.value.smtp_error
    assert rows() == []


def test_a_message_over_the_size_limit_is_refused(db, env, token):
    env.setenv("SUBMISSION_MAX_BYTES", "2000")
    get_settings.cache_clear()
    srv = Listener(get_settings(), lambda ids: None)
    srv.start()
    try:
        big = message(text=("y" * 70 + "\n") * 60)
        with client(srv, token) as c, pytest.raises(smtplib.SMTPSenderRefused) as e:
            c.send_message(big, to_addrs=["a@example.org"])  # declares SIZE: refused at MAIL
        assert e.value.smtp_code == 552
        with client(srv, token) as c:  # a client that does not declare it is refused after DATA
            c.mail("billing@app.example")
            c.rcpt("a@example.org")
            assert c.data(big.as_bytes(policy=policy.SMTP))[0] == 552
    finally:
        srv.stop()
    with session() as s:
        assert s.execute(select(func.count()).select_from(OutboundMessage)).scalar() == 0


def test_with_a_certificate_starttls_is_required_before_auth(db, env, token, tmp_path):
    cert, key, ca = tls_files(tmp_path)
    env.setenv("SUBMISSION_TLS_CERT", str(cert))
    env.setenv("SUBMISSION_TLS_KEY", str(key))
    get_settings.cache_clear()
    srv = Listener(get_settings(), lambda ids: None, context=tls_context(get_settings()))
    srv.start()
    try:
        with client(srv, host="localhost") as c:  # the name the certificate is for
            assert c.docmd("AUTH", "PLAIN AGFwcABzZWNyZXQ=")[0] == 530  # must STARTTLS first
            c.starttls(context=ssl.create_default_context(cafile=str(ca)))
            c.ehlo("app.example")
            c.login("app", token)
            c.send_message(message(), to_addrs=["a@example.org"])
    finally:
        srv.stop()
    assert [r.to_addr for r in rows()] == ["a@example.org"]


def test_the_listener_refuses_to_run_without_tls_where_that_would_expose_tokens(tmp_path):
    base = {"SECRET_KEY": "submission-Secret-key-0123456789abcdef", "VAR_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="production needs SUBMISSION_TLS_CERT"):
        tls_context(load({**base, "DONEBOX_ENV": "production"}))
    with pytest.raises(SettingsError, match="loopback only"):
        tls_context(load({**base, "SUBMISSION_HOST": "0.0.0.0"}))
    with pytest.raises(SettingsError, match="go together"):
        tls_context(load({**base, "SUBMISSION_TLS_CERT": "/x.pem"}))
    assert tls_context(load({**base, "SUBMISSION_HOST": "localhost"})) is None
    with pytest.raises(SettingsError, match="SUBMISSION_TLS_PORT needs SUBMISSION_TLS_CERT"):
        asyncio.run(serve(load({**base, "SUBMISSION_TLS_PORT": "4650"}), lambda ids: None))


def test_a_token_without_the_send_scope_is_refused_at_auth_naming_it(listener, db):
    with session() as s:
        reader = create_token(s, "dashboard", now=utcnow(), scopes=("read", "manage"))
    with client(listener) as c, pytest.raises(smtplib.SMTPAuthenticationError) as e:
        c.login("dashboard", reader)
    assert e.value.smtp_code == 535 and b"'send' scope" in e.value.smtp_error
    assert rows() == []


@pytest.fixture
def team_token(db):
    """A token of a team whose quota is 5 messages an hour: (team id, token)."""
    with session() as s:
        team = Team(name="Quota", created_at=utcnow())
        s.add(team)
        s.flush()
        s.add(TeamRelay(team_id=team.id, quota_hour=5))
        return team.id, create_token(s, "team app", now=utcnow(), team_id=team.id, scopes=("send",))


def test_the_sixth_message_of_the_hour_gets_452_and_nothing_is_queued(listener, team_token):
    team_id, tok = team_token
    with client(listener, tok) as c:
        for n in range(5):
            c.send_message(message(subject=f"n{n}"), to_addrs=[f"c{n}@example.org"])
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.send_message(message(subject="n6"), to_addrs=["c6@example.org"])
    assert e.value.smtp_code == 452 and b"5 of its 5 messages in the last hour" in e.value.smtp_error
    assert len(rows()) == 5 and len(listener.enqueued) == 5


def test_a_message_whose_recipients_do_not_all_fit_the_quota_stores_none_of_them(listener, team_token):
    team_id, tok = team_token
    with client(listener, tok) as c:
        c.send_message(message(), to_addrs=["a@example.org", "b@example.org"])
        with pytest.raises(smtplib.SMTPDataError) as e:  # 3 more where 3 remain would fit; 4 do not
            c.send_message(message(), to_addrs=[f"r{n}@example.org" for n in range(4)])
        assert e.value.smtp_code == 452 and b"4 more messages do not fit" in e.value.smtp_error
        assert len(rows()) == 2
        c.send_message(message(), to_addrs=[f"r{n}@example.org" for n in range(3)])
        assert len(rows()) == 5
        with pytest.raises(smtplib.SMTPDataError) as e:  # more recipients than the quota: never fits
            c.send_message(message(), to_addrs=[f"x{n}@example.org" for n in range(6)])
        assert e.value.smtp_code == 552
    assert len(rows()) == 5
