"""Metrics on real processes: `donebox web` and `donebox worker` share METRICS_DIR, and a scrape of
the web process shows the sends its worker processes made (prometheus-client's multiprocess mode)."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.metrics.scraped import value
from tests.e2e.conftest import base_env, free_port, http, migrated_team, wait_until

pytestmark = pytest.mark.e2e
TOKEN = "e2e-Metrics-token-0123456789"


def test_the_web_process_scrape_shows_the_worker_processes_sends(tmp_path, procs, fresh_pg, env, redis_url):
    env_vars = base_env(tmp_path, DATABASE_URL=fresh_pg, REDIS_URL=redis_url, METRICS_TOKEN=TOKEN)
    migrated_team(procs, env, env_vars, "Metrics team", {"Ada": "member", "Bob": "member"})

    port = free_port()
    procs.start(["web", "--port", str(port)], env_vars)
    procs.start(["worker", "--processes", "2", "--threads", "2"], env_vars)
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, 30, "the web server")
    assert http("GET", f"http://127.0.0.1:{port}/metrics")[0] == 401  # the token is asked for

    done = procs.run(["remind", "--now"], env_vars)
    assert done.returncode == 0 and "2 reminders enqueued" in done.stdout, done.stderr

    def scrape() -> str:
        status, body = http(
            "GET", f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200, body
        return body.decode()

    text = wait_until(
        lambda: (
            (t := scrape())
            and value(t, "donebox_send_attempts_total", sender="default", result="sent") == 2
            and value(t, "donebox_send_seconds_count", sender="default") == 2
            and t
        ),
        30,
        "the worker's two sends in the web process's scrape",
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}  # it parses, as Prometheus would
    assert families["donebox_send_attempts"].type == "counter"
    # the database gauges: nothing waits once both are sent
    assert value(text, "donebox_queue_oldest_waiting_seconds", queue="outbound") == 0
    files = sorted(p.name for p in (tmp_path / "var" / "metrics").glob("*.db"))
    assert len({f.rpartition("_")[2] for f in files}) >= 2, files  # the web's files and a worker's
