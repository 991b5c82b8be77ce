"""Refused forms come back at 422 with the reason beside the field and the input kept; every action
says what it did once; destructive actions ask first; error pages keep the signed-in header."""

import re
from datetime import timedelta

import pytest
from markupsafe import escape
from sqlalchemy import select

from app.checkins import entries
from app.db import session
from app.models import ApiToken, Entry, Member, utcnow
from app.relay.api_tokens import create_token
from app.settings import get_settings
from tests.app.web.conftest import post, sign_in
from tests.app.web.pages.test_team import today


def member_id(email: str) -> int:
    with session() as s:
        return s.execute(select(Member.id).where(Member.email == email)).scalar_one()


def bobs_entry(text: str = "shipped it") -> int:
    with session() as s:
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        (e,) = entries.add(s, bob, today(), text, "done", now=utcnow(), settings=get_settings())
        return e.id


def field_html(html: str, field: str) -> str:
    """The element whose id is ``field``, as one line of text (its tag)."""
    m = re.search(rf'<[^>]* id="{re.escape(field)}"[^>]*>', html)
    assert m, f"no field {field} on the page"
    return m.group(0)


def assert_beside(html: str, field: str, reason: str) -> None:
    """The field is marked invalid and points at its error, which holds the reason."""
    tag = field_html(html, field)
    assert 'aria-invalid="true"' in tag and f'aria-describedby="{field}-error"' in tag, tag
    m = re.search(rf'<span class="field-error" id="{re.escape(field)}-error"[^>]*>([^<]*)</span>', html)
    assert m and reason in m.group(1), (field, m and m.group(1))


def invite_duplicate(tid):
    form = {"email": "bob@example.com", "name": "Bobby Two", "role": "observer"}
    return f"/teams/{tid}/settings/members", form, "email", "already in the team", ["Bobby Two"]


def demote_last_admin(tid):
    aid = member_id("ada@example.com")
    path = f"/teams/{tid}/settings/members/{aid}/role"
    return path, {"role": "member"}, f"role-{aid}", "at least one admin", []


# the team settings form as the page fills it, before a test makes one field bad
TEAM_FORM = {
    "name": "Renamed",
    "timezone": "UTC",
    "reminder_time": "17:00",
    "digest_time": "07:45",
    "day2": "1",
    "dday2": "1",
}


def team_bad_time(tid):
    form = {**TEAM_FORM, "reminder_time": "25:00"}
    return f"/teams/{tid}/settings", form, "reminder_time", "HH:MM", ['value="Renamed"', 'value="07:45"']


def team_bad_domain(tid):
    form = {**TEAM_FORM, "reply_domain": "not a domain"}
    return f"/teams/{tid}/settings", form, "reply_domain", "not a domain name", ['value="Renamed"']


def team_no_digest_days(tid):
    form = {k: v for k, v in TEAM_FORM.items() if k != "dday2"} | {"weekly_day": "0", "skip_empty": "1"}
    kept = ['value="Renamed"', 'name="skip_empty" value="1" checked']
    return f"/teams/{tid}/settings", form, "digest_workdays", "Tick at least one digest day", kept


def schedule_bad_time(tid):
    form = {"action": "save", "reminder_time": "9 o'clock", "digest_time": "07:15", "rday_2": "1"}
    kept = ['value="9 o&#39;clock"', 'value="07:15"', 'name="rday_2" value="1" checked']
    return f"/teams/{tid}/settings/me", form, "reminder_time", "HH:MM", kept


def backwards_vacation(tid):
    form = {"action": "pause", "first_day": "2031-01-10", "last_day": "2031-01-01"}
    return f"/teams/{tid}/settings/me", form, "last_day", "before it starts", ['"2031-01-10"', '"2031-01-01"']


def unnamed_token(tid):
    return f"/teams/{tid}/settings/tokens", {"name": "   "}, "name", "Give the token a name", []


def empty_entry_edit(tid):
    eid = bobs_entry()
    return (
        f"/teams/{tid}/entries/{eid}/edit",
        {"text": " ", "kind": "goal"},
        "text",
        "empty",
        ['<option value="goal" selected>'],
    )


def future_entry(tid):
    day = (today() + timedelta(days=3)).isoformat()
    form = {"text": "from the future", "kind": "blocker", "day": day}
    kept = [">from the future</textarea>", '<option value="blocker" selected>']
    return f"/teams/{tid}/entries", form, "text", "today or a past day", kept


