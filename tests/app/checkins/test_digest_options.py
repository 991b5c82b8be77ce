from datetime import timedelta

from sqlalchemy import select

from app.checkins.due import run
from app.checkins.outgoing import digest_now
from app.db import session
from app.models import Entry, Member, TeamSettings
from app.settings import get_settings
from jobs.broker import drain
from jobs.enqueue import enqueue_deliveries
from tests.conftest import FIXED_NOW


def test_a_team_with_digests_off_gets_none(team):
    with session() as s:
        s.add(TeamSettings(team_id=team.id, digest_enabled=False))
    with session() as s:
        assert digest_now(s, now=FIXED_NOW, settings=get_settings()) == []


def test_the_digest_leaves_out_who_wrote_nothing_when_the_team_says_so(team, sent):
    # Monday's reminders go out first: only a member asked that day can be "not heard from"
    run(
        now=FIXED_NOW.replace(hour=16, minute=0, second=1),
        settings=get_settings(),
        enqueue=enqueue_deliveries,
    )
    drain()
    with session() as s:
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        s.add(Entry(team_id=team.id, member_id=ada.id, day=FIXED_NOW.date(), text="did things"))
    for minute, (include, expect) in enumerate(((True, True), (False, False))):
        with session() as s:
            opts = s.get(TeamSettings, team.id) or TeamSettings(team_id=team.id)
            opts.digest_include_quiet = include
            s.add(opts)
        sent.clear()
        with session() as s:
            # a later send (not the same batch, whose render is shared) sees the new option
            now = FIXED_NOW + timedelta(minutes=minute)
            ids = digest_now(s, now=now, settings=get_settings(), day=FIXED_NOW.date())
            from app.models import OutboundMessage

            digests = select(OutboundMessage).where(OutboundMessage.kind == "digest")
            for m in s.execute(digests).scalars():  # let the same day's digest go again
                m.idempotency_key += f":{include}"
        enqueue_deliveries(ids)
        drain()
        html = sent[0].get_body(("html",)).get_content()
        assert ("No reply from" in html) is expect and "did things" in html
