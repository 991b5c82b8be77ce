"""Fetching an SES S3 action's mail in the processing job: transient faults go back to received
and the sweeper retries them; permanent ones, or the last attempt, fail with the reason."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.db import session
from app.inbound.accept import accept, dedupe_key
from app.inbound.process import process, reset_for_reprocess, sweep
from app.models import InboundMessage
from app.settings import get_settings
from parsers.providers import PROVIDERS, Payload
from tests.conftest import FIXED_NOW, reset_caches
from tests.parsers.test_providers import FIXTURES

BUCKET = "donebox-inbound-mail"
NOTIFICATION = Payload((FIXTURES / "ses/notification_s3.json").read_bytes(), "text/plain; charset=UTF-8")
KEY = PROVIDERS["ses"].s3_object(NOTIFICATION).key


def store() -> int:
    keys = PROVIDERS["ses"].keys(NOTIFICATION)
    with session() as s:
        iid, _ = accept(
            s,
            provider="ses",
            raw=b"",
            key=dedupe_key("ses", keys),
            now=FIXED_NOW,
            payload=NOTIFICATION.body,
            payload_type=NOTIFICATION.content_type,
        )
    return iid


def run(iid: int, now=FIXED_NOW) -> InboundMessage:
    with session() as s:
        process(s, iid, now=now, settings=get_settings())
    with session() as s:
        return s.get(InboundMessage, iid)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable(local_s3, env):
    """S3 settings whose endpoint refuses connections (nothing listens there)."""
    env.setenv("SES_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    reset_caches()
    return local_s3


def test_an_unreachable_endpoint_is_retried_by_the_sweeper_and_not_failed(db, unreachable):
    iid = store()
    first = run(iid)
    assert first.state == "received" and first.attempts == 1
    assert f"cannot fetch the mail from s3://{BUCKET}/{KEY}" in first.error
    assert "EndpointConnectionError" in first.error and "attempt 1 of 3; trying again in 300 s" in first.error
    assert first.subject == "Re: Status für heute" and first.from_addr == "ada@example.com"
    assert first.lease_until == FIXED_NOW + timedelta(seconds=300)
    with session() as s:  # not before its wait is over, then once, as a row tried before
        assert sweep(s, now=FIXED_NOW + timedelta(seconds=299), settings=get_settings()) == ([], [])
        assert sweep(s, now=FIXED_NOW + timedelta(seconds=300), settings=get_settings()) == ([], [iid])
        s.commit()
    second = run(iid, FIXED_NOW + timedelta(seconds=300))
    assert second.state == "received" and "trying again in 600 s" in second.error
    last = run(iid, FIXED_NOW + timedelta(seconds=900))
    assert last.state == "failed" and "attempt 3 of 3: given up" in last.error and last.raw == b""


def test_a_failed_fetch_can_be_reprocessed_once_s3_answers(db, unreachable, env):
    iid = store()
    with session() as s:
        s.execute(InboundMessage.__table__.update().values(attempts=2))
    assert run(iid).state == "failed"
    unreachable.put(BUCKET, KEY, (FIXTURES / "ses/s3_object.eml").read_bytes())
    env.setenv("SES_S3_ENDPOINT_URL", unreachable.url)
    reset_caches()
    with session() as s:
        assert reset_for_reprocess(s, [iid]) == [iid]
    done = run(iid)
    assert done.state == "unverified" and done.error != "" and done.raw.startswith(b"Return-Path:")
    assert "not fetched yet" not in done.notes


def _s3_error(status: int, code: str, message: str) -> type[BaseHTTPRequestHandler]:
    """An S3 endpoint that answers every GET with this error, in S3's XML."""
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Answer


def _stored_against(handler: type[BaseHTTPRequestHandler], env):
    """The S3 notification stored and processed while S3 is the local ``handler``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env.setenv("SES_S3_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
        reset_caches()
        return run(store())
    finally:
        server.shutdown()
        server.server_close()


def test_a_5xx_from_s3_is_retried_not_failed(db, local_s3, env):
    # as S3 answers when overloaded
    stored = _stored_against(_s3_error(503, "ServiceUnavailable", "Reduce your request rate."), env)
    assert stored.state == "received" and "ServiceUnavailable (HTTP 503)" in stored.error


def test_access_denied_is_permanent(db, local_s3, env):
    # moto does not check credentials; an endpoint answering 403 AccessDenied stands in for S3
    stored = _stored_against(_s3_error(403, "AccessDenied", "Access Denied"), env)
    assert stored.state == "failed" and "AccessDenied (HTTP 403)" in stored.error and KEY in stored.error


def test_the_summary_keeps_the_notification_fields_on_the_row(db):
    stored = run(store())  # S3 not configured: failed at once, with the summary on the row
    assert stored.state == "failed" and stored.message_id == "<ses-s3@mail.example.com>"
    assert "content in S3 at" in stored.notes and json.loads(stored.payload)["Type"] == "Notification"
