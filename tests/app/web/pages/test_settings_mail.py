"""Each team setting, changed on the settings page, judged by the mail that goes out.

The page saves; the scheduler's producer (app.checkins.due) makes the rows; the relay's pipeline
delivers them to a memory transport; the assertions read the delivered bytes.
"""

from datetime import date, timedelta
from email.parser import BytesParser
from email.policy import default
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.checkins import teams
from app.checkins.due import run
from app.checkins.outgoing import REMINDER_SUBJECT
from app.checkins.schedules import due_times
from app.cli import main
from app.db import session
from app.models import Entry, InboundMessage, Member, utcnow
from app.relay.api_tokens import create_token
from app.relay.pipeline import deliver_many
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from jobs.broker import drain
from tests.app.web.conftest import AUTH, post, sign_in
from tests.conftest import FIXED_NOW, make_due

MONDAY = date(2026, 11, 23)
MONDAY_REMINDER = FIXED_NOW.replace(hour=16, minute=0, second=1)  # 17:00 Berlin
TUESDAY_DIGEST = FIXED_NOW.replace(day=24, hour=7, minute=0, second=1)  # 08:00 Berlin
WEDNESDAY_DIGEST = TUESDAY_DIGEST + timedelta(days=1)

# the team fixture's settings as its page shows them; a test changes what it tests
FORM = {
    "name": "Rocket",
    "timezone": "Europe/Berlin",
    "reminder_time": "17:00",
    "digest_time": "08:00",
    **{f"day{d}": "1" for d in "12345"},
    **{f"dday{d}": "1" for d in "12345"},
    "digest_enabled": "1",
    "digest_include_quiet": "1",
    "weekly_day": "0",
    "reply_domain": "",
}


def save(client, team, **changes) -> None:
    """Submit the team settings page with ``changes`` (None: the box left unticked)."""
    form = {k: v for k, v in {**FORM, **changes}.items() if v is not None}
    r = post(client, f"/teams/{team.id}/settings", form)
    assert r.status_code == 303, r.text


def mail_at(when, kind: str) -> list:
    """Everything the scheduler makes at ``when`` for members due a ``kind`` (made due just before
    it: saving the page rescheduled them on the real clock), delivered; the parsed delivered bytes."""
    with session() as s:
        make_due(s, kind, when - timedelta(seconds=1))
    ids: list[int] = []
    run(now=when, settings=get_settings(), enqueue=ids.extend)
    transport = MemoryTransport()
    states = deliver_many(ids, transport=transport, now=when)
    assert set(states.values()) <= {"sent"}, states
    return [BytesParser(policy=default).parsebytes(o.raw) for o in transport.outgoing]


def html_of(msg) -> str:
    return msg.get_body(("html",)).get_content()


def write(team, email: str, day: date, text: str) -> None:
    with session() as s:
        m = s.execute(select(Member).where(Member.email == email)).scalar_one()
        s.add(Entry(team_id=team.id, member_id=m.id, day=day, text=text))


@pytest.mark.parametrize("tracking", [False, True])
def test_the_tracking_box_decides_the_pixel_and_the_links_of_reminders_and_digests(
    client, team, sent, tracking
):
    sign_in(client, sent, "ada@example.com")
    save(client, team, tracking="1")
    save(client, team, tracking="1" if tracking else None)  # the last save is the one that counts
    assert ('name="tracking" value="1" checked' in client.get(f"/teams/{team.id}/settings").text) is tracking

    reminders = mail_at(MONDAY_REMINDER, "reminder")
    write(team, "ada@example.com", MONDAY, "Shipped the export")
    digests = mail_at(TUESDAY_DIGEST, "digest")
    kinds = sorted(m["X-Donebox-Kind"] for m in reminders + digests)
    assert kinds == ["digest"] * 3 + ["reminder"] * 2  # Olga observes: a digest, no reminder
    for msg in reminders + digests:
        html = html_of(msg)
        assert ("/t/o/" in html) is tracking, msg["X-Donebox-Kind"]
        assert msg["List-Unsubscribe"]  # recurring mail can always be stopped, tracked or not
    for msg in digests:
        html = html_of(msg)
        assert ('href="http://donebox.test/t/c/' in html) is tracking
        assert ('href="http://donebox.test/"' in html) is not tracking  # the link as written


