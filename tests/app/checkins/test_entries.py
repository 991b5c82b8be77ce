"""app.checkins.entries is the one writer of entries: the web, the API and processed replies agree."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from app.checkins import entries
from app.checkins.reply_tokens import reply_address
from app.db import session
from app.inbound.process import process_many
from app.models import Entry, Member
from app.settings import ROOT, get_settings
from parsers.entries import split_entries
from tests.app.checkins.test_loop import make_team
from tests.app.inbound.test_process_batch import mail, store
from tests.conftest import FIXED_NOW

DAY = date(2026, 11, 23)
REPLY = (
    "- Shipped the #Billing export with @bob.smith\n"
    "- Blocked: the #ci runner is down #infra\n"
    "Tomorrow:\n"
    "- review @carol's #docs change"
)
# constructing an Entry, or an INSERT into its table, in any form
WRITES_ENTRY = re.compile(
    r"\bEntry\(|Entry\.__table__\.insert|insert\(\s*Entry\b|INSERT\s+INTO\s+\"?entry\b", re.I
)


def stored(where) -> list[tuple]:
    with session() as s:
        rows = s.execute(
            select(Entry.text, Entry.kind, Entry.tags, Entry.mentions).where(where).order_by(Entry.id)
        ).all()
    return [tuple(r) for r in rows]


def test_only_the_entries_module_writes_entries():
    allowed = {Path("app/checkins/entries.py"), Path("app/models.py")}
    writers = [
        str(path.relative_to(ROOT))
        for folder in ("app", "jobs", "parsers")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.relative_to(ROOT) not in allowed
        and "migrations" not in path.parts
        and WRITES_ENTRY.search(path.read_text())
    ]
    assert writers == []


def test_a_reply_and_the_web_make_the_same_entries_of_the_same_text(db):
    ada = make_team()
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    iid = store(mail(1, token, REPLY.replace("\n", "\r\n")), "same")
    with session() as s:
        assert process_many(s, [iid], now=FIXED_NOW, settings=get_settings())[iid] == "processed"
    with session() as s:
        entries.add(s, s.get(Member, ada), DAY, REPLY, "done", now=FIXED_NOW)
    by_mail, by_web = stored(Entry.inbound_id == iid), stored(Entry.inbound_id.is_(None))
    assert by_mail == by_web
    assert by_mail == [
        ("Shipped the #Billing export with @bob.smith", "done", "billing", "bob.smith"),
        ("the #ci runner is down #infra", "blocker", "ci infra", ""),
        ("review @carol's #docs change", "goal", "docs", "carol"),
    ]


def test_the_kind_picked_in_the_form_applies_where_the_text_sets_none(db):
    ada = make_team()
    with session() as s:
        made = entries.add(
            s, s.get(Member, ada), DAY, "- plan the week\n- Blocked: on review", "goal", now=FIXED_NOW
        )
        assert [(e.text, e.kind) for e in made] == [("plan the week", "goal"), ("on review", "blocker")]


def test_tags_keep_whole_words_within_the_column_on_both_paths(db):
    ada = make_team()
    many = "did it " + " ".join(f"#tag{n:03d}x" for n in range(200))  # 1599 characters of tags
    token = reply_address(get_settings().secret_key, "reply.test", ada, DAY)
    iid = store(mail(1, token, many), "many")
    with session() as s:
        process_many(s, [iid], now=FIXED_NOW, settings=get_settings())
        entries.add(s, s.get(Member, ada), DAY, many, "done", now=FIXED_NOW)
    (_, _, by_mail, _), (_, _, by_web, _) = stored(Entry.inbound_id == iid) + stored(
        Entry.inbound_id.is_(None)
    )
    assert by_mail == by_web
    assert len(by_mail) <= 1000 and by_mail.split() == [f"tag{n:03d}x" for n in range(125)]


@pytest.mark.parametrize("path", ["web", "mail"])
def test_a_nul_character_is_stored_as_a_replacement_character(db, path):
    ada = make_team()
    with session() as s:
        if path == "web":
            entries.add(s, s.get(Member, ada), DAY, "fixed \x00 it", "done", now=FIXED_NOW)
        else:
            draft = split_entries("fixed \x00 it")
            entries.add_many(
                s, [entries.Reply(s.get(Member, ada).team_id, ada, DAY, None, draft)], now=FIXED_NOW
            )
    assert stored(Entry.member_id == ada)[0][0] == "fixed \ufffd it"
