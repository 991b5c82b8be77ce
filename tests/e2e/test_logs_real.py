"""Logs of real processes: JSON lines with their ids in production, readable text in development."""

import json
import re

import pytest

from tests.e2e.conftest import base_env, free_port, http, migrated_team, wait_until

pytestmark = pytest.mark.e2e

REPLY = (
    b"From: Ada <ada@example.com>\r\nTo: team@reply.test\r\nSubject: today\r\n"
    b"Message-ID: <logs-e2e@example.com>\r\n\r\nShipped the secret plan\r\n"
)
RAW = {"Authorization": "Bearer test-inbound-token", "Content-Type": "message/rfc822"}


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object (a line that is not one fails the test)."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line on stderr: {line!r}")
    return lines


def with_fields(lines: list[dict]) -> list[dict]:
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= set(line), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"]), line
    return lines


def test_production_web_and_worker_write_json_lines_with_their_ids(tmp_path, procs, fresh_pg, redis_url, env):
    env_vars = base_env(tmp_path, DONEBOX_ENV="production", DATABASE_URL=fresh_pg, REDIS_URL=redis_url)
    env_vars["MAIL_TRANSPORT"] = "maildir"  # set on purpose: production then starts with no sender
    team_id = migrated_team(procs, env, env_vars, "Logs team", {"Ada": "member"})

    port = free_port()
    web = procs.start(["web", "--port", str(port)], env_vars, stderr_apart=True)
    worker = procs.start(["worker", "--processes", "1", "--threads", "2"], env_vars, stderr_apart=True)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http("GET", f"{base}/healthz")[0] == 200, 60, "donebox web to serve")

    import urllib.request

    def request_id_of(method, path, body=None, headers=None) -> tuple[int, str]:
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["X-Request-ID"]

    assert request_id_of("GET", "/healthz", headers={"X-Request-ID": "proxy-id-1"}) == (200, "proxy-id-1")
    status, made = request_id_of("GET", "/healthz", headers={"X-Request-ID": "a b " + "x" * 200})
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", made)  # not sane: replaced
    status, posted = request_id_of("POST", "/inbound/raw", REPLY, RAW)
    assert status == 202 and re.fullmatch(r"[0-9a-f]{32}", posted)

    done = procs.run(["remind", "--now"], env_vars)
    assert done.returncode == 0 and "1 reminders enqueued" in done.stdout, done.stderr
    wait_until(lambda: "message 1: sent" in procs.stderr_of(worker), 60, "the worker's delivery line")
    wait_until(lambda: '"inbound_id": 1' in procs.stderr_of(worker), 60, "the worker's inbound line")
    procs.stop_one(web)
    procs.stop_one(worker)

    web_err, worker_err = procs.stderr_of(web), procs.stderr_of(worker)
    web_lines, worker_lines = with_fields(json_lines(web_err)), with_fields(json_lines(worker_err))
    requests = {(line["msg"], line.get("request_id")) for line in web_lines}
    assert ("GET /healthz 200", "proxy-id-1") in requests
    assert ("GET /healthz 200", made) in requests
    assert ("POST /inbound/{provider} 202", posted) in requests  # the path's text parameter: its name
    assert any(line["logger"].startswith("uvicorn") for line in web_lines)  # uvicorn's own lines too

    (sent,) = [line for line in worker_lines if line["msg"] == "message 1: sent"]
    assert sent["message_id"] == 1 and sent["team_id"] == team_id and sent["logger"] == "donebox.relay"
    (inbound,) = [line for line in worker_lines if line["msg"].startswith("inbound 1: ")]
    assert inbound["inbound_id"] == 1
    assert any(line["logger"].startswith("dramatiq") for line in worker_lines)  # Dramatiq's own lines too

    for text in (web_err, worker_err):  # what a log line never carries
        assert "ada@example.com" not in text and "secret plan" not in text
        assert "test-inbound-token" not in text and "test-secret-key-0123456789-abcdefXYZ" not in text


def test_development_web_writes_readable_lines_with_the_request_id(tmp_path, procs):
    env_vars = base_env(tmp_path)
    assert procs.run(["migrate"], env_vars).returncode == 0
    port = free_port()
    web = procs.start(["web", "--port", str(port)], env_vars, stderr_apart=True)
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "donebox web to serve")
    http("GET", f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "dev-id-7"})
    wait_until(lambda: "dev-id-7" in procs.stderr_of(web), 10, "the request's line")
    procs.stop_one(web)
    lines = procs.stderr_of(web).splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    shown = (
        r"INFO donebox\.web\.requests: GET /healthz 200 \[request_id=dev-id-7 status=200 duration_ms=[\d.]+\]"
    )
    assert any(re.search(shown + "$", line) for line in lines), lines
    assert not any("color_message" in line for line in lines)


def test_a_worker_process_writes_its_own_lines_not_through_dramatiqs_main_process(
    tmp_path, procs, fresh_pg, redis_url, env
):
    """Dramatiq points a worker process's stderr at a pipe its main process reads and writes out
    again; donebox's lines skip it (app.logs.LineWriter). With the main process stopped, the
    worker process's lines still come out."""
    import os
    import signal

    env_vars = base_env(tmp_path, DATABASE_URL=fresh_pg, REDIS_URL=redis_url)
    migrated_team(procs, env, env_vars, "Direct lines", {"Ada": "member"})
    worker = procs.start(["worker", "--processes", "1", "--threads", "2"], env_vars, stderr_apart=True)
    wait_until(lambda: "ready for action" in procs.stderr_of(worker), 60, "the worker process to start")
    os.kill(worker.pid, signal.SIGSTOP)  # `donebox worker` execs Dramatiq's main process
    try:
        done = procs.run(["remind", "--now"], env_vars)
        assert done.returncode == 0 and "1 reminders enqueued" in done.stdout, done.stderr
        wait_until(lambda: "message 1: sent" in procs.stderr_of(worker), 60, "the worker process's own line")
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    procs.stop_one(worker)
    assert procs.stderr_of(worker).count("message 1: sent") == 1  # written once, not relayed again
