"""The tick at scale: batches, SKIP LOCKED, concurrent scheduler processes, late policy, pauses."""

import json
import os
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from app.checkins import due, times
from app.checkins.schedules import due_times, set_due
from app.db import get_engine, session
from app.models import Entry, Member, MemberDue, MemberPause, OutboundMessage, Team
from app.settings import ROOT, get_settings
from jobs.scheduler import tick
from tests.conftest import FIXED_NOW, due_of, make_due

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "Pacific/Chatham")
AT = FIXED_NOW.replace(hour=16, minute=0)  # every member of the population below is due here


def population(n_teams: int, per_team: int) -> int:
    """n_teams x per_team members over several zones, all with a reminder due at AT; returns the count."""
    with session() as s:
        teams = [
            Team(name=f"T{i}", timezone=ZONES[i % len(ZONES)], workdays="1234567") for i in range(n_teams)
        ]
        s.add_all(teams)
        s.flush()
        rows = [
            {
                "team_id": t.id,
                "email": f"m{j}@t{t.id}.example",
                "name": f"M{j}",
                "role": "member",
                "active": True,
                "created_at": FIXED_NOW,
            }
            for t in teams
            for j in range(per_team)
        ]
        ids = s.execute(insert(Member.__table__).returning(Member.id), rows).scalars().all()
        set_due(s, "reminder", [(i, AT) for i in ids])
        set_due(s, "digest", [(i, AT + timedelta(days=7)) for i in ids])
    return len(rows)


def counts() -> tuple[int, int]:
    with session() as s:
        total = s.execute(select(func.count()).select_from(OutboundMessage)).scalar()
        keys = s.execute(select(func.count(func.distinct(OutboundMessage.idempotency_key)))).scalar()
    return total, keys


def enqueued_ids(redis_url: str) -> list[int]:
    """Every outbox id in every message waiting on the Redis broker."""
    import redis

    r = redis.Redis.from_url(redis_url)
    ids: list[int] = []
    for key in r.scan_iter("donebox:*.msgs"):
        for raw in r.hvals(key):
            arg = json.loads(raw)["args"][0]
            ids += arg if isinstance(arg, list) else [arg]
    return ids


def test_batches_smaller_than_the_due_set_handle_everyone(db, env):
    env.setenv("SCHEDULE_BATCH", "7")
    get_settings.cache_clear()
    n = population(3, 10)
    result = tick(now=AT, settings=get_settings())
    assert len(result["created"]) == n == counts()[0]
    with session() as s:
        assert s.execute(select(func.min(MemberDue.at)).where(MemberDue.kind == "reminder")).scalar() > AT


def test_two_scheduler_processes_on_postgresql_create_and_enqueue_each_reminder_once(env, pg_url, redis_url):
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    n = population(40, 100)
    proc_env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "SCHEDULE_BATCH": "50",
        "PYTHONPATH": str(ROOT),
    }
    start_at = time.time() + 4  # both have imported everything by then and start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.scheduler_proc", str(start_at), AT.isoformat()],
            env=proc_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    created = [int(out.strip().rsplit("created=", 1)[1]) for out, _ in outs]
    assert sum(created) == n  # each reminder created by exactly one of the two
    assert counts() == (n, n)
    ids = enqueued_ids(redis_url)
    assert len(ids) == len(set(ids)) == n  # and enqueued exactly once
    with session() as s:
        assert (
            s.execute(select(func.count()).where(MemberDue.kind == "reminder", MemberDue.at <= AT)).scalar()
            == 0
        )


def meeting(threads: int) -> tuple[Callable[[list[int]], None], list[tuple[str, list[int]]]]:
    """An ``enqueue`` for due.run, and the (thread name, ids) it is given: each thread holds its
    first committed batch until ``threads`` threads have one. On a busy machine some threads could
    otherwise drain every batch before the others started (a count of the threads that ran then
    fails); threads that never run at once time the barrier out instead."""
    enqueued: list[tuple[str, list[int]]] = []
    all_started, seen = threading.Barrier(threads), set()

    def enqueue(ids: list[int]) -> None:
        name = threading.current_thread().name
        if name not in seen:
            seen.add(name)
            all_started.wait(timeout=60)
        enqueued.append((name, ids))

    return enqueue, enqueued


