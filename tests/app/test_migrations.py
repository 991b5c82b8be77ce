"""The migrations build the schema the models describe, on both databases."""

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import app.models  # noqa: F401 - every table on SQLModel.metadata


def _ours(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out the full-text search objects migration 0006 keeps beside the models (FTS5 tables)."""
    return not (
        reflected and compare_to is None and (name or "").startswith(("entry_fts", "ix_entry_text_fts"))
    )


def _differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": _ours})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_migrated_schema_matches_the_models(request, database):
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    assert _differences(url) == []


def test_the_tracking_migration_keeps_a_team_tracked_only_where_admin_and_relay_both_said_yes(tmp_path):
    from alembic import command

    from app.migrate import config, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    for revision in ("0006", "0007", "0010_inbound_quarantine", "0011_user_limits"):  # every head but 0012
        command.upgrade(config(url), revision)
    engine = create_engine(url)
    with engine.begin() as conn:
        for tid in (1, 2, 3):
            conn.exec_driver_sql(
                "INSERT INTO team (id, name, timezone, reminder_time, digest_time, workdays) "
                f"VALUES ({tid}, 't{tid}', 'UTC', '17:00', '08:00', '12345')"
            )
        # 1: admin said yes, relay had digests on; 2: admin said yes, relay said no to both; 3: admin no
        for tid, tracking in ((1, 1), (2, 1), (3, 0)):
            conn.exec_driver_sql(
                "INSERT INTO teamsettings (team_id, digest_enabled, digest_include_quiet, tracking, "
                f"reply_domain) VALUES ({tid}, 1, 1, {tracking}, '')"
            )
        for tid, digests in ((1, 1), (2, 0), (3, 1)):
            conn.exec_driver_sql(
                "INSERT INTO teamrelay (team_id, senders, strategy, track_digests, track_reminders) "
                f"VALUES ({tid}, '', 'spread', {digests}, 0)"
            )
    upgrade(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT team_id, tracking FROM teamsettings ORDER BY team_id").all()
        columns = [r[1] for r in conn.exec_driver_sql("PRAGMA table_info(teamrelay)")]
    engine.dispose()
    assert [(t, bool(on)) for t, on in rows] == [(1, True), (2, False), (3, False)]
    assert "track_digests" not in columns and "track_reminders" not in columns


@pytest.fixture
def fresh_pg():
    """An empty PostgreSQL database of its own (the session's shared one stays at the newest schema)."""
    from tests.conftest import PG_ADMIN_URL, need, reachable

    if not reachable(PG_ADMIN_URL, 5432):
        need("PostgreSQL", f"nothing answers at {PG_ADMIN_URL}")
    import psycopg

    name = f"donebox_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_scopes_migration_gives_existing_tokens_every_scope_and_teams_no_quota_of_their_own(
    request, tmp_path, database
):
    from alembic import command

    from app.migrate import config, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}" if database == "sqlite" else request.getfixturevalue("fresh_pg")
    upgrade(url)
    command.downgrade(config(url), "0014_team_tracking")  # this branch only: the others stay
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO team (id, name, timezone, reminder_time, digest_time, workdays) "
            "VALUES (1, 't1', 'UTC', '17:00', '08:00', '12345')"
        )
        conn.exec_driver_sql("INSERT INTO teamrelay (team_id, senders, strategy) VALUES (1, '', 'spread')")
        conn.exec_driver_sql(
            "INSERT INTO apitoken (name, token_sha256, created_at) VALUES ('old', 'abc', CURRENT_TIMESTAMP)"
        )
    upgrade(url)
    with engine.connect() as conn:
        scopes = conn.exec_driver_sql("SELECT scopes FROM apitoken").scalar_one()
        quotas = conn.exec_driver_sql("SELECT quota_hour, quota_day FROM teamrelay").one()
    engine.dispose()
    assert scopes == "send read manage" and tuple(quotas) == (None, None)
    assert _differences(url) == []


