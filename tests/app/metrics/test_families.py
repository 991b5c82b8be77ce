"""Each metric family moves when its event happens: sends and their senders, the circuit breaker,
outgoing webhooks and the scheduler's tick; read from the exposition a scrape gets. (Inbound and
tracking hits go through the web app: tests/app/web/pages/test_metrics.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

from app.metrics import forget_dead
from app.metrics.scrape import exposition
from app.models import utcnow
from app.relay import routing
from app.relay.pipeline import deliver
from app.relay.transports.memory import MemoryTransport
from app.settings import get_settings
from jobs.scheduler import tick
from tests.app.metrics.scraped import samples, value
from tests.app.relay.test_routing import add_senders, message_to, servers, smtp_url  # noqa: F401 - a fixture
from tests.app.relay.test_webhooks import endpoint, message, receiver, run, send  # noqa: F401 - a fixture
from tests.conftest import FIXED_NOW


def scrape() -> str:
    return exposition(get_settings(), now=utcnow()).decode()


def moved(before: str, after: str, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_a_send_counts_its_sender_its_result_and_its_latency(team):
    before = scrape()
    assert deliver(message_to(team, "a@example.com"), transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    after = scrape()
    assert moved(before, after, "donebox_send_attempts_total", sender="default", result="sent") == 1
    assert moved(before, after, "donebox_send_seconds_count", sender="default") == 1


def test_a_sender_down_counts_its_failures_and_its_open_circuit_until_it_closes(team, servers):  # noqa: F811
    from tests.app.relay.transports.smtp_server import free_port

    add_senders(
        team, [("down", f"smtp://127.0.0.1:{free_port()}?tls=none&timeout=2"), ("up", smtp_url(servers[0]))]
    )
    before = scrape()
    for i in range(4):  # BREAKER_FAILURES is 3: the third failure opens the circuit, the fourth skips it
        assert (
            deliver(message_to(team, f"u{i}@example.com"), transport=MemoryTransport(), now=FIXED_NOW)
            == "sent"
        )
    after = scrape()
    assert moved(before, after, "donebox_send_attempts_total", sender="down", result="transient") == 3
    assert moved(before, after, "donebox_send_attempts_total", sender="up", result="sent") == 4
    assert moved(before, after, "donebox_breaker_opened_total", sender="down", scope="sender") == 1
    assert moved(before, after, "donebox_breaker_open", sender="down", scope="sender") == 1
    # no domain, address or message id is ever a label
    assert not any("example.com" in str(key) for key in samples(after))
    routing.breaker(get_settings()).success("down", "example.com")
    assert value(scrape(), "donebox_breaker_open", sender="down", scope="sender") == value(
        before, "donebox_breaker_open", sender="down", scope="sender"
    )


def test_outgoing_webhook_attempts_count_by_result(team, receiver):  # noqa: F811
    from datetime import timedelta

    endpoint(receiver, team.id, ["sent"])
    send(message(team.id))
    receiver.stop()
    before = scrape()
    run(FIXED_NOW)
    receiver.start()
    run(FIXED_NOW + timedelta(seconds=30))
    after = scrape()
    assert moved(before, after, "donebox_webhook_attempts_total", result="no_answer") == 1
    assert moved(before, after, "donebox_webhook_attempts_total", result="ok") == 1
    assert moved(before, after, "donebox_webhook_seconds_count") == 2


def test_a_scheduler_tick_counts_its_duration_and_the_rows_it_created(team, sent):
    before = scrape()
    result = tick(now=FIXED_NOW.replace(hour=16, minute=0, second=5), settings=get_settings())
    after = scrape()
    assert len(result["created"]) == 2
    assert moved(before, after, "donebox_scheduler_rows_total", kind="created") == 2
    assert moved(before, after, "donebox_scheduler_tick_seconds_count") == 1


def test_a_start_removes_the_files_of_dead_processes_and_a_scrape_only_their_live_gauges(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = int(dead.stdout)  # a pid that ran and exited
    me = os.getpid()
    names = [f"counter_{gone}.db", f"gauge_livesum_{gone}.db", f"counter_{me}.db", f"gauge_livesum_{me}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert forget_dead(tmp_path, live_gauges_only=True) == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n for n in names if n != f"gauge_livesum_{gone}.db"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    # prepare in a process of its own: it sets the environment prometheus_client reads at import
    code = (
        "import sys; from pathlib import Path; from app.metrics import prepare; prepare(Path(sys.argv[1]));"
        "from app.metrics.scrape import shared; print(shared())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "True", out.stderr
    left = {p.name for p in tmp_path.glob("*.db")}
    assert {f"counter_{me}.db", f"gauge_livesum_{me}.db"} <= left  # a running process's files stay
    assert not any(name.endswith(f"_{gone}.db") for name in left)  # a dead one's counters go too