def test_one_scheduler_runs_batches_on_several_connections_and_makes_each_row_once(env, pg_url):
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    n = population(30, 40)
    enqueue, enqueued = meeting(3)
    created = due.run(now=AT, settings=get_settings(), enqueue=enqueue, batch=25, workers=3)
    ids = [i for _, batch in enqueued for i in batch]
    assert len(created) == len(ids) == len(set(ids)) == n == counts()[0] == counts()[1]
    assert len({name for name, _ in enqueued}) == 3  # every worker thread ran batches
    with session() as s:
        assert (
            s.execute(select(func.count()).where(MemberDue.kind == "reminder", MemberDue.at <= AT)).scalar()
            == 0
        )


def ticking_now() -> int:
    """Schedulers that hold their place among those ticking on the database (due._Ticking)."""
    with get_engine().connect() as c:
        return c.execute(due._TICKING_NOW).scalar_one()


@pytest.mark.parametrize("fast_path", [True, False], ids=["set-based", "per-row"])
def test_a_scheduler_ticking_beside_another_runs_its_share_of_the_batches_at_once(env, pg_url, fast_path):
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    n = population(30, 40)
    peer = due._Ticking(workers=2)  # another scheduler process, in its tick (its own connection)
    enqueue, enqueued = meeting(2)
    try:
        assert ticking_now() == 1
        created = due.run(
            now=AT, settings=get_settings(), enqueue=enqueue, batch=25, workers=4, fast_path=fast_path
        )
    finally:
        peer.close()
    # four threads, two schedulers ticking: two of its threads run batches, the other two none
    assert len({name for name, _ in enqueued}) == 2
    assert len(created) == n == counts()[0] == counts()[1]
    assert ticking_now() == 0  # its place given up with its tick


def test_a_tick_that_fails_gives_its_place_among_the_ticking_schedulers_up(env, pg_url):
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    population(2, 10)
    during = []

    def enqueue(ids: list[int]) -> None:
        during.append(ticking_now())
        raise RuntimeError("the broker is gone")

    with pytest.raises(RuntimeError, match="broker"):
        due.run(now=AT, settings=get_settings(), enqueue=enqueue, batch=5, workers=1)
    assert during == [1] and ticking_now() == 0