def bad_suppression(tid):
    return (
        "/mail/suppressions",
        {"email": "nope", "detail": "asked twice"},
        "email",
        "not an email",
        [
            'value="nope"',
            'value="asked twice"',
        ],
    )


FORMS = {
    "ada@example.com": [
        invite_duplicate,
        demote_last_admin,
        team_bad_time,
        team_bad_domain,
        team_no_digest_days,
        unnamed_token,
        bad_suppression,
    ],
    "bob@example.com": [schedule_bad_time, backwards_vacation, empty_entry_edit, future_entry],
}
CASES = [(who, make) for who, makes in FORMS.items() for make in makes]


@pytest.mark.parametrize(("who", "make"), CASES, ids=[make.__name__ for _, make in CASES])
def test_a_refused_form_comes_back_at_422_with_the_reason_beside_the_field_and_the_input_kept(
    client, team, sent, who, make
):
    sign_in(client, sent, who)
    path, form, field, reason, kept = make(team.id)
    r = post(client, path, form)
    assert r.status_code == 422, r.text
    assert_beside(r.text, field, str(escape(reason)))
    for value in kept:
        assert value in r.text, value
    assert "Sign out" in r.text and 'class="flash"' not in r.text


def test_a_refused_invite_keeps_the_members_table_and_the_typed_address(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings/members", {"email": "not-an-address", "name": "Cy"})
    assert r.status_code == 422
    assert_beside(r.text, "email", "not an email address")
    assert 'value="not-an-address"' in r.text and 'value="Cy"' in r.text and "olga@example.com" in r.text


def test_a_refused_save_changes_nothing(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    path, form, *_ = team_bad_time(team.id)
    assert post(client, path, form).status_code == 422
    with session() as s:
        assert s.get(type(team), team.id).name == "Rocket"


def test_a_signed_in_404_keeps_the_signed_in_header(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    for path in ("/no/such/page", f"/teams/{team.id}/members/999999", "/teams/424242"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        assert "bob@example.com" in r.text and "Sign out" in r.text and 'href="/teams/' in r.text
        assert "Not found" in r.text


def test_a_signed_out_404_offers_sign_in_and_the_api_keeps_json(client, team):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and 'href="/signin"' in r.text and "Sign out" not in r.text
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"


def test_a_403_keeps_the_signed_in_header(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    r = client.get(f"/teams/{team.id}/settings")
    assert r.status_code == 403 and "Sign out" in r.text and "needs the admin role" in r.text


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_unsubscribe_link_is_a_page_with_the_reason(client, team, method):
    r = client.request(method, "/t/u/not-a-token")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<h1>This unsubscribe link is not valid</h1>" in r.text and "damaged" in r.text
    assert r.text.lstrip().startswith("<!doctype html>")


def test_a_bad_click_link_is_a_page_with_the_reason(client, team):
    r = client.get("/t/c/not-a-token")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html") and "damaged" in r.text


def flash_of(html: str) -> str | None:
    m = re.search(r'<p class="flash" id="flash" role="status">([^<]*)</p>', html)
    return m and m.group(1)


def save_team(client, tid):
    form = {
        "name": "Rocket",
        "timezone": "UTC",
        "reminder_time": "17:00",
        "digest_time": "08:00",
        "day1": "1",
        "dday1": "1",
    }
    return post(client, f"/teams/{tid}/settings", form), "Team settings saved."


def invite(client, tid):
    return post(
        client, f"/teams/{tid}/settings/members", {"email": "cy@example.com"}
    ), "Invited cy@example.com."


def remove_member(client, tid):
    path = f"/teams/{tid}/settings/members/{member_id('olga@example.com')}/remove"
    return post(client, path, {"confirm": "yes"}), "Removed olga@example.com."


def set_role(client, tid):
    path = f"/teams/{tid}/settings/members/{member_id('olga@example.com')}/role"
    return post(client, path, {"role": "member"}), "olga@example.com is now member."


def revoke_token(client, tid):
    with session() as s:
        create_token(s, "ci", now=utcnow(), team_id=tid)
        token_id = s.execute(select(ApiToken.id)).scalar_one()
    path = f"/teams/{tid}/settings/tokens/{token_id}/revoke"
    return post(client, path, {"confirm": "yes"}), "Token 'ci' revoked."


def suppress(client, tid):
    r = post(client, "/mail/suppressions", {"email": "bob@example.com"})
    return r, "bob@example.com is suppressed."


ACTIONS = [save_team, invite, remove_member, set_role, revoke_token, suppress]


@pytest.mark.parametrize("action", ACTIONS, ids=[a.__name__ for a in ACTIONS])
def test_an_actions_message_shows_on_the_next_page_and_only_once(client, team, sent, action):
    sign_in(client, sent, "ada@example.com")
    r, said = action(client, team.id)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"])
    assert flash_of(page.text) == str(escape(said))
    assert flash_of(client.get(r.headers["location"]).text) is None


def followed(client, path, form):
    r = post(client, path, form)
    assert r.status_code == 303, r.text
    return client.get(r.headers["location"])


def test_a_members_own_actions_say_what_they_did(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    r = followed(client, f"/teams/{team.id}/entries", {"text": "- one\n- two #web"})
    assert flash_of(r.text) == "Added 2 entries."
    eid = bobs_entry("typo")
    r = followed(client, f"/teams/{team.id}/entries/{eid}/edit", {"text": "fixed"})
    assert flash_of(r.text) == "Entry saved."
    r = followed(client, f"/teams/{team.id}/entries/{eid}/delete", {"confirm": "yes"})
    assert flash_of(r.text) == "Entry deleted."
    r = followed(client, f"/teams/{team.id}/settings/me", {"reminder_time": "09:00"})
    assert flash_of(r.text) == "Your schedule is saved."


def test_a_new_token_is_shown_once_with_the_word_that_it_was_created(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    r = post(client, f"/teams/{team.id}/settings/tokens", {"name": "ci", "scope_send": "1"})
    assert r.status_code == 200 and "Token created" in r.text and 'id="new-token">dbx_' in r.text
    assert "Token created" not in client.get(f"/teams/{team.id}/settings/tokens").text


def destroy_entry(client, tid):
    eid = bobs_entry()

    def gone():
        with session() as s:
            return s.get(Entry, eid) is None

    return f"/teams/{tid}/entries/{eid}/delete", "bob@example.com", gone


def destroy_member(client, tid):
    mid = member_id("olga@example.com")

    def gone():
        with session() as s:
            return not s.get(Member, mid).active

    return f"/teams/{tid}/settings/members/{mid}/remove", "ada@example.com", gone


def destroy_token(client, tid):
    with session() as s:
        create_token(s, "ci", now=utcnow(), team_id=tid)
        token_id = s.execute(select(ApiToken.id)).scalar_one()

    def gone():
        with session() as s:
            return s.get(ApiToken, token_id).revoked_at is not None

    return f"/teams/{tid}/settings/tokens/{token_id}/revoke", "ada@example.com", gone


def destroy_subscription(client, tid):
    from app.relay import suppressions

    def gone():
        with session() as s:
            return suppressions.lookup(s, "bob@example.com") is not None

    return f"/teams/{tid}/settings/me/mail", "bob@example.com", gone


DESTROY = [destroy_entry, destroy_member, destroy_token, destroy_subscription]


@pytest.mark.parametrize("make", DESTROY, ids=[d.__name__ for d in DESTROY])
def test_a_destructive_post_without_the_confirmation_asks_and_changes_nothing(client, team, sent, make):
    path, who, gone = make(client, team.id)
    sign_in(client, sent, who)
    extra = {"action": "unsubscribe"} if path.endswith("/mail") else {}
    asked = post(client, path, extra)
    assert asked.status_code == 200 and "Are you sure?" in asked.text and not gone()
    assert f'action="{path}"' in asked.text and 'name="confirm" value="yes"' in asked.text
    for k, v in extra.items():  # the question's button posts the same form again
        assert f'name="{k}" value="{v}"' in asked.text
    assert post(client, path, {**extra, "confirm": "yes"}).status_code == 303 and gone()


def test_destructive_buttons_are_secondary_and_ask_in_place(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    bobs_entry()
    page = client.get(f"/teams/{team.id}").text
    assert '<details class="confirm"><summary class="danger">delete</summary>' in page
    assert 'name="confirm" value="yes"' in page and '<button class="danger">Yes, delete</button>' in page
    assert "<script" not in page


def test_every_confirmation_form_carries_the_pages_csrf_token(client, team, sent):
    """The browser posts what the page holds: an empty token in a confirmation is a refused action."""
    sign_in(client, sent, "ada@example.com")
    bobs_entry()
    pages = [f"/teams/{team.id}", f"/teams/{team.id}/settings/members", "/mail/suppressions"]
    checked = 0
    for path in pages:
        page = client.get(path).text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        for form in re.findall(r'<details class="confirm">.*?</details>', page, re.S):
            assert token and f'name="csrf" value="{token.group(1)}"' in form, (path, form)
            checked += 1
    assert checked >= 2
