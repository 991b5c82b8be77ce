"""A claimed batch's reminders and digests read their contexts in a few set queries (render.prefetch,
the pipeline's RenderBatch), rendering byte for byte what each message's own reads render."""

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, select

import app.checkins.outgoing  # noqa: F401 - registers the check-in kinds, as jobs.actors does
from app.checkins.outgoing import checkin_row
from app.db import get_engine, session
from app.models import Comment, Entry, Member, MemberPause, OutboundMessage, Team, TeamSettings, utcnow
from app.relay import outbox, pipeline, render
from app.relay.shared_renders import SharedRenders
from app.settings import get_settings

DAY = date(2026, 11, 23)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")


def make_teams(n: int, tag: str) -> list[int]:
    """``n`` teams, each with its digests of DAY and its reminders: members who wrote (entries,
    blockers, goals), one away, one silent whose reminder of DAY reached them, a comment written on
    DAY; every other team asks a goal question and keeps quiet members out of its digest. The
    outbox rows' ids."""
    made = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    ids = []
    with session() as s:
        for i in range(n):
            t = Team(
                name=f"{tag} team {i}", timezone=ZONES[i % len(ZONES)], created_at=made - timedelta(days=30)
            )
            s.add(t)
            s.flush()
            goal = i % 2 == 1
            s.add(
                TeamSettings(
                    team_id=t.id,
                    tracking=True,
                    digest_include_quiet=not goal,
                    questions="What did you get done?\nWhat will you do tomorrow?" if goal else "",
                )
            )
            ms = [
                Member(team_id=t.id, email=f"{tag}-{i}-{k}@example.net", name=f"Mémber {k}", created_at=made)
                for k in range(4)
            ]
            s.add_all(ms)
            s.flush()
            writer, blocked, away, silent = ms
            s.add(MemberPause(member_id=away.id, first_day=DAY, last_day=DAY + timedelta(days=2)))
            for k in range(3):
                s.add(
                    Entry(
                        team_id=t.id, member_id=writer.id, day=DAY, text=f"Shipped {k} <b>x</b>", kind="done"
                    )
                )
            s.add(
                Entry(
                    team_id=t.id,
                    member_id=writer.id,
                    day=DAY - timedelta(days=1),
                    text="Plan it",
                    kind="goal",
                )
            )
            old = made - timedelta(days=3)
            for k in range(2):
                s.add(
                    Entry(
                        team_id=t.id,
                        member_id=blocked.id,
                        day=DAY,
                        text=f"Blocked {k}",
                        kind="blocker",
                        created_at=old,
                    )
                )
            s.flush()
            s.add(
                Comment(
                    team_id=t.id,
                    day=DAY,
                    author_id=writer.id,
                    member_id=blocked.id,
                    text=f"Hang in there {i}",
                    created_at=made - timedelta(hours=20),
                )
            )
            for kind in ("digest", "reminder"):
                for m in ms:
                    row = checkin_row(kind, m, t, t.timezone, DAY, f"<{tag}-{i}-{m.id}-{kind}@x>", track=True)
                    mid, _ = outbox.create(s, now=made, lease_until=made, **row)
                    ids.append(mid)
            # the silent member was asked on DAY: their reminder of DAY reached them
            reached = s.get(OutboundMessage, ids[-1])
            reached.state, reached.sent_at = "sent", made
    return ids


def messages(ids: list[int]) -> list[OutboundMessage]:
    with session() as s:
        rows = list(s.execute(select(OutboundMessage).where(OutboundMessage.id.in_(ids))).scalars())
        for r in rows:
            s.expunge(r)
    return sorted(rows, key=lambda r: r.id)


def own_renders(rows) -> list[tuple]:
    out = []
    for m in rows:
        with session() as s:
            context, text, html = render.render_message(s, m, get_settings())
        out.append((text, html, context["_headers"]))
    return out


def batch_renders(rows) -> tuple[list[tuple], list[str]]:
    """Each row rendered through one RenderBatch, and the statements that took."""
    statements = []

    def count(conn, cursor, statement, *a):
        statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    batch = pipeline.RenderBatch(rows, get_settings())
    try:
        out = []
        for m in rows:
            d = pipeline.Delivery(
                message=m, settings=get_settings(), transport=None, now=utcnow(), renders=batch
            )
            context, text, html = pipeline._render(d)
            out.append((text, html, context["_headers"]))
    finally:
        batch.close()
        event.remove(engine, "before_cursor_execute", count)
    return out, statements


