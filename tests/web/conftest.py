import pytest
from starlette.testclient import TestClient


@pytest.fixture
def client(db):
    """The web app on the test database, with in-process workers."""
    from app.web import create_app

    with TestClient(create_app(), raise_server_exceptions=True) as c:
        yield c


AUTH = {"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"}
