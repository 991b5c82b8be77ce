"""jobs.enqueue: the intake's committed groups go to processing in fewer broker messages."""

from __future__ import annotations

import threading
import time

from jobs.enqueue import INBOUND_IDS, Coalesced


class Sent:
    """A send that records (monotonic time, ids) of each call."""

    def __init__(self, fail_first: bool = False):
        self.calls: list[tuple[float, list[int]]] = []
        self.fail_first = fail_first
        self.event = threading.Event()

    def __call__(self, ids: list[int]) -> None:
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("the broker is down")
        self.calls.append((time.monotonic(), list(ids)))
        self.event.set()

    def ids(self) -> list[int]:
        return [i for _, ids in self.calls for i in ids]


def test_a_group_after_a_quiet_spell_goes_at_once():
    sent = Sent()
    c = Coalesced(sent, window_s=60.0)  # a window never reached: only the leading edge can send
    t0 = time.monotonic()
    c([1, 2, 3])
    assert sent.event.wait(5), "the first group waited for its window"
    assert sent.calls[0][1] == [1, 2, 3] and sent.calls[0][0] - t0 < 1.0


def test_groups_within_the_window_go_together_in_order_and_none_is_lost():
    sent = Sent()
    c = Coalesced(sent, window_s=0.05)
    t0 = time.monotonic()
    for i in range(400):  # a group of one every 0.5 ms for about 0.2 s
        c([i])
        time.sleep(0.0005)
    c.flush()
    elapsed = time.monotonic() - t0
    assert sent.ids() == list(range(400))  # each once, in the order they came
    # the leading send, then at most one per window (plus the flush), or a full message's worth
    assert len(sent.calls) <= elapsed / 0.05 + 2 + 400 // INBOUND_IDS
    assert len(sent.calls) < 40  # against 400 groups, 400 messages before
    assert all(len(ids) <= INBOUND_IDS for _, ids in sent.calls)
    gaps = [b[0] - a[0] for a, b in zip(sent.calls, sent.calls[1:], strict=False)]
    assert sum(g < 0.04 for g in gaps[:-1]) <= 400 // INBOUND_IDS  # only a full message goes early


def test_a_full_message_goes_without_waiting_for_the_window():
    sent = Sent()
    c = Coalesced(sent, window_s=60.0)
    c([0])
    assert sent.event.wait(5)
    sent.event.clear()
    c(list(range(1, 1 + INBOUND_IDS)))
    assert sent.event.wait(5), "a full message waited for the window"
    assert sent.calls[1][1] == list(range(1, 1 + INBOUND_IDS))


def test_flush_sends_what_waits_and_returns_once_it_is_with_the_broker():
    sent = Sent()
    c = Coalesced(sent, window_s=60.0)
    c([1])
    assert sent.event.wait(5)
    c([2, 3])
    c([4])
    time.sleep(0.05)
    assert sent.ids() == [1]  # held for the window
    c.flush()
    assert sent.ids() == [1, 2, 3, 4]


def test_a_failed_send_is_logged_and_later_groups_still_go(caplog):
    sent = Sent(fail_first=True)
    c = Coalesced(sent, window_s=0.0)
    c([1])
    deadline = time.monotonic() + 5
    while "stored but not enqueued" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "inbound [1] stored but not enqueued; the sweeper will" in caplog.text
    c([2])
    assert sent.event.wait(5) and sent.ids() == [2]


def test_a_late_send_thread_still_hands_over_one_message_at_a_time():
    """While a send is with the broker, groups pile up past a message's worth: they go on in
    messages of INBOUND_IDS (CI's loaded machine once showed one send of more)."""
    release = threading.Event()
    sent = Sent()

    def slow(ids: list[int]) -> None:
        sent(ids)
        if len(sent.calls) == 1:
            release.wait(5)

    c = Coalesced(slow, window_s=60.0)  # only the leading group and full messages go unasked
    c([0])
    assert sent.event.wait(5)
    for i in range(1, 1 + 3 * INBOUND_IDS + 5):
        c([i])
    release.set()
    deadline = time.monotonic() + 5
    while len(sent.calls) < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    c.flush()  # the 5 left over, held for the window
    assert sent.ids() == list(range(1 + 3 * INBOUND_IDS + 5))
    assert [len(ids) for _, ids in sent.calls] == [1, INBOUND_IDS, INBOUND_IDS, INBOUND_IDS, 5]


def test_flush_hands_over_a_pile_one_message_at_a_time():
    sent = Sent()
    c = Coalesced(sent, window_s=60.0)
    c([0])
    assert sent.event.wait(5)
    c(list(range(1, 1 + 2 * INBOUND_IDS + 1)))  # two full messages and one id held for the window
    c.flush()  # races the send thread for the full messages: one send at a time, in order
    assert sent.ids() == list(range(2 + 2 * INBOUND_IDS))
    assert all(len(ids) <= INBOUND_IDS for _, ids in sent.calls)


def test_flush_waits_for_the_batch_on_its_way_and_sends_after_it():
    entered, release = threading.Event(), threading.Event()
    done: list[list[int]] = []  # batches in the order they reached the broker

    def send(ids: list[int]) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(5)  # the first batch is slow to reach the broker
        done.append(list(ids))

    c = Coalesced(send, window_s=60.0)
    c([0])
    assert entered.wait(5)
    c([1, 2])
    flushing = threading.Thread(target=c.flush)
    flushing.start()
    time.sleep(0.05)
    assert done == [], "flush sent past the batch on its way"
    release.set()
    flushing.join(5)
    assert done == [[0], [1, 2]]
