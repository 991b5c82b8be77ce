"""Every request has an id: answered in X-Request-ID, on each of its log lines, in its request line."""

import io
import json
import logging
import re

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from app import logs
from app.settings import get_settings

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def lines(env):
    """The JSON lines donebox's handler writes during the test, parsed when read."""
    env.setenv("LOG_FORMAT", "json")
    get_settings.cache_clear()
    out = io.StringIO()
    h = logs.handler(get_settings())
    h.setStream(out)
    logger = logging.getLogger("donebox")
    level = logger.level
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    logger.removeHandler(h)
    logger.setLevel(level)


def test_a_sane_incoming_id_is_kept_and_answered(client, lines):
    r = client.get("/healthz", headers={"X-Request-ID": "proxy-7f3a:1"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "proxy-7f3a:1"
    (line,) = [x for x in lines() if x["logger"] == "donebox.web.requests"]
    assert line["msg"] == "GET /healthz 200" and line["request_id"] == "proxy-7f3a:1"
    assert line["status"] == 200 and line["duration_ms"] >= 0


@pytest.mark.parametrize("sent", [None, "", "has space", "x" * 129, "semi;colon", '{"json": 1}'])
def test_a_missing_or_insane_id_is_replaced_by_a_new_one(client, lines, sent):
    r = client.get("/healthz", headers={"X-Request-ID": sent} if sent is not None else {})
    rid = r.headers["X-Request-ID"]
    assert HEX32.fullmatch(rid)
    assert client.get("/healthz").headers["X-Request-ID"] != rid  # one per request
    assert [x["request_id"] for x in lines() if x["logger"] == "donebox.web.requests"][0] == rid


def test_a_token_in_the_path_is_logged_by_its_name(client, lines):
    r = client.get("/signin/not-a-real-token-0123456789")
    rid = r.headers["X-Request-ID"]
    (line,) = [x for x in lines() if x.get("request_id") == rid and x["logger"] == "donebox.web.requests"]
    assert line["msg"] == f"GET /signin/{{token}} {r.status_code}"
    assert "not-a-real-token" not in json.dumps(lines())


def test_a_server_error_carries_the_id_in_its_answer_and_its_lines(env, db, lines, monkeypatch):
    from app.web import factory
    from app.web.routes import routes

    def boom(request):
        logging.getLogger("donebox.web").warning("about to fail for ada@example.com")
        raise RuntimeError("boom")

    monkeypatch.setattr(factory, "routes", [Route("/api/boom", boom), *routes])
    with TestClient(factory.create_app(), raise_server_exceptions=False) as c:
        r = c.get("/api/boom", headers={"X-Request-ID": "err-1"})
    assert r.status_code == 500 and r.headers["X-Request-ID"] == "err-1"
    mine = [x for x in lines() if x.get("request_id") == "err-1"]
    assert [x["msg"] for x in mine] == ["about to fail for a***@example.com", "GET /api/boom 500"]
