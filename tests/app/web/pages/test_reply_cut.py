"""The team's day marks entries of a reply cut by a guess and links to the reply's original at the cut;
there its author or an admin moves the cut, with no script: CSRF, who may, and bad lines refused."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.db import session
from app.models import Entry, ReplyCase
from tests.app.inbound.test_corrections import DAY, WRONGLY_CUT, made, replied
from tests.app.web.conftest import post, sign_in


def day_page(client, team) -> str:
    return client.get(f"/teams/{team.id}?day={DAY.isoformat()}").text


def test_the_day_marks_a_guessed_cut_and_links_the_author_to_the_original_at_the_cut(client, team, sent):
    guessed = replied(WRONGLY_CUT)
    sure = replied(
        "Reviewed the parser\n\nOn Mon, Nov 23, 2026, donebox <donebox@mail.test> wrote:\n> What?\n", n=2
    )
    sign_in(client, sent, "bob@example.com")
    page = day_page(client, team)
    assert page.count("cut by a guess") == 1
    item = page.split("Shipped the export")[1].split("</li>")[0]
    assert "cut by a guess" in item and f'href="/mail/inbound/{guessed}#cut"' in item
    assert "show original" in page.split("Reviewed the parser")[1].split("</li>")[0]
    assert f'href="/mail/inbound/{sure}#cut"' in page
    # the original, at the cut: the line the reply was cut at, the rule named, its lines to pick from
    original = client.get(f"/mail/inbound/{guessed}")
    assert original.status_code == 200
    assert (
        'id="cut"' in original.text and "signature:delimiter" in original.text and "a guess" in original.text
    )
    assert (
        original.text.index('id="end-2"')
        > original.text.index('id="cut"')
        > original.text.index('id="end-1"')
    )
    assert 'id="reprocess"' not in original.text  # an admin's action
    # his own history page links there too
    bob = client.get(f"/teams/{team.id}/members/{_author(guessed)}").text
    assert f'href="/mail/inbound/{guessed}#cut"' in bob and "cut by a guess" in bob


def _author(iid: int) -> int:
    with session() as s:
        return s.execute(select(Entry.member_id).where(Entry.inbound_id == iid)).scalars().first()


def test_another_member_sees_the_marker_but_not_the_original_and_may_not_move_the_cut(client, team, sent):
    iid = replied(WRONGLY_CUT)
    sign_in(client, sent, "olga@example.com")  # an observer of the team
    page = day_page(client, team)
    assert "cut by a guess" in page and "show original" not in page
    refused = client.get(f"/mail/inbound/{iid}")
    assert refused.status_code == 403 and "Only the member who wrote this reply or an admin" in refused.text
    moved = post(client, f"/mail/inbound/{iid}/cut", {"end": "4"})
    assert moved.status_code == 403 and "Only the member who wrote this reply or an admin" in moved.text
    assert made(iid) == [("Shipped the export", "done", 0)]


def test_the_author_moves_the_cut_and_the_day_shows_the_new_entries(client, team, sent):
    iid = replied(WRONGLY_CUT)
    sign_in(client, sent, "bob@example.com")
    assert (
        client.post(f"/mail/inbound/{iid}/cut", data={"end": "4"}, follow_redirects=False).status_code == 403
    )
    r = post(client, f"/mail/inbound/{iid}/cut", {"end": "4"})  # CSRF above: refused; now with it
    assert r.status_code == 303 and r.headers["location"] == f"/mail/inbound/{iid}#cut"
    after = client.get(f"/mail/inbound/{iid}").text
    assert "The reply now ends at line 4: 3 entries made from it (replacing the 1 it had made)." in after
    assert re.search(r'id="end-4"[^>]*checked', after)
    assert "said the reply ends at line 4 (it ended at line 1, signature:delimiter)" in after
    page = day_page(client, team)
    assert "Fixed the flaky test" in page and "Reviewed the docs" in page and "cut by a guess" not in page
    with session() as s:
        assert s.execute(select(ReplyCase.by_role, ReplyCase.cut_at)).one() == ("author", 4)


def test_bad_lines_are_refused_beside_the_form_with_the_reason(client, team, sent):
    iid = replied(WRONGLY_CUT)
    sign_in(client, sent, "ada@example.com")  # the team's admin
    for end, reason in (
        ("9", "There is no line 9 in this reply: pick one of lines 1 to 6."),
        ("x", "Pick the line where your reply ends."),
        ("", "Pick the line where your reply ends."),
        ("1", "The reply already ends at line 1."),
    ):
        r = post(client, f"/mail/inbound/{iid}/cut", {"end": end})
        assert r.status_code == 422, end
        assert f'<span class="field-error" id="end-error" role="alert">{reason}</span>' in r.text
    assert made(iid) == [("Shipped the export", "done", 0)]
    assert post(client, "/mail/inbound/999999/cut", {"end": "1"}).status_code == 404
    # an admin may move it
    assert post(client, f"/mail/inbound/{iid}/cut", {"end": "3"}).status_code == 303
    assert [t for t, *_ in made(iid)] == ["Shipped the export", "Fixed the flaky test"]
    admin = client.get(f"/mail/inbound/{iid}").text
    assert 'id="reprocess"' in admin and "ada@example.com (admin)" in admin


def test_someone_in_no_team_of_the_author_finds_no_such_message(client, team, sent):
    from app.checkins.teams import create_team
    from app.models import utcnow

    iid = replied(WRONGLY_CUT)
    with session() as s:
        create_team(s, "Other", "UTC", admin_email="zed@example.com", now=utcnow())
    sign_in(client, sent, "zed@example.com")
    assert client.get(f"/mail/inbound/{iid}").status_code == 404
    assert post(client, f"/mail/inbound/{iid}/cut", {"end": "4"}).status_code == 404


def test_a_cut_past_the_lines_shown_is_said_so(client, team, sent, monkeypatch):
    import app.web.pages.mail

    iid = replied(WRONGLY_CUT)
    monkeypatch.setattr(app.web.pages.mail, "LINES_SHOWN", 1)
    sign_in(client, sent, "bob@example.com")
    page = client.get(f"/mail/inbound/{iid}").text
    assert 'id="end-1"' in page and 'id="end-2"' not in page
    assert "cut below line 1: <code>signature:delimiter</code> (the lines past 1 are not shown)" in page


def test_the_api_says_where_a_reply_was_cut_and_that_a_person_moved_it(client, team, sent):
    from app.relay.api_tokens import create_token
    from tests.conftest import FIXED_NOW

    iid = replied(WRONGLY_CUT)
    with session() as s:
        auth = {"Authorization": "Bearer " + create_token(s, "t", now=FIXED_NOW, team_id=team.id)}
    doc = client.get(f"/api/inbound/{iid}", headers=auth).json()
    assert (doc["cut_at"], doc["cut_rule"], doc["cut_confidence"]) == (1, "signature:delimiter", "low")
    sign_in(client, sent, "bob@example.com")
    assert post(client, f"/mail/inbound/{iid}/cut", {"end": "4"}).status_code == 303
    doc = client.get(f"/api/inbound/{iid}", headers=auth).json()
    assert (doc["cut_at"], doc["cut_rule"], doc["cut_confidence"]) == (4, "corrected", "high")
    assert doc["reply_text"] == "Shipped the export\n--\nFixed the flaky test\nReviewed the docs"
