import pytest
from sqlalchemy import func, select

from app.cli import main
from app.db import session
from app.models import OutboundMessage, TeamRelay, utcnow
from app.relay.admin import masked
from app.relay.routing import load_config
from tests.app.relay.transports import smtp_server
from tests.conftest import reset_caches


def test_senders_routes_and_team_settings_from_the_command_line(team, capsys):
    assert (
        main(
            ["sender", "add", "relay", "smtp://u:secret@relay.example.com:587?tls=starttls", "--weight", "3"]
        )
        == 0
    )
    assert main(["sender", "add", "sg", "sendgrid://SG.key@api.sendgrid.com", "--rate", "50"]) == 0
    assert main(["sender", "add", "bad", "ftp://x"]) == 1
    assert main(["route", "add", "*.gov", "sg"]) == 0
    assert main(["route", "add", "hotmail.com", "nope"]) == 1
    assert main(["team-relay", str(team.id), "--senders", "sg,relay", "--strategy", "failover"]) == 0
    assert main(["sender", "list"]) == 0
    out, err = capsys.readouterr()
    assert "secret" not in out and "SG.key" not in out and "***" in out
    assert "unknown transport" in err and "unknown senders: nope" in err
    cfg = load_config()
    assert cfg.senders["relay"].weight == 3 and cfg.senders["sg"].rate_per_s == 50
    assert cfg.routes == ((None, "*.gov", ("sg",)),)
    plan = cfg.team(team.id)
    assert plan.senders == ("sg", "relay") and plan.strategy == "failover"


def test_team_relay_sets_the_team_quotas_and_default_gives_them_back_to_the_settings(team, capsys):
    assert main(["team-relay", str(team.id), "--quota-hour", "5", "--quota-day", "0"]) == 0
    assert "quota-hour=5 quota-day=unlimited" in capsys.readouterr().out
    with session() as s:
        row = s.get(TeamRelay, team.id)
        assert (row.quota_hour, row.quota_day) == (5, 0)
    assert main(["team-relay", str(team.id), "--quota-hour", "default"]) == 0
    assert "quota-hour=default quota-day=unlimited" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["team-relay", str(team.id), "--quota-day", "-1"])
    assert "a number of messages (0 = no limit) or 'default'" in capsys.readouterr().err
    with session() as s:
        row = s.get(TeamRelay, team.id)
        assert (row.quota_hour, row.quota_day) == (None, 0)


def test_masked_hides_passwords_and_keys():
    assert masked("smtp://user:p@ss@host:25") == "smtp://user:***@host:25"
    assert masked("sendgrid://SG.abc@api.sendgrid.com") == "sendgrid://***@api.sendgrid.com"
    assert masked("maildir:") == "maildir:"


@pytest.fixture
def smtp():
    c = smtp_server.start()
    yield c
    c.stop()


def outbox_rows() -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(OutboundMessage)).scalar()


def test_sender_test_sends_through_the_sender_and_prints_the_servers_250(db, smtp, capsys):
    assert main(["sender", "add", "relay", f"smtp://{smtp.hostname}:{smtp.port}?tls=none"]) == 0
    capsys.readouterr()
    assert main(["sender", "test", "ops@example.com"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sender relay: 250 2.0.0 Ok: queued as ABC123")
    [envelope] = smtp.handler.envelopes
    assert envelope.rcpt_tos == ["ops@example.com"] and envelope.mail_from == "donebox@mail.test"
    assert b"Subject: donebox sender test" in envelope.content
    assert outbox_rows() == 0  # straight through the transport, not the outbox


def test_sender_test_prints_a_refusal_and_exits_1(db, smtp, capsys):
    assert main(["sender", "add", "relay", f"smtp://{smtp.hostname}:{smtp.port}?tls=none"]) == 0
    assert main(["sender", "add", "other", "maildir:", "--disabled"]) == 0
    capsys.readouterr()
    assert main(["sender", "test", "nouser@example.com", "--sender", "relay"]) == 1
    assert "sender relay refused the message: 550 5.1.1 no such user (at rcpt)" in capsys.readouterr().err
    smtp.handler.data_reply = "550 5.7.1 message content rejected"
    assert main(["sender", "test", "ops@example.com"]) == 1
    assert "550 5.7.1 message content rejected (at data)" in capsys.readouterr().err
    assert main(["sender", "test", "ops@example.com", "--sender", "nope"]) == 1
    assert "no sender named 'nope'" in capsys.readouterr().err
    assert smtp.handler.envelopes == []


def test_sender_test_with_nothing_configured_says_what_to_run(db, env, capsys):
    env.setenv("MAIL_TRANSPORT", "none")
    reset_caches()
    assert main(["sender", "test", "ops@example.com"]) == 1
    assert "donebox sender add" in capsys.readouterr().err


def test_pass_through_is_switched_and_shown_from_the_command_line(db, capsys):
    from tests.app.relay.test_passthrough import NOW, api_row, kinds, send

    assert main(["pass-through", "status"]) == 0
    out = capsys.readouterr().out
    assert "mode: auto\nactive: no\n" in out and "threshold (PASS_THROUGH_AFTER_S): 300 s" in out
    assert main(["pass-through", "on"]) == 0
    out = capsys.readouterr().out
    assert "mode: on (set by donebox pass-through at " in out and "active: yes, since " in out
    assert "switched on: 1 time(s); passed through: 0 message(s)" in out
    bulk = api_row("bulk", batch_id="nl-1")
    assert send([bulk], NOW)[0] == {bulk: "sent"} and "pass_through" in kinds(bulk)
    assert main(["pass-through", "status"]) == 0
    assert "passed through: 1 message(s)" in capsys.readouterr().out
    assert main(["pass-through", "off"]) == 0
    assert "mode: off" in capsys.readouterr().out
    tracked = api_row("tracked", batch_id="nl-1")
    assert send([tracked], NOW)[0] == {tracked: "sent"} and "pass_through" not in kinds(tracked)
    with pytest.raises(SystemExit):
        main(["pass-through", "sometimes"])
    assert "invalid choice: 'sometimes'" in capsys.readouterr().err


def test_adding_a_sender_makes_the_mail_that_waited_for_one_due_now(team, capsys):
    """Not after the backoff each attempt without a sender grew; mail deferred for other reasons
    keeps its time, and a sender added disabled wakes nothing."""
    from datetime import timedelta

    from app.relay.routing import NO_SENDER
    from tests.app.relay.test_routing import defer_until, message_to

    later = utcnow() + timedelta(hours=3)
    errors = [NO_SENDER, "no healthy sender for example.com", "451 4.3.0 mailbox busy"]
    ids = [message_to(team, f"u{i}@example.com") for i in range(len(errors))]
    for mid, error in zip(ids, errors, strict=True):
        defer_until([mid], later, error=error)

    def due():
        with session() as s:
            rows = s.execute(
                select(OutboundMessage.id, OutboundMessage.next_attempt_at).where(OutboundMessage.id.in_(ids))
            )
            return {mid: at < later for mid, at in rows}

    assert main(["sender", "add", "spare", "smtp://relay.example.com:587", "--disabled"]) == 0
    assert due() == dict.fromkeys(ids, False)
    assert main(["sender", "add", "relay", "smtp://relay.example.com:587"]) == 0
    assert due() == {ids[0]: True, ids[1]: True, ids[2]: False}
    assert "2 deferred messages that waited for a sender are due now" in capsys.readouterr().out