def test_several_machines_migrating_one_fresh_database_at_once_all_succeed_and_build_it_once(
    tmp_path, env, fresh_pg
):
    """Each host's donebox-migrate.service runs `donebox migrate` when the fleet starts: three at once
    on an empty PostgreSQL database must all exit 0 (without the lock, the losers fail creating types
    and tables that the winner has just created) and leave the schema the models describe."""
    import os
    import subprocess
    import sys

    url = fresh_pg
    procs = []
    for host in range(3):
        host_env = {**os.environ, "DATABASE_URL": url, "VAR_DIR": str(tmp_path / f"var{host}")}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "app.cli", "migrate"],
                env=host_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "database is at the newest schema"
    assert _differences(url) == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_migration_lock_makes_a_second_upgrader_wait_until_the_first_is_done(tmp_path, request, database):
    import threading

    from app.migrate import exclusive

    url = (
        f"sqlite:///{tmp_path / 'sub' / 'one.db'}"
        if database == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    entered = threading.Event()

    def second():
        with exclusive(url):
            entered.set()

    with exclusive(url):
        t = threading.Thread(target=second)
        t.start()
        assert not entered.wait(1.0)  # still held: the second waits
    assert entered.wait(30)
    t.join(30)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_outbox_writes_migration_keeps_the_rows_and_indexes_provider_ids_only_where_set(
    request, tmp_path, database
):
    from alembic import command
    from sqlalchemy import inspect
    from sqlalchemy.exc import IntegrityError

    from app.migrate import config, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}" if database == "sqlite" else request.getfixturevalue("fresh_pg")
    upgrade(url)
    command.downgrade(config(url), "0031_partial_null_indexes")  # 0032 and 0033: the other heads stay
    engine = create_engine(url)
    assert {fk["referred_table"] for fk in inspect(engine).get_foreign_keys("outboundmessage")} == {
        "team",
        "member",
    }
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO team (id, name, timezone, reminder_time, digest_time, workdays) "
            "VALUES (1, 't1', 'UTC', '17:00', '08:00', '12345')"
        )
        conn.exec_driver_sql(
            "INSERT INTO member (id, team_id, email, name, role, active) "
            "VALUES (1, 1, 'a@x.test', 'A', 'member', true)"
        )
        for mid, provider_id in ((1, ""), (2, "sg-2")):
            conn.exec_driver_sql(
                "INSERT INTO outboundmessage (id, idempotency_key, kind, team_id, member_id, to_addr, "
                "subject, template, context, message_id, state, attempts, error, provider_id) "
                f"VALUES ({mid}, 'k{mid}', 'reminder', 1, 1, 'a@x.test', '', 'reminder', '{{}}', "
                f"'<m{mid}@x>', 'queued', 0, '', '{provider_id}')"
            )
        for eid, provider_event_id in ((1, "NULL"), (2, "NULL"), (3, "'ev-3'")):
            conn.exec_driver_sql(
                "INSERT INTO messageevent (id, message_id, kind, from_state, detail, provider_event_id) "
                f"VALUES ({eid}, 2, 'delivered', '', '', {provider_event_id})"
            )
    upgrade(url)
    try:
        with engine.connect() as conn:
            kept = conn.exec_driver_sql("SELECT id, provider_id FROM outboundmessage ORDER BY id").all()
            events = conn.exec_driver_sql("SELECT id, provider_event_id FROM messageevent ORDER BY id").all()
        assert [tuple(r) for r in kept] == [(1, ""), (2, "sg-2")]
        assert [tuple(r) for r in events] == [(1, None), (2, None), (3, "ev-3")]
        assert inspect(engine).get_foreign_keys("outboundmessage") == []
        if database == "sqlite":
            with engine.connect() as conn:
                defs = dict(
                    conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'").all()
                )
        else:
            with engine.connect() as conn:
                defs = dict(conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes").all())
        assert "WHERE" in defs["ix_outboundmessage_provider_id"]
        assert "UNIQUE" in defs["ix_messageevent_provider_event_id"].upper()
        assert "WHERE" in defs["ix_messageevent_provider_event_id"]
        with pytest.raises(IntegrityError), engine.begin() as conn:  # a provider's event id is still unique
            conn.exec_driver_sql(
                "INSERT INTO messageevent (message_id, kind, from_state, detail, provider_event_id) "
                "VALUES (2, 'delivered', '', '', 'ev-3')"
            )
    finally:
        engine.dispose()
    assert _differences(url) == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_member_due_migration_moves_each_next_time_into_a_row_and_back(request, tmp_path, database):
    from alembic import command
    from sqlalchemy import inspect

    from app.migrate import config, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}" if database == "sqlite" else request.getfixturevalue("fresh_pg")
    upgrade(url)
    command.downgrade(config(url), "0032_fewer_outbox_writes")  # 0033 only
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO team (id, name, timezone, reminder_time, digest_time, workdays) "
                "VALUES (1, 't1', 'UTC', '17:00', '08:00', '12345')"
            )
            for mid, reminder, digest, nudge in (
                (1, "'2026-12-07 17:00:00+00:00'", "'2026-12-08 08:00:00+00:00'", "NULL"),
                (2, "NULL", "'2026-12-08 08:00:00+00:00'", "'2026-12-07 19:00:00+00:00'"),
                (3, "NULL", "NULL", "NULL"),
            ):
                conn.exec_driver_sql(
                    "INSERT INTO member (id, team_id, email, name, role, active, next_reminder_at, "
                    f"next_digest_at, next_nudge_at) VALUES ({mid}, 1, 'm{mid}@x.test', 'M', 'member', true, "
                    f"{reminder}, {digest}, {nudge})"
                )
        upgrade(url)
        assert not {"next_reminder_at", "next_digest_at", "next_nudge_at"} & {
            c["name"] for c in inspect(engine).get_columns("member")
        }
        from sqlmodel import Session

        from app.checkins.schedules import due_times

        with Session(engine) as s:
            got = {mid: due_times(s, mid) for mid in (1, 2, 3)}
        assert {mid: {k: v and v.isoformat() for k, v in d.items()} for mid, d in got.items()} == {
            1: {
                "reminder": "2026-12-07T17:00:00+00:00",
                "digest": "2026-12-08T08:00:00+00:00",
                "nudge": None,
            },
            2: {
                "reminder": None,
                "digest": "2026-12-08T08:00:00+00:00",
                "nudge": "2026-12-07T19:00:00+00:00",
            },
            3: {"reminder": None, "digest": None, "nudge": None},
        }
        command.downgrade(config(url), "0032_fewer_outbox_writes")  # and back: the columns get the rows
        with engine.connect() as conn:
            back = conn.exec_driver_sql(
                "SELECT id, next_reminder_at IS NOT NULL, next_digest_at IS NOT NULL, "
                "next_nudge_at IS NOT NULL FROM member ORDER BY id"
            ).all()
        assert [tuple(r) for r in back] == [
            (1, True, True, False),
            (2, False, True, True),
            (3, False, False, False),
        ]
    finally:
        engine.dispose()
    upgrade(url)
    assert _differences(url) == []
