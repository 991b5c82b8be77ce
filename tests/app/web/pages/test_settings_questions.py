"""A team's questions set on the settings page, by the API and by the CLI, all through update_team:
judged by the reminder that goes out; 0 or 6 questions, or an over-long one, refused naming the field."""

from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from app.checkins import questions, teams
from app.checkins.outgoing import remind_now
from app.cli import main
from app.db import session
from app.models import Member, utcnow
from app.relay.api_tokens import create_token
from app.settings import get_settings
from jobs.broker import drain
from tests.app.web.conftest import post, sign_in
from tests.app.web.pages.test_settings_mail import FORM
from tests.conftest import FIXED_NOW

REFUSED = {
    "none": ([], "1 to 5 questions, not 0"),
    "six": ([f"Question {i}?" for i in range(6)], "1 to 5 questions, not 6"),
    "too long": (["What did you get done today?", "x" * 201], "question 2 is longer than 200 characters"),
}


def reminder_text(team_id: int, sent) -> str:
    from jobs.enqueue import enqueue_deliveries

    sent.clear()
    with session() as s:
        ids = remind_now(s, now=FIXED_NOW, settings=get_settings())
    enqueue_deliveries(ids)
    drain()
    mail = message_from_bytes(
        next(m for m in sent if m["To"] == "bob@example.com").as_bytes(), policy=policy.default
    )
    return mail.get_body(("plain",)).get_content()


def asked(team_id: int) -> list[str]:
    with session() as s:
        return teams.current(s, team_id)["questions"]


def test_questions_saved_on_the_page_are_what_the_next_reminder_asks(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/teams/{team.id}/settings")
    assert page.status_code == 200 and "What did you get done today?</textarea>" in page.text
    form = {**FORM, "questions": "What did you ship?\r\n\r\nWhat will you do next?\r\n"}
    assert post(client, f"/teams/{team.id}/settings", form).status_code == 303
    assert "1. What did you ship?\n2. What will you do next?" in reminder_text(team.id, sent)
    sign_in(client, sent, "ada@example.com")
    assert post(client, f"/teams/{team.id}/settings", {**FORM, "preset": "standup"}).status_code == 303
    assert asked(team.id) == list(questions.PRESETS["standup"])
    assert post(client, f"/teams/{team.id}/settings", FORM).status_code == 303  # no field: kept
    assert asked(team.id) == list(questions.PRESETS["standup"])


@pytest.mark.parametrize("case", REFUSED)
def test_the_page_refuses_questions_out_of_bounds_beside_the_field(client, team, sent, case):
    given, reason = REFUSED[case]
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings", {**FORM, "questions": "\n".join(given)})
    assert r.status_code == 422 and 'id="questions-error"' in r.text and reason[1:] in r.text  # capitalized
    assert asked(team.id) == [questions.DEFAULT]


def test_the_api_sets_and_refuses_questions_naming_the_field(client, team):
    with session() as s:
        auth = {"Authorization": "Bearer " + create_token(s, "t", now=utcnow(), team_id=team.id)}
    url = f"/api/teams/{team.id}/settings"
    assert client.get(url, headers=auth).json()["questions"] == [questions.DEFAULT]
    r = client.patch(url, json={"questions": ["What did you ship?", "What is next?"]}, headers=auth)
    assert r.status_code == 200 and r.json()["questions"] == ["What did you ship?", "What is next?"]
    for given, reason in REFUSED.values():
        r = client.patch(url, json={"questions": given}, headers=auth)
        assert (
            r.status_code == 400
            and r.json()["error"].startswith("questions: ")
            and reason in r.json()["error"]
        )
    r = client.patch(url, json={"questions": "not a list"}, headers=auth)
    assert r.status_code == 400 and "questions" in r.json()["error"]
    assert asked(team.id) == ["What did you ship?", "What is next?"]
    spec = client.get("/api/openapi.json").json()["components"]["schemas"]["TeamSettingsPatch"]["properties"]
    assert spec["questions"]["type"] == "array"
    # an entry made by the API answers the question of its kind, and says which
    assert (
        client.patch(url, json={"questions": list(questions.PRESETS["standup"])}, headers=auth).status_code
        == 200
    )
    with session() as s:
        bob = s.execute(select(Member.id).where(Member.email == "bob@example.com")).scalar_one()
    body = {"member_id": bob, "text": "Ship 2.5", "kind": "goal"}
    made = client.post(f"/api/teams/{team.id}/entries", json=body, headers=auth)
    assert made.status_code == 201, made.text
    (entry,) = made.json()["entries"]
    assert (entry["kind"], entry["question"], entry["closed_as"], entry["closed_on"]) == ("goal", 1, "", None)


def test_the_cli_sets_and_refuses_questions_naming_the_field(team, capsys):
    assert main(["team-settings", str(team.id), "--preset", "weekly"]) == 0
    out = capsys.readouterr().out
    assert f"questions.1={questions.PRESETS['weekly'][0]}" in out
    assert main(["team-settings", str(team.id), "--question", "Shipped?", "--question", "Learned?"]) == 0
    assert asked(team.id) == ["Shipped?", "Learned?"]
    for given, reason in REFUSED.values():
        argv = ["team-settings", str(team.id)] + [a for q in given for a in ("--question", q)]
        if not given:
            argv += ["--question", " "]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "questions" in err and reason in err
    assert asked(team.id) == ["Shipped?", "Learned?"]
