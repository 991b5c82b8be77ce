"""Shared fixtures: settings in a temp folder, a database per backend, real services or a clear skip.

In CI (CI=true) a missing PostgreSQL, Redis or RabbitMQ fails the test; elsewhere it skips with a reason.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest

CI = os.environ.get("CI") == "true"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _worker_redis(url: str) -> str:
    """Each pytest-xdist worker its own Redis database (gw0: the configured one, gw1: one below, ...),
    since the tests flush it; a run without workers uses ``url`` as given."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    base, _, db = url.rpartition("/")
    return f"{base}/{int(db or 0) - int(worker[2:])}"


REDIS_URL = _worker_redis(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
FIXED_NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday

TEST_ENV = {
    "DONEBOX_ENV": "development",
    "SECRET_KEY": "test-secret-key-0123456789-abcdefXYZ",
    "INBOUND_RAW_TOKEN": "test-inbound-token",
    "MAIL_TRANSPORT": "memory",
    "REPLY_DOMAIN": "reply.test",
    "INBOUND_DOMAINS": "in.example.com",  # a second domain teams may pick for their reply addresses
    "MAIL_FROM": "donebox@mail.test",
    "BASE_URL": "http://donebox.test",
    # tests answer reminders of FIXED_NOW's day with workers on the real clock: a window of ten
    # years keeps them working; the window's own tests set REPLY_WINDOW_DAYS themselves
    "REPLY_WINDOW_DAYS": "3660",
}

S3_SETTINGS = (
    "SES_S3_REGION",
    "SES_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


def need(component: str, reason: str):
    """Fail in CI, skip elsewhere: a component a test needs is not there."""
    msg = f"{component} is not available: {reason}"
    if CI:
        pytest.fail(msg + " (CI=true: every component must be present)")
    pytest.skip(msg)


def reachable(url: str, default_port: int) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def reset_caches() -> None:
    from app.db import get_engine
    from app.settings import get_settings

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_settings.cache_clear()
    import sys

    # cached config, queued ids, shared renders of another test's database, SNS keys fetched
    # from another test's certificate server
    for name in (
        "app.relay.routing",
        "app.relay.fair",
        "app.relay.pipeline",
        "app.relay.domains",
        "app.relay.passthrough",
        "app.inbound.sns",
        "app.inbound.s3",
    ):
        if name in sys.modules:
            sys.modules[name].reset()


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """What a test that runs ``cli.main`` in this process sets up for the whole process (the root
    handler and level, library loggers, warnings capture, the exception hooks) is undone after it,
    so the next tests log as pytest set them up."""
    import logging
    import sys
    import threading

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {
        n: (list(lg.handlers), lg.propagate)
        for n in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq")
        if (lg := logging.getLogger(n))
    }
    hooks = (sys.excepthook, threading.excepthook)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, (hs, propagate) in named.items():
        logging.getLogger(n).handlers[:] = hs
        logging.getLogger(n).propagate = propagate
    logging.captureWarnings(False)
    sys.excepthook, threading.excepthook = hooks


class JSONLog:
    """What donebox's own handler writes as JSON lines on the root logger while the ``with`` block
    runs (at INFO): ``.lines`` parsed, ``.text`` as written."""

    def __enter__(self):
        import io
        import logging

        from app import logs
        from app.settings import get_settings

        self._out = io.StringIO()
        self._handler = logs.handler(get_settings())
        self._handler.setStream(self._out)
        self._handler.setFormatter(logs.JSONFormatter())
        root = logging.getLogger()
        root.addHandler(self._handler)
        self._level, root.level = root.level, logging.INFO
        return self

    def __exit__(self, *exc) -> None:
        import json
        import logging

        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.level = self._level
        self.text = self._out.getvalue()
        self.lines = [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The test environment: fixed secrets, memory transport, VAR_DIR in tmp."""
    for k, v in TEST_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    for k in ("REDIS_URL", "RABBITMQ_URL", "DATABASE_URL", *S3_SETTINGS):
        monkeypatch.delenv(k, raising=False)
    reset_caches()
    yield monkeypatch
    quiesce_jobs()
    reset_caches()


def quiesce_jobs() -> None:
    """Finish what in-process workers are doing and drop what is left queued, so no job of
    this test runs against the next test's database."""
    import sys

    broker_mod = sys.modules.get("jobs.broker")
    if broker_mod is None:
        return
    if broker_mod._worker is not None:
        broker_mod.drain()
    if broker_mod.is_embedded():
        broker_mod.broker.flush_all()


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test session, migrated; dropped afterwards."""
    if not reachable(PG_ADMIN_URL, 5432):
        need("PostgreSQL", f"nothing answers at {PG_ADMIN_URL}")
    import psycopg

    name = f"donebox_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    from app.migrate import upgrade

    upgrade(url)
    yield url
    reset_caches()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    """A migrated SQLite file for this test session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'donebox.db'}"
    from app.migrate import upgrade

    upgrade(url)
    return url


def _truncate(engine) -> None:
    from sqlmodel import SQLModel

    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        else:
            for t in tables:
                conn.exec_driver_sql(f"DELETE FROM {t}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, env):
    """Run the test on SQLite and on PostgreSQL, each emptied first; yields the engine."""
    url = request.getfixturevalue(f"{request.param}_url" if request.param == "sqlite" else "pg_url")
    env.setenv("DATABASE_URL", url)
    reset_caches()
    from app.db import get_engine

    engine = get_engine()
    _truncate(engine)
    yield engine


@pytest.fixture
def local_dns(env):
    """A local authoritative DNS server (dnslib, UDP and TCP on loopback) that DNS_NAMESERVERS points
    at; the test fills ``.records``."""
    from tests.app.relay.dns_server import LocalDNS

    server = LocalDNS()
    env.setenv("DNS_NAMESERVERS", server.nameserver)
    reset_caches()
    yield server
    server.stop()


@pytest.fixture
def redis_url():
    if not reachable(REDIS_URL, 6379):
        need("Redis", f"nothing answers at {REDIS_URL}")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture
def rabbitmq_url():
    if not reachable(RABBITMQ_URL, 5672):
        need("RabbitMQ", f"nothing answers at {RABBITMQ_URL}")
    return RABBITMQ_URL


def due_of(member_id: int) -> dict:
    """When the member's next reminder, digest and nudge are due (None: not at all); its own session."""
    from app.checkins.schedules import due_times
    from app.db import session

    with session() as s:
        return due_times(s, member_id)


def scheduled(member, s):
    """``member`` with its next times (``memberdue``, read in session ``s``) beside its fields:
    next_reminder_at, next_digest_at, next_nudge_at."""
    from types import SimpleNamespace

    from app.checkins.schedules import due_times

    due = due_times(s, member.id)
    return SimpleNamespace(
        **member.model_dump(),
        **{f"next_{kind}_at": at for kind, at in due.items()},
    )


def make_due(s, kind: str, at, *where) -> None:
    """Every member (matching the ``where`` clauses on Member) due a ``kind`` at ``at`` (None: none)."""
    from sqlalchemy import select

    from app.checkins.schedules import set_due
    from app.models import Member

    set_due(s, kind, [(mid, at) for mid in s.execute(select(Member.id).where(*where)).scalars()])


@pytest.fixture
def sent():
    """The memory transport's list of sent messages, emptied."""
    from app.relay.transports import _MEMORY

    _MEMORY.sent.clear()
    yield _MEMORY.sent
    _MEMORY.sent.clear()


@pytest.fixture
def team(db):
    """A team of three (one observer) with schedules, committed."""
    from app.checkins.schedules import schedule_member
    from app.db import session
    from app.models import Member, Team

    with session() as s:
        t = Team(name="Rocket", timezone="Europe/Berlin", created_at=FIXED_NOW)
        s.add(t)
        s.flush()
        for name, email, role in (
            ("Ada", "ada@example.com", "admin"),
            ("Bob", "bob@example.com", "member"),
            ("Olga", "olga@example.com", "observer"),
        ):
            m = Member(team_id=t.id, email=email, name=name, role=role, created_at=FIXED_NOW)
            schedule_member(s, m, t, FIXED_NOW)
            s.add(m)
        s.flush()
        return t


class LocalS3:
    """A local S3 speaking the real protocol over HTTP (moto's server mode) and a boto3 client on it."""

    region = "us-east-1"
    settings = {"SES_S3_REGION": region, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.settings = {**self.settings, "SES_S3_ENDPOINT_URL": self.url}
        import boto3

        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self.client = session.client("s3", region_name=self.region, endpoint_url=self.url)

    def reset(self) -> None:
        """Forget every bucket and object (moto's own reset endpoint)."""
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(self.url + "/moto-api/reset", method="POST"), timeout=10
        )

    def put(self, bucket: str, key: str, body: bytes) -> None:
        """Store ``body`` at bucket/key, creating the bucket when needed."""
        if bucket not in {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}:
            self.client.create_bucket(Bucket=bucket)
        self.client.put_object(Bucket=bucket, Key=key, Body=body)


@pytest.fixture(scope="session")
def _s3_server():
    server = LocalS3()
    yield server
    server.server.stop()


@pytest.fixture
def local_s3(_s3_server, env):
    """The local S3, emptied, with donebox's settings pointing at it (SES_S3_*, AWS_* keys)."""
    _s3_server.reset()
    for k, v in _s3_server.settings.items():
        env.setenv(k, v)
    reset_caches()
    return _s3_server


# The slowest tests, by path: run first, so that pytest-xdist spreads them over its workers while
# the many short tests fill the gaps, instead of one worker ending the run alone on them.
SLOW_FIRST = (
    "tests/e2e/",
    "tests/app/web/test_hostile_walk.py",
    "tests/app/checkins/test_export.py",
    "tests/app/web/api/test_openapi.py",
    "tests/app/web/pages/test_phone.py",
    "tests/app/web/pages/test_browser.py",
)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))  # stable: the rest keep their order


@contextlib.contextmanager
def statements_seen(engine):
    """(statement, parameters) of each statement SQLAlchemy sends through ``engine`` meanwhile."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def query_plan(engine, statement: str, parameters) -> str:
    """The planner's plan of ``statement`` as one line: EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on
    SQLite."""
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        return " ".join(str(r) for r in conn.exec_driver_sql(explain + statement, parameters).all())
