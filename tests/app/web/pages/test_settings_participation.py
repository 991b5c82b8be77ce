"""The weekly participation summary, turned on and off on the settings page, by the API and by the CLI,
judged by the mail the scheduler's producer then makes on the admin's Monday digest."""

from datetime import timedelta

from app.cli import main
from app.db import session
from app.models import utcnow
from app.relay.api_tokens import create_token
from tests.app.web.conftest import sign_in
from tests.app.web.pages.test_settings_mail import mail_at, save
from tests.conftest import FIXED_NOW

MONDAY_DIGEST = FIXED_NOW.replace(hour=7, minute=0, second=1)  # 08:00 Berlin on Monday 23 November
WEEK = timedelta(days=7)


def summaries(monday) -> list[tuple[str, str]]:
    """(recipient, subject) of the participation summaries made with the digests of ``monday``."""
    return [
        (m["To"], m["Subject"]) for m in mail_at(monday, "digest") if m["X-Donebox-Kind"] == "participation"
    ]


def test_the_page_the_api_and_the_cli_turn_the_admins_weekly_summary_on_and_off(client, team, sent, capsys):
    sign_in(client, sent, "ada@example.com")
    page = f"/teams/{team.id}/settings"
    assert 'name="participation_summary" value="1" checked' not in client.get(page).text
    assert summaries(MONDAY_DIGEST) == []  # off for a new team

    save(client, team, participation_summary="1")
    assert 'name="participation_summary" value="1" checked' in client.get(page).text
    # the same Monday: the digests were made already, the summary now is, to the admin alone
    assert summaries(MONDAY_DIGEST) == [("ada@example.com", "Rocket: participation, 16 Nov to 22 Nov")]
    save(client, team)  # the box unticked
    assert summaries(MONDAY_DIGEST + WEEK) == []

    with session() as s:
        auth = {"Authorization": "Bearer " + create_token(s, "t", now=utcnow(), team_id=team.id)}
    url = f"/api/teams/{team.id}/settings"
    r = client.patch(url, json={"participation_summary": True}, headers=auth)
    assert r.status_code == 200 and r.json()["participation_summary"] is True
    assert summaries(MONDAY_DIGEST + 2 * WEEK) == [
        ("ada@example.com", "Rocket: participation, 30 Nov to 06 Dec")
    ]
    assert client.patch(url, json={"participation_summary": False}, headers=auth).status_code == 200
    assert summaries(MONDAY_DIGEST + 3 * WEEK) == []
    refused = client.patch(url, json={"participation_summary": "yes"}, headers=auth)
    assert refused.status_code == 400 and "participation_summary" in refused.json()["error"]
    schema = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert schema["TeamSettingsPatch"]["properties"]["participation_summary"]["type"] == "boolean"
    assert "participation_summary" in schema["TeamSettings"]["properties"]

    assert main(["team-settings", str(team.id), "--participation-summary", "on"]) == 0
    assert "participation_summary=on" in capsys.readouterr().out
    assert summaries(MONDAY_DIGEST + 4 * WEEK) == [
        ("ada@example.com", "Rocket: participation, 14 Dec to 20 Dec")
    ]