def test_a_batch_renders_every_reminder_and_digest_as_its_own_reads_do(db):
    pipeline.reset()
    rows = messages(make_teams(4, "same"))
    mine = own_renders(rows)
    assert any("Hang in there" in text for text, _, _ in mine)  # the data reaches the templates
    assert any("Blocked 1" in text for text, _, _ in mine)
    assert any("Plan it" in text for text, _, _ in mine)
    batched, _ = batch_renders(rows)
    assert batched == mine


@pytest.mark.parametrize("kind", ["digest", "reminder", "both"])
def test_a_batch_reads_as_many_times_however_many_teams_it_holds(db, kind):
    pipeline.reset()

    def of_kind(ids):
        return [m for m in messages(ids) if kind in ("both", m.kind)]

    small, big = of_kind(make_teams(2, "small")), of_kind(make_teams(6, "big"))
    assert len(big) == 3 * len(small)
    _, few = batch_renders(small)
    _, many = batch_renders(big)
    assert len(many) == len(few)
    assert len(few) <= 16  # teams and options, members, entries, pauses, reminders, comments, goals, BEGINs


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_batch_binds_each_list_it_reads_by_as_one_parameter_on_postgresql(db):
    """The same statement texts for a batch of 2 teams as for one of 6 (psycopg converts each once and
    prepares it), where an IN of a parameter per id has a text per length."""
    pipeline.reset()
    small, big = messages(make_teams(2, "small")), messages(make_teams(6, "big"))
    _, few = batch_renders(small)
    _, many = batch_renders(big)
    assert few == many


def test_open_blockers_read_at_once_are_each_reminders_own(db):
    from app.checkins.notices import MAX_STILL_BLOCKED, still_blocked, still_blocked_many

    made = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    with session() as s:
        t = Team(name="Blocked", timezone="UTC", created_at=made)
        s.add(t)
        s.flush()
        ms = [
            Member(team_id=t.id, email=f"b{k}@example.net", name=f"B {k}", created_at=made) for k in range(3)
        ]
        s.add_all(ms)
        s.flush()
        for k in range(MAX_STILL_BLOCKED + 5):  # one a day, more than a reminder lists
            for m in ms[:2]:
                at = made - timedelta(days=k + 1, hours=m.id % 3)
                s.add(
                    Entry(
                        team_id=t.id,
                        member_id=m.id,
                        day=at.date(),
                        text=f"B{k}",
                        kind="blocker",
                        created_at=at,
                    )
                )
        s.flush()
        asks = [(m.id, made - timedelta(days=d)) for m in ms for d in (0, 3, 9, 30)]
        many = still_blocked_many(s, asks)
        for mid, at in asks:
            assert [e.id for e in many[mid, at]] == [e.id for e in still_blocked(s, mid, at=at)]
        assert len(many[ms[0].id, made]) == MAX_STILL_BLOCKED and many[ms[2].id, made] == []


def test_a_batch_asks_redis_once_for_each_shared_render_it_lacks(db, redis_url, monkeypatch):
    pipeline.reset()
    rows = [m for m in messages(make_teams(3, "asks")) if m.kind == "digest"]
    settings = dataclasses.replace(get_settings(), redis_url=redis_url)
    asked: list[str] = []

    class Counting:  # the real client, its GETs counted
        def __init__(self, r):
            self.r = r

        def get(self, name):
            asked.append(name)
            return self.r.get(name)

        def set(self, *a, **kw):
            return self.r.set(*a, **kw)

    def new_process() -> None:  # a worker process's own store of shared renders, empty
        store = SharedRenders()
        real = store._r
        monkeypatch.setattr(store, "_r", lambda url: Counting(real(url)) if url else None)
        monkeypatch.setattr(pipeline, "shared_renders", store)
        asked.clear()

    def send_all() -> list[str]:
        batch = pipeline.RenderBatch(rows, settings)
        texts = []
        try:
            for m in rows:
                d = pipeline.Delivery(
                    message=m, settings=settings, transport=None, now=utcnow(), renders=batch
                )
                assert pipeline.render_body(d) is None
                texts.append(d.text)
        finally:
            batch.close()
        return texts

    new_process()
    first = send_all()
    assert len(rows) == 12 and len(set(first)) == 3  # three teams' digests, each rendered once
    assert len(asked) == len(set(asked)) == 3  # a miss is not asked again, by the prefetch or the render
    new_process()  # another worker: the renders are in Redis only
    assert send_all() == first
    assert len(asked) == 3  # found there, once each
