"""`donebox smtp` as a process: an application submits by SMTP and the message is delivered."""

import smtplib
from email.message import EmailMessage

import pytest

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
    m["From"] = "billing@app.example"
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
