"""Property tests: arbitrary bytes and mutated real payloads never make any inbound endpoint answer 5xx,
and whatever is accepted is processed without an unhandled exception."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.db import session
from app.models import InboundMessage
from jobs.broker import drain
from tests.app.web.hooks.test_inbound_providers import PM_AUTH, SG_AUTH, configure  # noqa: F401 - fixture
from tests.parsers.test_providers import FIXTURES, payload

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
AUTH = {
    "sendgrid": {"Authorization": "Basic " + base64.b64encode(SG_AUTH.encode()).decode()},
    "postmark": {"Authorization": "Basic " + base64.b64encode(PM_AUTH.encode()).decode()},
    "mailgun": {},
    "ses": {},
    "raw": {"Authorization": "Bearer test-inbound-token"},
}
SEEDS = {
    provider: sorted(f"{provider}/{p.name}" for p in (FIXTURES / provider).iterdir())
    for provider in ("sendgrid", "mailgun", "postmark", "ses", "raw")
}
CTYPES = [
    "multipart/form-data; boundary=xYzZY",
    "multipart/form-data; boundary=MailgunBoundary42",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain; charset=UTF-8",
    "message/rfc822",
    "",
]


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` with a few random edits: flips, cuts, insertions, duplicated slices."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "truncate"]))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif op == "dup":
            data[at:at] = data[at : at + draw(st.integers(1, 200))]
        else:
            del data[at:]
    return bytes(data)


@pytest.fixture
def fuzz_client(configure):  # noqa: F811
    # mailgun and ses unauthenticated (development) so the fuzzed bytes reach the parsers
    return configure(MAILGUN_SIGNING_KEY=None, SES_TOPIC_ARNS=None, SES_VERIFY_SIGNATURES="false")


def check(client, provider: str, body: bytes, ctype: str) -> None:
    r = client.post(f"/inbound/{provider}", content=body, headers={"Content-Type": ctype, **AUTH[provider]})
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code < 300:
        drain()
        with session() as s:
            row = s.get(InboundMessage, r.json()["id"])
            assert row.state != "received"
            assert not row.error.startswith(
                ("Traceback", "TypeError", "AttributeError", "KeyError", "IndexError")
            )


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "postmark", "ses", "raw"])
def test_arbitrary_bytes_never_make_a_5xx(fuzz_client, provider):
    @FUZZ
    @given(body=st.binary(max_size=2048), ctype=st.sampled_from(CTYPES))
    def run(body, ctype):
        check(fuzz_client, provider, body, ctype)

    run()


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "postmark", "ses", "raw"])
def test_mutated_real_payloads_never_make_a_5xx(fuzz_client, provider):
    @FUZZ
    @given(data=st.data())
    def run(data):
        p = payload(data.draw(st.sampled_from(SEEDS[provider])))
        body = data.draw(mutated(p.body))
        check(fuzz_client, provider, body, p.content_type)

    run()


def test_no_fuzzed_message_was_left_unprocessed(fuzz_client):
    with session() as s:
        assert s.execute(select(InboundMessage).where(InboundMessage.state == "received")).first() is None