def test_a_new_team_is_not_tracked_and_its_page_says_so(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    assert 'name="tracking" value="1" checked' not in client.get(f"/teams/{team.id}/settings").text
    reminders = mail_at(MONDAY_REMINDER, "reminder")
    assert reminders and all("/t/o/" not in html_of(m) for m in reminders)


def test_the_reply_domain_set_on_the_page_is_where_replies_go_and_replies_to_it_count(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    save(client, team, reply_domain="In.Example.com")
    reminders = {m["To"]: m for m in mail_at(MONDAY_REMINDER, "reminder")}
    reply_to = reminders["bob@example.com"]["Reply-To"]
    assert reply_to.startswith("reply+") and reply_to.endswith("@in.example.com")

    raw = (
        f"From: Bob <bob@example.com>\r\nTo: {reply_to}\r\nSubject: Re: {REMINDER_SUBJECT}\r\n"
        "Message-ID: <bob-reply-1@example.com>\r\n\r\nFixed the login bug\r\n"
    )
    r = client.post("/inbound/raw", content=raw.encode(), headers=AUTH)
    assert r.status_code == 202, r.text
    drain()
    with session() as s:
        row = s.get(InboundMessage, r.json()["id"])
        entries = s.execute(select(Entry.text, Entry.day).where(Entry.inbound_id == row.id)).all()
    assert (row.state, row.error) == ("processed", "")
    assert entries == [("Fixed the login bug", MONDAY)]

    save(client, team, reply_domain="")  # back to REPLY_DOMAIN
    with session() as s:
        make_due(s, "reminder", None)
    tuesday = {m["To"]: m for m in mail_at(MONDAY_REMINDER + timedelta(days=1), "reminder")}
    assert tuesday["bob@example.com"]["Reply-To"].endswith("@reply.test")


def test_a_reply_domain_the_instance_does_not_receive_is_refused_on_the_page(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings", {**FORM, "reply_domain": "mail.elsewhere.org"})
    assert r.status_code == 422 and "receives replies only for reply.test, in.example.com" in r.text
    with session() as s:
        assert teams.options(s, team.id).reply_domain == ""


def test_skip_empty_on_the_page_means_no_digest_for_a_silent_day_and_off_means_one(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    save(client, team, skip_empty="1")
    assert mail_at(TUESDAY_DIGEST, "digest") == []  # nobody wrote on Monday
    save(client, team)  # skip-empty unticked
    digests = mail_at(TUESDAY_DIGEST, "digest")
    assert sorted(m["To"] for m in digests) == ["ada@example.com", "bob@example.com", "olga@example.com"]
    assert {m["X-Donebox-Kind"] for m in digests} == {"digest"}


def test_the_weekly_digest_set_on_the_page_goes_out_on_its_day_and_not_on_others(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    save(client, team, weekly_day="2")  # with Tuesday's digest
    assert 'value="2" selected' in client.get(f"/teams/{team.id}/settings").text
    write(team, "ada@example.com", MONDAY, "Shipped the export")
    tuesday = mail_at(TUESDAY_DIGEST, "digest")
    weekly = [m for m in tuesday if m["X-Donebox-Kind"] == "weekly"]
    assert len(weekly) == 3 and weekly[0]["Subject"] == "Rocket: the week to Monday, 23 November"
    assert "Shipped the export" in weekly[0].get_body(("plain",)).get_content()
    write(team, "ada@example.com", MONDAY + timedelta(days=1), "Wrote the docs")
    wednesday = mail_at(WEDNESDAY_DIGEST, "digest")
    assert wednesday and {m["X-Donebox-Kind"] for m in wednesday} == {"digest"}


def test_digest_days_set_on_the_page_decide_which_mornings_have_a_digest(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    save(client, team, dday2=None, dday4=None)  # no digest on Tuesdays and Thursdays
    with session() as s:
        due = [due_times(s, m)["digest"] for m in s.execute(select(Member.id).where(Member.active)).scalars()]
    berlin = ZoneInfo("Europe/Berlin")
    # the page rescheduled everyone (on the real clock) onto a digest day
    assert due and all(d.astimezone(berlin).isoweekday() in (1, 3, 5) for d in due)
    at = max(due) + timedelta(seconds=1)
    ids: list[int] = []
    run(now=at, settings=get_settings(), enqueue=ids.extend)
    transport = MemoryTransport()
    deliver_many(ids, transport=transport, now=at)
    assert len(transport.outgoing) == 3  # their digest arrives on that day


# what the page above saved, in update_team's words: the API and the CLI must reach the same values
CHANGES = {
    "digest_workdays": "1235",
    "weekly_day": 3,
    "skip_empty": True,
    "tracking": True,
    "reply_domain": "in.example.com",
}


@pytest.fixture
def spy(monkeypatch):
    """update_team, recording each call's keywords: the one function every surface must reach."""
    calls, real = [], teams.update_team

    def recording(s, team_id, **kw):
        calls.append(kw)
        return real(s, team_id, **kw)

    monkeypatch.setattr(teams, "update_team", recording)
    return calls


def test_the_api_sets_the_page_settings_through_update_team(client, team, spy):
    with session() as s:
        auth = {"Authorization": "Bearer " + create_token(s, "t", now=utcnow(), team_id=team.id)}
    body = {
        "digest_workdays": "1235",
        "weekly_digest_day": 3,
        "skip_empty_digests": True,
        "tracking": True,
        "reply_domain": "In.Example.com",
    }
    r = client.patch(f"/api/teams/{team.id}/settings", json=body, headers=auth)
    assert r.status_code == 200, r.text
    assert len(spy) == 1 and {k: spy[0][k] for k in CHANGES} == {**CHANGES, "reply_domain": "In.Example.com"}
    with session() as s:
        now = teams.current(s, team.id)
    assert {k: now[k] for k in CHANGES} == CHANGES
    assert r.json() == client.get(f"/api/teams/{team.id}/settings", headers=auth).json()
    assert r.json()["weekly_digest_day"] == 3 and r.json()["tracking"] is True
    refused = client.patch(f"/api/teams/{team.id}/settings", json={"weekly_digest_day": 4}, headers=auth)
    assert refused.status_code == 400 and "not one of the digest weekdays" in refused.json()["error"]
    unknown = client.patch(f"/api/teams/{team.id}/settings", json={"track_digests": False}, headers=auth)
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown settings: track_digests"
    spec = client.get("/api/openapi.json").json()
    assert "patch" in spec["paths"]["/api/teams/{team_id}/settings"]
    assert "weekly_digest_day" in spec["components"]["schemas"]["TeamSettingsPatch"]["properties"]


def test_the_cli_sets_the_page_settings_through_update_team(team, spy, capsys):
    argv = ["team-settings", str(team.id), "--digest-days", "1235", "--weekly-day", "3"]
    argv += ["--skip-empty", "on", "--tracking", "on", "--reply-domain", "in.example.com"]
    assert main(argv) == 0
    assert len(spy) == 1 and {k: spy[0][k] for k in CHANGES} == CHANGES
    with session() as s:
        now = teams.current(s, team.id)
    assert {k: now[k] for k in CHANGES} == CHANGES
    out = capsys.readouterr().out
    assert "tracking=on" in out and "weekly_day=3" in out and "reply_domain=in.example.com" in out
    assert main(["team-settings", str(team.id), "--reply-domain", "elsewhere.org"]) == 2
    assert "receives replies only for" in capsys.readouterr().err
