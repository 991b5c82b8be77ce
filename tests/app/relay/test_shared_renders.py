from datetime import date

import pytest

from app.relay import packing
from app.relay.shared_renders import SharedRenders, portable

KEY = ("postgresql://db", "digest", "digest", 7, '{"day": "2026-11-23"}', "2026-11-24 06:00")


class Row:
    """An ORM row the context holds: never kept."""


def context():
    return {
        "day": date(2026, 11, 23),
        "team": Row(),
        "groups": [Row()],
        "_headers": {"Auto-Submitted": "auto-generated"},
        "_reply_domain": "reply.example.com",
        "_track": True,
    }


def test_what_is_kept_of_a_context_is_its_underscore_keys_and_plain_values():
    assert portable(context()) == {
        "day": date(2026, 11, 23),
        "_headers": {"Auto-Submitted": "auto-generated"},
        "_reply_domain": "reply.example.com",
        "_track": True,
    }


def test_a_process_finds_its_own_render_and_gives_back_the_kept_context():
    renders = SharedRenders()
    kept = renders.put(KEY, context(), "text", "<p>html</p>")
    assert renders.get(KEY) == (kept, "text", "<p>html</p>")
    assert renders.get(KEY[:-1] + ("a later batch",)) is None


def test_the_least_recently_used_render_goes_first_past_the_most_kept():
    renders = SharedRenders(most=2)
    for n in range(3):
        renders.put(KEY + (n,), {}, f"text {n}", "")
        renders.get(KEY + (0,))  # used again: stays
    assert renders.get(KEY + (0,)) is not None
    assert renders.get(KEY + (1,)) is None
    assert renders.get(KEY + (2,)) is not None


def test_renders_past_their_time_are_dropped_not_held_until_the_most_kept(monkeypatch):
    from app.relay import shared_renders

    clock = [1000.0]
    monkeypatch.setattr(shared_renders.time, "monotonic", lambda: clock[0])
    renders = SharedRenders(most=100)
    for n in range(10):
        renders.put(KEY + (n,), {}, f"text {n}", "")
    clock[0] += shared_renders.SHARED_RENDER_S + 1
    renders.put(KEY + ("new",), {}, "text", "")
    assert list(renders._items) == [KEY + ("new",)]  # a process holds what it rendered lately


def test_worker_processes_sharing_redis_render_a_batch_once_between_them(redis_url):
    one, other = SharedRenders(), SharedRenders()  # two processes' stores
    assert other.get(KEY, redis_url) is None
    kept = one.put(KEY, context(), "text", "<p>html</p>", redis_url)
    assert other.get(KEY, redis_url) == (kept, "text", "<p>html</p>")
    assert kept["day"] == date(2026, 11, 23)  # a date comes back a date (the digest's Reply-To needs it)
    other.clear()
    assert SharedRenders().get(KEY, redis_url) is None


def test_without_redis_reachable_a_render_is_only_the_processs_own():
    renders = SharedRenders()
    url = "redis://127.0.0.1:1/0"  # nothing listens there
    kept = renders.put(KEY, context(), "text", "", url)
    assert SharedRenders().get(KEY, url) is None
    assert renders.get(KEY, url) == (kept, "text", "")


def test_what_is_derived_from_a_render_is_made_once_while_it_is_kept_and_goes_with_it():
    renders = SharedRenders(most=1)
    made = []

    def make():
        made.append(1)
        return f"plan {len(made)}"

    assert renders.derived(KEY, "plan", make) == "plan 1"  # not kept: made each time
    renders.put(KEY, {}, "text", "<p>html</p>")
    assert renders.derived(KEY, "plan", make) == "plan 2"
    assert renders.derived(KEY, "plan", make) == "plan 2"
    assert renders.derived(KEY, "other", make) == "plan 3"
    renders.put(KEY + ("next",), {}, "text", "")  # the first render goes, and its plans with it
    renders.put(KEY, {}, "text", "<p>html</p>")
    assert renders.derived(KEY, "plan", make) == "plan 4"


def test_a_kept_renders_text_and_html_are_held_compressed_and_given_back_whole():
    renders = SharedRenders()
    html = "<body>" + "".join(f"<p>Entry {i}: shipped the thing ✓</p>" for i in range(300)) + "</body>"
    text = "".join(f"Entry {i}: shipped the thing ✓\n" for i in range(300))
    renders.put(KEY, {}, text, html)
    assert renders.get(KEY) == ({}, text, html)
    held = renders._items[KEY]  # what a worker holds per batch in flight
    assert not any(isinstance(v, str) and len(v) > 100 for v in held)
    assert len(held[3]) < len((text + html).encode()) / 4


def test_whether_a_render_is_kept_is_answered_without_unpacking_it_and_from_redis_too(redis_url, monkeypatch):
    here, there = SharedRenders(), SharedRenders()
    here.put(KEY, context(), "text", "<p>html</p>", redis_url)
    monkeypatch.setattr(packing, "unpack", lambda packed: pytest.fail("unpacked to answer has()"))
    assert here.has(KEY) and not here.has(KEY[:-1] + ("a later batch",))
    monkeypatch.undo()
    assert not there.has(KEY)  # not asked of Redis
    assert there.has(KEY, redis_url)  # another process's render, found in Redis and kept
    assert there.get(KEY) == (portable(context()), "text", "<p>html</p>")
