import pytest
from markupsafe import escape
from sqlalchemy import select

from app.checkins import teams
from app.checkins.schedules import due_times, schedule_member, update_team_schedule
from app.checkins.teams import TeamError
from app.checkins.times import ScheduleError
from app.db import session
from app.models import ApiToken, Member, OutboundMessage, Suppression, Team, TeamSettings, utcnow
from app.relay import suppressions
from tests.app.web.conftest import post, sign_in
from tests.conftest import scheduled


def member(email):
    with session() as s:
        return scheduled(s.execute(select(Member).where(Member.email == email)).scalar_one(), s)


def test_an_admin_changes_the_team_settings_and_schedules_follow(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    before = member("bob@example.com").next_reminder_at
    form = {
        "name": "Rocket Science",
        "timezone": "America/New_York",
        "reminder_time": "18:30",
        "digest_time": "09:15",
        "day1": "1",
        "day3": "1",
        "dday1": "1",
        "dday3": "1",
        "digest_include_quiet": "1",
        "tracking": "1",
        "reply_domain": "In.Example.com",
    }
    assert post(client, f"/teams/{team.id}/settings", form).status_code == 303
    with session() as s:
        t = s.get(Team, team.id)
        opts = s.get(TeamSettings, team.id)
    assert (t.name, t.timezone, t.reminder_time, t.digest_time, t.workdays) == (
        "Rocket Science",
        "America/New_York",
        "18:30",
        "09:15",
        "13",
    )
    assert (opts.digest_enabled, opts.digest_include_quiet, opts.tracking, opts.reply_domain) == (
        False,
        True,
        True,
        "in.example.com",
    )
    assert member("bob@example.com").next_reminder_at != before
    assert 'value="Rocket Science"' in client.get(f"/teams/{team.id}/settings").text


def test_bad_team_settings_are_refused_with_a_reason_and_change_nothing(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    good = {
        "name": "R",
        "timezone": "UTC",
        "reminder_time": "17:00",
        "digest_time": "08:00",
        "day1": "1",
        "dday1": "1",
    }
    for bad, reason in (
        ({"name": ""}, "name"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"reminder_time": "25:00"}, "HH:MM"),
        ({"digest_time": "soon"}, "HH:MM"),
        ({"day1": ""}, "workday"),
        ({"reply_domain": "not a domain"}, "domain"),
        ({"reply_domain": "mail.elsewhere.org"}, "receives replies only for reply.test, in.example.com"),
        ({"dday1": ""}, "digest_workdays"),
        ({"weekly_day": "2"}, "not one of the digest weekdays"),
        ({"weekly_day": "x"}, "eekly_digest_day must be 0"),
    ):
        r = post(client, f"/teams/{team.id}/settings", {**good, **bad})
        assert r.status_code == 422 and reason in r.text, (bad, r.text)
    with session() as s:
        assert s.get(Team, team.id).name == "Rocket"


def test_an_admin_invites_a_member_who_gets_an_email_and_can_sign_in(client, team, sent):
    from jobs.broker import drain

    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings/members", {"email": "Cy@Example.com", "name": "Cy"})
    assert r.status_code == 303
    drain()
    invite = [m for m in sent if m["To"] == "cy@example.com"]
    assert invite and "Rocket" in invite[0]["Subject"]
    assert "http://donebox.test/signin" in invite[0].get_body(("plain",)).get_content()
    with session() as s:
        assert s.execute(
            select(OutboundMessage.kind).where(OutboundMessage.to_addr == "cy@example.com")
        ).scalar() == ("invite")
    assert member("cy@example.com").next_reminder_at is not None
    again = post(client, f"/teams/{team.id}/settings/members", {"email": "cy@example.com"})
    assert again.status_code == 422 and "already" in again.text
    client.cookies.clear()
    sign_in(client, sent, "cy@example.com")
    assert "Rocket" in client.get(f"/teams/{team.id}").text


def test_roles_change_and_a_team_keeps_one_admin(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    ada, bob = member("ada@example.com"), member("bob@example.com")
    base = f"/teams/{team.id}/settings/members"
    r = post(client, f"{base}/{ada.id}/role", {"role": "member"})
    assert r.status_code == 422 and "at least one admin" in r.text
    last = post(client, f"{base}/{ada.id}/remove", {"confirm": "yes"})
    assert last.status_code == 422 and "at least one admin" in last.text
    assert post(client, f"{base}/{bob.id}/role", {"role": "boss"}).status_code == 422
    assert post(client, f"{base}/{bob.id}/role", {"role": "observer"}).status_code == 303
    assert member("bob@example.com").role == "observer"
    assert post(client, f"{base}/{bob.id}/remove").status_code == 200  # asked, not removed
    assert member("bob@example.com").active is True
    assert post(client, f"{base}/{bob.id}/remove", {"confirm": "yes"}).status_code == 303
    assert member("bob@example.com").active is False
    client.cookies.clear()
    sign_in(client, sent, "ada@example.com")  # ada is still fine; bob is gone
    from tests.app.web.conftest import csrf_of

    csrf_of(client)
    from jobs.broker import drain

    post(client, "/signin", {"email": "bob@example.com"})
    drain()
    assert not [m for m in sent if m["To"] == "bob@example.com"]


def test_a_member_sets_their_own_time_zone(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    before = member("bob@example.com").next_reminder_at
    assert post(client, f"/teams/{team.id}/settings/me", {"timezone": "Asia/Tokyo"}).status_code == 303
    bob = member("bob@example.com")
    assert bob.timezone == "Asia/Tokyo" and bob.next_reminder_at != before
    assert post(client, f"/teams/{team.id}/settings/me", {"timezone": "Nowhere/Else"}).status_code == 422
    assert post(client, f"/teams/{team.id}/settings/me", {"timezone": ""}).status_code == 303
    assert member("bob@example.com").timezone is None
    assert "Asia/Tokyo" in client.get(f"/teams/{team.id}/settings/me").text  # the picker lists every zone


def test_a_member_unsubscribes_and_resubscribes(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    url = f"/teams/{team.id}/settings/me/mail"
    assert post(client, url, {"action": "unsubscribe", "confirm": "yes"}).status_code == 303
    with session() as s:
        assert s.execute(
            select(Suppression.reason).where(Suppression.email == "bob@example.com")
        ).scalar() == ("unsubscribe")
    assert "suppressed (unsubscribe)" in client.get(f"/teams/{team.id}/settings/me").text
    assert post(client, url, {"action": "resubscribe"}).status_code == 303
    with session() as s:
        assert s.execute(select(Suppression).where(Suppression.email == "bob@example.com")).scalar() is None


def test_a_bounce_suppression_is_not_lifted_by_the_member(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    with session() as s:
        suppressions.add(s, "bob@example.com", "bounce", now=utcnow())
    r = post(client, f"/teams/{team.id}/settings/me/mail", {"action": "resubscribe"})
    assert r.status_code == 422 and "bounce" in r.text


def test_a_members_unsubscribe_goes_on_the_list_and_never_replaces_a_stronger_reason(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    url = f"/teams/{team.id}/settings/me/mail"
    assert post(client, url, {"action": "unsubscribe", "confirm": "yes"}).status_code == 303
    with session() as s:
        sup = suppressions.lookup(s, "bob@example.com")
        assert (sup.reason, sup.detail) == ("unsubscribe", "from the settings page")
        suppressions.add(s, "bob@example.com", "complaint", detail="arf", now=utcnow())
    assert post(client, url, {"action": "unsubscribe", "confirm": "yes"}).status_code == 303
    with session() as s:
        sup = suppressions.lookup(s, "bob@example.com")
    assert (sup.reason, sup.detail) == ("complaint", "arf")


def test_an_admin_creates_and_revokes_api_tokens(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings/tokens", {"name": "CI", "scope_read": "1"})
    assert r.status_code == 200
    token = r.text.split('<code id="new-token">')[1].split("<")[0]
    assert token.startswith("dbx_")
    assert client.get("/api/teams", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with session() as s:
        tid = s.execute(select(ApiToken.id)).scalar()
    assert (
        post(client, f"/teams/{team.id}/settings/tokens/{tid}/revoke", {"confirm": "yes"}).status_code == 303
    )
    assert client.get("/api/teams", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert token not in client.get(f"/teams/{team.id}/settings/tokens").text


def test_a_token_made_on_the_page_has_the_scopes_ticked_and_none_ticked_is_refused(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{team.id}/settings/tokens").text
    assert 'name="scope_send" value="1" checked' in page and 'name="scope_manage" value="1">' in page
    r = post(client, f"/teams/{team.id}/settings/tokens", {"name": "none"})
    assert r.status_code == 422 and "Tick at least one scope" in r.text
    r = post(client, f"/teams/{team.id}/settings/tokens", {"name": "mailer", "scope_send": "1"})
    token = r.text.split('<code id="new-token">')[1].split("<")[0]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/teams", headers=headers).status_code == 403
    with session() as s:
        assert s.execute(select(ApiToken.scopes).where(ApiToken.name == "mailer")).scalar_one() == "send"
    assert '<td class="scopes">send</td>' in client.get(f"/teams/{team.id}/settings/tokens").text


def test_an_operator_creates_a_team_and_becomes_its_admin(client, sent):
    sign_in(client, sent, "root@example.com")  # the first user of an empty instance: operator
    assert post(client, "/teams", {"name": "Fresh"}).status_code == 303
    with session() as s:
        m = s.execute(select(Member).where(Member.email == "root@example.com")).scalar_one()
        assert m.role == "admin" and s.get(Team, m.team_id).name == "Fresh"


def test_a_member_sets_their_own_reminder_time_days_and_a_vacation(client, team, sent):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from app.models import MemberPause

    sign_in(client, sent, "bob@example.com")
    url = f"/teams/{team.id}/settings/me"
    r = post(client, url, {"reminder_time": "09:30", "rday_1": "1", "rday_3": "1", "digest_time": "07:15"})
    assert r.status_code == 303
    bob = member("bob@example.com")
    assert (bob.reminder_time, bob.reminder_days, bob.digest_time) == ("09:30", "13", "07:15")
    assert bob.next_reminder_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).strftime(
        "%H:%M %u"
    ) in (
        "09:30 1",
        "09:30 3",
    )
    bad = post(client, url, {"reminder_time": "25:00"})
    assert bad.status_code == 422 and "HH:MM" in bad.text
    assert member("bob@example.com").reminder_time == "09:30"  # nothing changed

    start = datetime.now(ZoneInfo("Europe/Berlin")).date()  # from today, in the team's zone
    r = post(
        client,
        url,
        {
            "action": "pause",
            "first_day": start.isoformat(),
            "last_day": (start + timedelta(days=13)).isoformat(),
        },
    )
    assert r.status_code == 303
    assert member("bob@example.com").next_reminder_at.date() > start + timedelta(days=13)
    assert "Paused from" in client.get(url).text
    reversed_pause = post(
        client, url, {"action": "pause", "first_day": "2027-01-10", "last_day": "2027-01-01"}
    )
    assert reversed_pause.status_code == 422
    with session() as s:
        pause_id = s.execute(select(MemberPause.id)).scalar_one()
    assert post(client, f"{url}/pauses/{pause_id}/remove", {"confirm": "yes"}).status_code == 303
    assert member("bob@example.com").next_reminder_at.date() <= start + timedelta(days=7)
    assert post(client, url, {"reminder_time": ""}).status_code == 303  # back to the team's time
    assert member("bob@example.com").reminder_time is None


TEAM_FORM = {
    "name": "Rocket",
    "timezone": "America/New_York",
    "reminder_time": "18:30",
    "digest_time": "09:15",
    "day1": "1",
    "day3": "1",
    "day6": "1",
    **{f"dday{d}": "1" for d in "12345"},
}


def twin_team(team_id: int) -> int:
    """A second team with the same schedule and members as ``team_id``, scheduled now."""
    with session() as s:
        t = s.get(Team, team_id)
        twin = Team(name="Twin", timezone=t.timezone, reminder_time=t.reminder_time, workdays=t.workdays)
        s.add(twin)
        s.flush()
        for m in s.execute(select(Member).where(Member.team_id == team_id)).scalars():
            copy = Member(team_id=twin.id, email=m.email, name=m.name, role=m.role)
            schedule_member(s, copy, twin, utcnow())
            s.add(copy)
        return twin.id


def next_times_by_email(team_id: int) -> dict[str, tuple]:
    with session() as s:
        rows = s.execute(select(Member.email, Member.id).where(Member.team_id == team_id)).all()
        return {email: tuple(due_times(s, mid).values())[:2] for email, mid in rows}


def test_saving_team_settings_on_the_page_reschedules_exactly_as_the_domain_does(client, team, sent):
    twin = twin_team(team.id)
    sign_in(client, sent, "ada@example.com")
    before = utcnow()
    assert post(client, f"/teams/{team.id}/settings", TEAM_FORM).status_code == 303
    after = utcnow()
    by_page = next_times_by_email(team.id)
    schedule = {k: TEAM_FORM[k] for k in ("timezone", "reminder_time", "digest_time")}
    by_domain = []
    for now in (before, after):  # the page read its own clock between the two
        with session() as s:
            update_team_schedule(s, twin, now=now, workdays="136", **schedule)
        by_domain.append(next_times_by_email(twin))
    assert by_page in by_domain
    assert by_page["bob@example.com"] != by_page["olga@example.com"]  # olga observes: no reminder
    assert by_page["olga@example.com"][0] is None


@pytest.mark.parametrize(
    "bad",
    [
        {"reminder_time": "25:00"},
        {"digest_time": "soon"},
        {"timezone": "Mars/Olympus"},
        {"day1": "", "day3": "", "day6": ""},
        {"name": " "},
        {"reply_domain": "not a domain"},
    ],
)
def test_a_refused_team_setting_shows_the_domains_reason(client, team, sent, bad):
    form = {**TEAM_FORM, **bad}
    with pytest.raises((ScheduleError, TeamError)) as refused:
        with session() as s:
            teams.update_team(
                s,
                team.id,
                now=utcnow(),
                name=form["name"],
                reply_domain=form.get("reply_domain", ""),
                timezone=form["timezone"],
                reminder_time=form["reminder_time"],
                digest_time=form["digest_time"],
                workdays="".join(d for d in "1234567" if form.get(f"day{d}")),
            )
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings", form)
    field = refused.value.field or "form"
    reason = str(refused.value).removeprefix(f"{field}: ")  # shown beside the field, capitalized
    assert r.status_code == 422 and f'id="{field}-error"' in r.text and str(escape(reason[1:])) in r.text
    with session() as s:
        assert s.get(Team, team.id).timezone == "Europe/Berlin"


def test_a_role_changed_on_the_page_reschedules_the_member(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    bob = member("bob@example.com")
    assert bob.next_reminder_at is not None
    url = f"/teams/{team.id}/settings/members/{bob.id}/role"
    assert post(client, url, {"role": "observer"}).status_code == 303
    assert member("bob@example.com").next_reminder_at is None  # observers are never asked
    assert post(client, url, {"role": "member"}).status_code == 303
    assert member("bob@example.com").next_reminder_at is not None


def nudge_set_by_the_tick(team_id: int) -> dict[str, object]:
    """Each member's next nudge after the reminder tick of Tuesday 24 November (the effect of the
    team's nudge settings)."""
    from datetime import UTC, datetime

    from jobs.scheduler import tick

    with session() as s:
        t = s.get(Team, team_id)
        for m in s.execute(select(Member).where(Member.team_id == team_id)).scalars():
            schedule_member(s, m, t, datetime(2026, 11, 24, tzinfo=UTC))
            s.add(m)
    with session() as s:
        bob = s.execute(select(Member.id).where(Member.email == "bob@example.com")).scalar_one()
        at = due_times(s, bob)["reminder"]
    from app.settings import get_settings

    tick(now=at, settings=get_settings())
    with session() as s:
        rows = s.execute(select(Member.email, Member.id).where(Member.team_id == team_id)).all()
        nudges = {email: due_times(s, mid)["nudge"] for email, mid in rows}
    return {email: when and when.isoformat() for email, when in nudges.items()}


def test_nudges_set_on_the_page_the_api_and_the_command_line_make_the_tick_nudge(client, team, sent, capsys):
    from app.cli import main
    from tests.app.web.api.test_scopes import auth, make

    sign_in(client, sent, "ada@example.com")
    form = {**TEAM_FORM, "day2": "1", "dday6": "1", "nudge_hours": "14", "nudge_cutoff": "20:30"}
    assert post(client, f"/teams/{team.id}/settings", form).status_code == 303
    # New York: reminder 18:30, digest Wednesday 09:15; 14 hours before is 19:15 EST (00:15 UTC)
    expected = "2026-11-25T00:15:00+00:00"
    assert nudge_set_by_the_tick(team.id) == {
        "ada@example.com": expected,
        "bob@example.com": expected,
        "olga@example.com": None,  # observers are never asked, so never nudged
    }
    # 12 hours before lands at 21:15, past the page's 20:30 cut-off: no nudge; the API moves it
    r = client.patch(
        f"/api/teams/{team.id}/settings",
        json={"nudge_hours": 12, "nudge_cutoff": "22:00"},
        headers=auth(make(team.id)),
    )
    assert r.status_code == 200 and (r.json()["nudge_hours"], r.json()["nudge_cutoff"]) == (12, "22:00")
    assert nudge_set_by_the_tick(team.id)["bob@example.com"] == "2026-11-25T02:15:00+00:00"
    for bad in ({"nudge_hours": -1}, {"nudge_hours": 100}, {"nudge_cutoff": "late"}, {"nudge_hours": "12"}):
        r = client.patch(f"/api/teams/{team.id}/settings", json=bad, headers=auth(make(team.id)))
        assert r.status_code == 400 and next(iter(bad)) in r.json()["error"], bad
    assert main(["team-settings", str(team.id), "--nudge-hours", "0"]) == 0
    assert "nudge_hours=0" in capsys.readouterr().out
    assert nudge_set_by_the_tick(team.id)["bob@example.com"] is None
    assert main(["team-settings", str(team.id), "--nudge-cutoff", "9pm"]) == 2
    assert "nudge_cutoff" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [{"nudge_hours": "lots"}, {"nudge_hours": "99"}, {"nudge_cutoff": "25:00"}])
def test_a_refused_nudge_setting_is_marked_on_the_page(client, team, sent, bad):
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings", {**TEAM_FORM, **bad})
    field = next(iter(bad))
    assert r.status_code == 422 and f'id="{field}-error"' in r.text
    with session() as s:
        assert s.get(TeamSettings, team.id) is None
