"""The team page and the inbound page under a flood of entries (issue 12, item 7), both databases."""

from sqlalchemy import select

from app.db import session
from app.models import Entry, InboundMessage
from tests.app.checkins.test_entry_limits import DAY, old_flood
from tests.app.web.conftest import post, sign_in
from tests.app.web.pages.test_mail import reply


def test_the_team_page_of_a_day_with_100000_entries_renders_a_bounded_page(client, team, sent):
    old_flood(team)
    sign_in(client, sent, "ada@example.com")
    r = client.get(f"/teams/{team.id}", params={"day": DAY.isoformat()})
    assert r.status_code == 200
    assert len(r.content) < 200_000, len(r.content)
    assert "and 99900 more on this day" in r.text  # 100 listed
    assert "h" * 1993 + "… (cut)" in r.text and "h" * 2001 not in r.text
    history = client.get(r.url.path + f"/members/{old_flood_member()}")
    assert history.status_code == 200 and "h" * 2001 not in history.text


def old_flood_member() -> int:
    with session() as s:
        return s.execute(select(Entry.member_id).limit(1)).scalar_one()


def test_a_huge_reply_is_cut_and_the_inbound_page_says_so(client, team, sent):
    body = "\n".join(f"- thing {i}" for i in range(300)) + "\n- " + "w" * 5000
    iid = reply(client, "bob@example.com", body)
    with session() as s:
        row = s.get(InboundMessage, iid)
        made = s.execute(select(Entry.text).where(Entry.inbound_id == iid)).scalars().all()
    assert row.state == "processed" and len(made) == 50
    assert "the reply made 301 entries, the first 50 are stored" in row.notes
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/inbound/{iid}").text
    assert "Limits" in page and "MAX_ENTRIES_PER_REPLY" in page


def test_the_entry_form_refuses_too_many_lines_with_a_reason(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    text = "\n".join(f"- item {i}" for i in range(51))
    r = post(client, f"/teams/{team.id}/entries", {"text": text, "day": DAY.isoformat()})
    assert r.status_code == 422 and "at most 50 entries at once" in r.text
    with session() as s:
        assert s.execute(select(Entry)).first() is None