def test_sqlite_runs_one_batch_at_a_time_whatever_the_setting(env, sqlite_url):
    env.setenv("DATABASE_URL", sqlite_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    n = population(2, 10)
    names = set()
    due.run(
        now=AT,
        settings=get_settings(),
        enqueue=lambda ids: names.add(threading.current_thread().name),
        batch=3,
        workers=4,
    )
    assert names == {threading.current_thread().name} and counts()[0] == n


def test_skip_locked_leaves_a_member_another_scheduler_holds_and_does_not_wait(env, pg_url):
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    population(1, 10)
    engine = get_engine()
    holder = engine.connect()
    tx = holder.begin()
    first_three = (
        "SELECT member_id FROM memberdue WHERE kind = 'reminder' ORDER BY member_id LIMIT 3 FOR UPDATE"
    )
    held = holder.execute(text(first_three)).scalars().all()
    try:
        done = threading.Event()
        result = {}

        def run():
            result.update(tick(now=AT, settings=get_settings()))
            done.set()

        threading.Thread(target=run, daemon=True).start()
        assert done.wait(30), "the tick waited on a locked member instead of skipping it"
        assert len(result["created"]) == 7
    finally:
        tx.rollback()
        holder.close()
    assert len(tick(now=AT, settings=get_settings())["created"]) == 3  # the next tick takes the rest
    with session() as s:
        keys = s.execute(select(OutboundMessage.member_id)).scalars().all()
    assert sorted(keys) == sorted(set(keys)) and set(held) <= set(keys)


def test_the_fast_path_reads_the_due_members_in_id_order_and_a_chunk_done_elsewhere_makes_nothing(
    env, pg_url
):
    """fast_due_ids lists every due member, ascending; a chunk that another scheduler (here: the
    same chunk run before) already advanced makes no second row, and one whose members a
    scheduler holds is passed over without waiting."""
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    reset_caches()
    _truncate(get_engine())
    n = population(3, 10)
    with session() as s:
        s.execute(
            update(MemberDue)
            .where(MemberDue.kind == "reminder", MemberDue.member_id % 3 == 0)
            .values(at=AT + timedelta(hours=1))
        )
        expected = sorted(
            s.execute(
                select(MemberDue.member_id).where(MemberDue.kind == "reminder", MemberDue.at <= AT)
            ).scalars()
        )
    with session() as s:
        members = due.fast_due_ids(s, AT)
    assert list(members) == expected and 0 < len(expected) < n
    chunk = members[:6]
    settings = get_settings()
    with session() as s:
        ids, handled = due.run_fast_reminders(s, now=AT, settings=settings, members=chunk)
    assert len(ids) == handled == 6
    with session() as s:
        assert due.run_fast_reminders(s, now=AT, settings=settings, members=chunk) == ([], 0)
    holder = get_engine().connect()
    tx = holder.begin()
    rest = list(members[6:])
    holder.execute(
        text("SELECT 1 FROM memberdue WHERE kind = 'reminder' AND member_id = :m FOR UPDATE"), {"m": rest[0]}
    )
    try:
        with session() as s:
            ids, handled = due.run_fast_reminders(s, now=AT, settings=settings, members=rest)
        assert handled == len(rest) - 1
    finally:
        tx.rollback()
        holder.close()
    with session() as s:
        made = s.execute(select(OutboundMessage.member_id)).scalars().all()
    assert sorted(made) == [m for m in expected if m != rest[0]]


def test_chunks_are_handed_out_once_across_threads_from_a_random_first():
    firsts = set()
    for _ in range(30):
        chunks = due._Chunks(array("i", range(1000)), 64)
        got = [chunks.take()]
        firsts.add(got[0][0])

        def take(chunks=chunks, got=got) -> None:
            while (chunk := chunks.take(elsewhere=len(got) % 5 == 0)) is not None:
                got.append(chunk)

        threads = [threading.Thread(target=take) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(c[0] for c in got) == list(range(0, 1000, 64))
        assert sorted(i for c in got for i in c) == list(range(1000))  # every id once
    assert len(firsts) > 1  # the first chunk differs between schedulers
    assert due._Chunks(array("i"), 64).take() is None


def test_a_chunk_done_elsewhere_sends_the_scheduler_to_the_middle_of_what_it_has_not_taken():
    chunks = due._Chunks(array("i", range(200)), 10)  # chunks 0..19, ids 0..199

    def take(elsewhere: bool = False) -> int:
        chunk = chunks.take(elsewhere)
        assert list(chunk) == list(range(chunk[0], chunk[0] + 10))
        return chunk[0]

    chunks.at = 2
    assert [take(), take()] == [20, 30]  # in order from the first
    # chunk 4 was done elsewhere: of 0-1 and 4-19, the middle of 4-19
    assert take(elsewhere=True) == 120
    assert [take(), take()] == [130, 140]
    assert take(elsewhere=True) == 80  # of 0-1, 4-11 and 15-19: the middle of 4-11
    left = []
    while chunks.left:
        left.append(take())
    assert chunks.take() is None
    assert left[:2] == [90, 100] and sorted(left + [20, 30, 120, 130, 140, 80]) == list(range(0, 200, 10))


def test_a_late_digest_is_still_sent_but_a_late_reminder_is_not(team, sent):
    at = FIXED_NOW.replace(day=24, hour=20)  # Tuesday: digest (07:00 UTC) 13 hours late, reminder 4 hours
    created = tick(now=at, settings=get_settings())["created"]
    with session() as s:
        kinds = sorted(
            s.execute(select(OutboundMessage.kind).where(OutboundMessage.id.in_(list(created)))).scalars()
        )
    assert kinds == ["digest"] * 3


def test_a_paused_member_gets_nothing_on_paused_days_and_resumes_after(team, sent):
    with session() as s:
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        # written behind the scheduler's back: the tick itself must respect it
        s.add(MemberPause(member_id=bob.id, first_day=date(2026, 11, 23), last_day=date(2026, 11, 24)))
    at = FIXED_NOW.replace(hour=16, minute=0, second=5)
    tick(now=at, settings=get_settings())
    with session() as s:
        to = sorted(s.execute(select(OutboundMessage.to_addr)).scalars())
    assert to == ["ada@example.com"]
    assert due_of(bob.id)["reminder"] == FIXED_NOW.replace(day=25, hour=16, minute=0)


def test_a_team_that_skips_empty_digests_gets_none_for_a_silent_day(team, sent):
    with session() as s:
        s.execute(update(Team).where(Team.id == team.id).values(skip_empty_digests=True))
    at = FIXED_NOW.replace(day=24, hour=7, minute=0, second=1)
    assert tick(now=at, settings=get_settings())["created"].tolist() == []
    with session() as s:
        ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
        assert due_times(s, ada.id)["digest"] == FIXED_NOW.replace(day=25, hour=7, minute=0)
        s.add(Entry(team_id=team.id, member_id=ada.id, day=date(2026, 11, 24), text="Shipped"))
    at = FIXED_NOW.replace(day=25, hour=7, minute=0, second=1)
    assert len(tick(now=at, settings=get_settings())["created"]) == 3


def test_an_inactive_member_is_dropped_from_the_schedule(team, sent):
    with session() as s:
        s.execute(update(Member).where(Member.email == "bob@example.com").values(active=False))
    tick(now=FIXED_NOW.replace(hour=16, minute=0, second=5), settings=get_settings())
    with session() as s:
        bob = s.execute(select(Member).where(Member.email == "bob@example.com")).scalar_one()
        assert s.execute(select(OutboundMessage.to_addr)).scalars().all() == ["ada@example.com"]
    assert due_of(bob.id)["reminder"] is None


def test_a_tick_keeps_nothing_in_its_caches_once_it_is_done(team, sent):
    """The next times, local days and midnights a tick works out are keyed by instants that do
    not come back: kept after it, they filled their caches (tens of MB in a scheduler)."""
    at = FIXED_NOW.replace(hour=16, minute=0, second=5)
    assert len(due.run(now=at, settings=get_settings(), enqueue=lambda ids: None)) == 2
    for cached in (times._next_plain, due._local_day, due._midnight, due._iso):
        assert cached.cache_info().currsize == 0, cached


@pytest.mark.parametrize("batch", [1, 1000])
def test_a_second_run_at_the_same_instant_creates_nothing(team, sent, batch):
    at = FIXED_NOW.replace(hour=16, minute=0, second=5)
    first = due.run(now=at, settings=get_settings(), enqueue=lambda ids: None, batch=batch)
    with session() as s:  # as if another scheduler had not yet seen the advanced schedule
        make_due(s, "reminder", at)
    again = due.run(now=at, settings=get_settings(), enqueue=lambda ids: None, batch=batch)
    assert len(first) == 2 and again.tolist() == [] and counts() == (2, 2)


def test_due_scheduled_messages_are_released_in_batches_and_enqueued_once(db, env):
    from app.relay import outbox

    env.setenv("SCHEDULE_BATCH", "10")
    get_settings.cache_clear()
    with session() as s:
        for i in range(25):
            outbox.create(
                s,
                now=FIXED_NOW,
                idempotency_key=f"api:test:{i}",
                kind="api",
                to_addr=f"u{i}@example.com",
                template="api",
                context={"text": "x", "html": ""},
                message_id=f"<{i}@test>",
                state="scheduled",
                send_at=FIXED_NOW + timedelta(minutes=i % 2),  # the odd ones are not due yet
            )
    batches = []
    from jobs.scheduler import release_scheduled

    got = release_scheduled(now=FIXED_NOW, settings=get_settings(), enqueue=batches.append)
    assert len(got) == 13 == len(set(got)) and [len(b) for b in batches] == [10, 3]
    assert release_scheduled(now=FIXED_NOW, settings=get_settings(), enqueue=batches.append) == []
    assert len(release_scheduled(now=AT, settings=get_settings(), enqueue=batches.append)) == 12


def test_a_batch_starts_at_the_last_due_time_taken_and_the_next_tick_takes_what_lies_before(db, env):
    with session() as s:
        t = Team(name="T", timezone="UTC", workdays="1234567")
        s.add(t)
        s.flush()
        for i in range(6):
            m = Member(team_id=t.id, email=f"m{i}@t.example")
            s.add(m)
            s.flush()
            set_due(s, "reminder", [(m.id, AT - timedelta(minutes=6 - i))])
        team_id = t.id
    settings = get_settings()
    with session() as s:
        ids, handled, since = due.run_batch(s, due.REMINDER, now=AT, settings=settings, batch=3, teams={})
    assert handled == 3 and since == AT - timedelta(minutes=4)
    with session() as s:  # due before `since`: as if another batch had skipped it and rolled back
        late = Member(team_id=team_id, email="late@t.example")
        s.add(late)
        s.flush()
        set_due(s, "reminder", [(late.id, AT - timedelta(minutes=30))])
    with session() as s:
        _, handled, since = due.run_batch(
            s, due.REMINDER, now=AT, settings=settings, batch=3, teams={}, since=since
        )
    assert handled == 3 and since == AT - timedelta(minutes=1)
    created = due.run(now=AT, settings=settings, enqueue=lambda ids: None)  # the next tick
    with session() as s:
        assert [s.get(OutboundMessage, i).to_addr for i in created] == ["late@t.example"]


# a Saturday evening UTC: Berlin's clocks spring forward at 01:00 UTC, within the next reminders
DST_AT = date(2026, 3, 28)


def mixed_population(at) -> None:
    """Members due at ``at`` whom every rule of the reminder's tick touches: DST gaps and a
    midnight gap, members' own zone/time/days, observers, inactive members, a late reminder, a
    pause, a tracking team and a nudging team."""
    from app.models import TeamSettings

    with session() as s:
        teams = [
            Team(name="Berlin", timezone="Europe/Berlin", reminder_time="02:30", workdays="1234567"),
            Team(name="Santiago", timezone="America/Santiago", reminder_time="00:00", workdays="12345"),
            Team(name="Lord Howe", timezone="Australia/Lord_Howe", reminder_time="17:00", workdays="1234567"),
            Team(name="Chatham", timezone="Pacific/Chatham", reminder_time="09:15", workdays="67"),
        ]
        s.add_all(teams)
        s.flush()
        s.add(TeamSettings(team_id=teams[0].id, tracking=True))
        s.add(TeamSettings(team_id=teams[2].id, nudge_hours=3, nudge_cutoff="23:00"))
        overrides = [
            {},
            {"timezone": "Asia/Kolkata"},
            {"reminder_time": "23:59", "reminder_days": "6"},
            {"timezone": "America/New_York", "reminder_time": "02:15", "reminder_days": "17"},
            {"role": "observer"},
            {"active": False},
            {"late": True},
            {"paused": True},
        ]
        members = []
        for t in teams:
            for j, extra in enumerate(overrides):
                extra = dict(extra)
                late, paused = extra.pop("late", False), extra.pop("paused", False)
                m = Member(
                    team_id=t.id,
                    email=f"m{j}@t{t.id}.example",
                    name=f"M{j}",
                    created_at=FIXED_NOW,
                    **extra,
                )
                members.append((m, paused, at - timedelta(hours=4 if late else 0, minutes=j)))
        s.add_all([m for m, _, _ in members])
        s.flush()
        set_due(s, "reminder", [(m.id, due_at) for m, _, due_at in members])
        set_due(s, "digest", [(m.id, at + timedelta(days=7)) for m, _, _ in members])
        for m, paused, _ in members:
            if paused:
                s.add(
                    MemberPause(
                        member_id=m.id,
                        first_day=DST_AT,
                        last_day=DST_AT + timedelta(days=3),
                        created_at=FIXED_NOW,
                    )
                )


def outcome(created: list[int]) -> tuple[list, list]:
    """The outbox rows made (the Message-ID's random part left out) and every member's next times."""
    with session() as s:
        rows = s.execute(
            select(
                OutboundMessage.id.in_(list(created)),
                OutboundMessage.idempotency_key,
                OutboundMessage.kind,
                OutboundMessage.team_id,
                OutboundMessage.member_id,
                OutboundMessage.to_addr,
                OutboundMessage.subject,
                OutboundMessage.template,
                OutboundMessage.context,
                func.substr(OutboundMessage.message_id, 18),
                OutboundMessage.expires_at,
                OutboundMessage.state,
                OutboundMessage.lease_until,
                OutboundMessage.next_attempt_at,
            ).order_by(OutboundMessage.idempotency_key)
        ).all()
        events = s.execute(text("SELECT count(*) FROM messageevent WHERE kind = 'queued'")).scalar()
        times = [
            (mid, *due_times(s, mid).values())
            for mid in s.execute(select(Member.id).order_by(Member.id)).scalars()
        ]
    assert events == len(rows)
    return [tuple(r) for r in rows], times


def test_postgresql_reminders_set_based_make_what_the_per_row_path_makes(env, pg_url, monkeypatch):
    """The set-based path (one statement a batch) and run_batch agree row for row and time for
    time, across DST changes and every rule; the fast path handled the plain members and left
    the paused and nudged ones to run_batch."""
    env.setenv("DATABASE_URL", pg_url)
    from tests.conftest import _truncate, reset_caches

    at = datetime.combine(DST_AT, datetime.min.time(), tzinfo=UTC).replace(hour=23, minute=30)
    handled = []
    fast = due.run_fast_reminders

    def counting(*args, **kwargs):
        result = fast(*args, **kwargs)
        handled.append(result[1])
        return result

    monkeypatch.setattr(due, "run_fast_reminders", counting)
    outcomes = []
    for fast_path in (False, True):
        reset_caches()
        _truncate(get_engine())
        mixed_population(at)
        created = due.run(
            now=at, settings=get_settings(), enqueue=lambda ids: None, batch=5, fast_path=fast_path
        )
        outcomes.append(outcome(created))
    per_row, set_based = outcomes
    assert set_based == per_row
    rows, times = set_based
    assert len(rows) > 10 and any('"_track": true' in r[8] for r in rows)
    # 4 teams x 8 members, less the Lord Howe team (nudges) and the 3 other paused members
    assert sum(handled) == 32 - 8 - 3
    assert all(t[1] is None or t[1] > at for t in times)
