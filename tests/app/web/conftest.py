import re

import pytest
from starlette.testclient import TestClient


@pytest.fixture
def fake_sns(tmp_path):
    """A local HTTPS server serving SNS signing certificates (tests/web/sns_fake.py)."""
    from tests.app.web.sns_fake import FakeSNS

    fake = FakeSNS(tmp_path)
    yield fake
    fake.close()


@pytest.fixture
def client(db):
    """The web app on the test database, with in-process workers."""
    from app.web.factory import create_app

    with TestClient(create_app(), raise_server_exceptions=True) as c:
        yield c


AUTH = {"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LINK = re.compile(r"http://donebox\.test(/signin/[A-Za-z0-9._-]+)")


def csrf_of(client, path: str = "/signin") -> str:
    """The CSRF token a page of the session carries."""
    r = client.get(path)
    m = _CSRF.search(r.text)
    assert m, f"no csrf field on {path}: {r.status_code}"
    return m.group(1)


def post(client, path: str, data: dict | None = None, **kw):
    """POST a form the way a browser would: with the session's CSRF token."""
    return client.post(path, data={"csrf": csrf_of(client), **(data or {})}, follow_redirects=False, **kw)


def signin_link(client, sent, email: str, next: str = "/") -> str:
    """Ask for a sign-in link and return its path from the delivered email."""
    from jobs.broker import drain

    r = post(client, "/signin", {"email": email, "next": next})
    assert r.status_code == 200, r.text
    drain()
    for msg in reversed(sent):
        if msg["To"] == email and msg["X-Donebox-Kind"] in (None, "signin"):
            m = _LINK.search(msg.get_body(("plain",)).get_content())
            if m:
                return m.group(1)
    raise AssertionError(f"no sign-in email to {email}")


def sign_in(client, sent, email: str):
    """Sign ``client`` in as ``email`` through the magic link."""
    link = signin_link(client, sent, email)
    r = client.post(link, data={"csrf": csrf_of(client, link)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r
