"""`donebox smtp` as a process: an application submits by SMTP and the message is delivered."""

import mailbox
import smtplib
import ssl
from email.message import EmailMessage

import pytest

from tests.app.relay.composed_samples import (
    as_bytes,
    invoice,
    parsed,
    payloads,
    raw_parts,
    tiny_pdf,
    tiny_png,
)
from tests.app.web.sns_fake import tls_files
from tests.e2e.conftest import base_env, free_port, wait_until
from tests.e2e.test_loop_real import maildir_messages

pytestmark = pytest.mark.e2e


def start_smtp(procs, env: dict, port: int) -> smtplib.SMTP:
    """``donebox smtp`` started, and a client connected to it once it listens."""
    procs.start(["smtp"], env)

    def connect():
        try:
            return smtplib.SMTP("127.0.0.1", port, timeout=5)
        except ConnectionRefusedError:
            return None

    return wait_until(connect, 60, "donebox smtp listening")


def test_a_message_submitted_to_donebox_smtp_is_delivered(tmp_path, procs):
    port = free_port()
    env = base_env(tmp_path, SUBMISSION_PORT=str(port))
    assert procs.run(["migrate"], env).returncode == 0
    made = procs.run(["api-token", "create", "billing"], env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    c = start_smtp(procs, env, port)
    m = EmailMessage()
    m["From"] = "billing@mail.test"  # MAIL_FROM's domain: always one the instance may send from
    m["To"] = "customer@example.org"
    m["Subject"] = "Invoice 42 — paid"
    m.set_content("Thank you, your invoice is paid.\n")
    with c:
        c.login("billing", token)
        c.send_message(m, to_addrs=["customer@example.org"])
    delivered = wait_until(
        lambda: maildir_messages(tmp_path / "var" / "mail"), 60, "the submitted message in the dev maildir"
    )
    assert len(delivered) == 1
    got = delivered[0]
    assert got["To"] == "customer@example.org" and str(got["Subject"]) == "Invoice 42 — paid"
    assert "Thank you, your invoice is paid." in got.get_body(("plain",)).get_content()


def test_donebox_smtp_refuses_a_token_without_the_send_scope(tmp_path, procs):
    port = free_port()
    env = base_env(tmp_path, SUBMISSION_PORT=str(port))
    assert procs.run(["migrate"], env).returncode == 0
    made = procs.run(["api-token", "create", "dashboard", "--scopes", "read"], env)
    assert made.returncode == 0, made.stderr
    c = start_smtp(procs, env, port)
    with c, pytest.raises(smtplib.SMTPAuthenticationError) as e:
        c.login("dashboard", made.stdout.strip())
    assert e.value.smtp_code == 535 and b"'send' scope" in e.value.smtp_error


def maildir_bytes(path) -> list[bytes]:
    box = mailbox.Maildir(str(path), create=False) if path.exists() else None
    return [box.get_bytes(k) for k in box.iterkeys()] if box is not None else []


def test_any_message_submitted_over_implicit_tls_is_delivered_as_composed_without_bcc(tmp_path, procs):
    cert, key, ca = tls_files(tmp_path)
    port, tls_port = free_port(), free_port()
    env = base_env(
        tmp_path,
        SUBMISSION_PORT=str(port),
        SUBMISSION_TLS_PORT=str(tls_port),
        SUBMISSION_TLS_CERT=str(cert),
        SUBMISSION_TLS_KEY=str(key),
    )
    assert procs.run(["migrate"], env).returncode == 0
    made = procs.run(["api-token", "create", "billing"], env)
    assert made.returncode == 0, made.stderr
    start_smtp(procs, env, port).close()
    raw = as_bytes(invoice(from_addr="billing@mail.test", bcc="auditor@example.net"))
    rcpts = ["customer@example.org", "accounts@example.org", "auditor@example.net"]

    # the stdlib client closes its TLS socket before returning, so no transport outlives the test
    with smtplib.SMTP_SSL(
        "localhost",  # the name the certificate is for
        tls_port,
        context=ssl.create_default_context(cafile=str(ca)),
        timeout=30,
    ) as c:
        c.login("billing", made.stdout.strip())
        c.sendmail("billing@mail.test", rcpts, raw)
    maildir = tmp_path / "var" / "mail"
    delivered = wait_until(lambda: (d := maildir_bytes(maildir)) and len(d) == 3 and d, 60, "three copies")
    for data in delivered:
        assert b"Bcc:" not in data and b"auditor@example.net" not in data
        mail = parsed(data)
        assert mail["From"] == "Billing <billing@mail.test>" and mail["Cc"] == "accounts@example.org"
        assert mail["Reply-To"] == "support@app.example" and mail["X-App-Ref"] == "inv-42"
        for kind in ("application/pdf", "image/png"):
            (before,) = raw_parts(raw, kind)
            assert before in data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert payloads(data, "application/pdf") == [tiny_pdf()] and payloads(data, "image/png") == [
            tiny_png()
        ]
