"""app.relay.suppressions: the one precedence rule, what an entry stops, and that it is the one writer."""

import itertools
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import session
from app.models import Suppression
from app.relay import suppressions
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW
ROOT = Path(__file__).resolve().parents[3]


def listed() -> dict[str, str]:
    with session() as s:
        return dict(s.execute(select(Suppression.email, Suppression.reason)).all())


def test_the_reasons_are_ordered_manual_complaint_bounce_unsubscribe_soft_bounce():
    assert suppressions.REASONS == ("manual", "complaint", "bounce", "unsubscribe", "soft_bounce")
    assert [suppressions.RANK[r] for r in suppressions.REASONS] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(("old", "new"), list(itertools.product(suppressions.REASONS, repeat=2)))
def test_a_reason_replaces_an_entry_only_when_strictly_stronger(db, old, new):
    replaces = suppressions.REASONS.index(new) < suppressions.REASONS.index(old)
    with session() as s:
        assert suppressions.add(s, "bob@example.com", old, detail="first", now=NOW)
    with session() as s:
        assert suppressions.add(s, "Bob@Example.com", new, detail="second", now=NOW) is replaces
    with session() as s:
        row = suppressions.lookup(s, "bob@example.com")
    assert (row.reason, row.detail) == ((new, "second") if replaces else (old, "first"))
    assert suppressions.stronger(new, old) is replaces


def test_in_one_batch_the_strongest_reason_for_an_address_wins(db):
    items = {
        "bob@example.com": ("unsubscribe", "link"),
        "BOB@example.com": ("complaint", "arf"),
        "Bob@example.com": ("bounce", "dsn"),
        "carol@example.com": ("bounce", "dsn"),
    }
    with session() as s:
        assert suppressions.add_many(s, items, now=NOW) == 2
    assert listed() == {"bob@example.com": "complaint", "carol@example.com": "bounce"}


def test_an_unknown_reason_is_refused(db):
    with session() as s, pytest.raises(ValueError, match="not a suppression reason"):
        suppressions.add(s, "bob@example.com", "spam", now=NOW)


def test_the_detail_is_kept_to_a_thousand_characters(db):
    with session() as s:
        suppressions.add(s, "bob@example.com", "manual", detail="x" * 5000, now=NOW)
        assert len(suppressions.lookup(s, "bob@example.com").detail) == 1000


def test_remove_says_which_reason_it_took_off(db):
    with session() as s:
        suppressions.add(s, "bob@example.com", "bounce", now=NOW)
    with session() as s:
        assert suppressions.remove(s, "BOB@example.com") == "bounce"
        assert suppressions.remove(s, "bob@example.com") is None
    assert listed() == {}


def test_reasons_reads_the_list_for_many_addresses_at_once(db):
    with session() as s:
        suppressions.add_many(s, {"a@x.test": ("bounce", ""), "b@x.test": ("unsubscribe", "")}, now=NOW)
    with session() as s:
        assert suppressions.reasons(s, ["A@x.test", "b@x.test", "c@x.test"], now=NOW) == {
            "a@x.test": "bounce",
            "b@x.test": "unsubscribe",
        }
        assert suppressions.reasons(s, [], now=NOW) == {}


@pytest.mark.parametrize(
    ("reason", "kind", "stopped"),
    [
        ("", "reminder", False),
        ("unsubscribe", "reminder", True),
        ("unsubscribe", "signin", False),  # asked for this minute
        ("bounce", "signin", True),
        ("complaint", "signin", True),
        ("manual", "signin", True),
        ("manual", "api", True),
    ],
)
def test_an_unsubscribe_lets_sign_in_links_through_and_every_other_reason_stops_everything(
    reason, kind, stopped
):
    assert suppressions.stops(reason, kind) is stopped


def test_only_an_unsubscribe_is_lifted_by_the_recipient():
    assert [r for r in suppressions.REASONS if suppressions.recipient_may_lift(r)] == ["unsubscribe"]


WRITES = re.compile(r"\bSuppression\(|Suppression\.__table__|(?:insert|update|delete)\(\s*Suppression\b")


def test_nothing_but_the_suppressions_module_writes_the_list():
    owners = {ROOT / "app" / "relay" / "suppressions.py", ROOT / "app" / "models.py"}
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("app", "jobs", "parsers")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in owners
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if WRITES.search(line)
    ]
    assert offenders == [], "write the suppression list through app.relay.suppressions"


def owner(email: str = "x@example.com") -> tuple[str, int | None]:
    with session() as s:
        e = suppressions.lookup(s, email)
        return e.reason, e.team_id


def test_an_entry_records_whose_mail_caused_it_and_two_teams_make_it_instance_wide(team):
    from app.models import Team

    with session() as s:
        other = Team(name="Other")
        s.add(other)
        s.flush()
        other = other.id
        assert suppressions.add(s, "x@example.com", "unsubscribe", team_id=team.id, now=NOW)
    assert owner() == ("unsubscribe", team.id)
    with session() as s:  # a stronger reason brings its own team
        assert suppressions.add(s, "x@example.com", "complaint", team_id=other, now=NOW)
    assert owner() == ("complaint", other)
    with session() as s:  # weaker: nothing changes
        assert not suppressions.add(s, "x@example.com", "bounce", team_id=team.id, now=NOW)
    assert owner() == ("complaint", other)
    with session() as s:  # the same reason from the other team: the entry is no single team's
        assert suppressions.add(s, "x@example.com", "complaint", team_id=team.id, now=NOW)
        assert not suppressions.add(s, "x@example.com", "complaint", team_id=other, now=NOW)
    assert owner() == ("complaint", None)
    with session() as s:
        entry = suppressions.lookup(s, "x@example.com")
        assert "only an operator" in suppressions.refusal(entry, [team.id, other])
        assert suppressions.refusal(entry, None) == ""
        assert suppressions.add(s, "y@example.com", "bounce", team_id=team.id, now=NOW)
        mine = suppressions.lookup(s, "y@example.com")
        assert suppressions.refusal(mine, [team.id]) == ""
        assert "another team" in suppressions.refusal(mine, [other])


def test_a_bounce_at_send_time_and_an_unsubscribe_link_record_the_messages_team(team):
    from app.checkins.outgoing import create_reminder
    from app.errors import PermanentSendError
    from app.models import Member
    from app.relay import tracking
    from app.relay.pipeline import deliver
    from app.settings import get_settings
    from tests.app.relay.test_pipeline import Failing

    with session() as s:
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        mid, _ = create_reminder(s, bob, team, NOW.date(), now=NOW, settings=get_settings())
        other, _ = create_reminder(s, ada, team, NOW.date(), now=NOW, settings=get_settings())
        tracking.unsubscribe(s, other, now=NOW, user_agent="test", via="link")
    assert (
        deliver(mid, transport=Failing(PermanentSendError("550 5.1.1 no such user", smtp_code=550)), now=NOW)
        == "bounced"
    )
    assert owner("bob@example.com") == ("bounce", team.id)
    assert owner("ada@example.com") == ("unsubscribe", team.id)
