"""`donebox scheduler --once [--now ...]`: one tick on a chosen clock, for operators and tests."""

from sqlalchemy import func, select

from app.cli import main
from app.db import session
from app.models import OutboundMessage


def test_one_tick_at_a_given_instant_prints_what_it_did(team, sent, capsys):
    assert main(["scheduler", "--once", "--now", "2026-11-23T16:00:05+00:00"]) == 0
    assert "created=2 swept=0 inbound=0" in capsys.readouterr().out
    with session() as s:
        assert s.execute(select(func.count()).select_from(OutboundMessage)).scalar() == 2


def test_a_bad_now_is_refused_with_the_reason(team, capsys):
    assert main(["scheduler", "--once", "--now", "tomorrow"]) == 2
    assert "--now must be an ISO 8601 instant" in capsys.readouterr().err
    assert main(["scheduler", "--now", "2026-11-23T16:00:05+00:00"]) == 2
    assert "--now needs --once" in capsys.readouterr().err
