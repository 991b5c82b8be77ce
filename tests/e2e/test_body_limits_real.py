"""`donebox web` as a process: 100 MB bodies offered to every kind of endpoint are answered after
reading (almost) nothing of them, measured on the server's side (/proc/<pid>/io rchar: bytes the
process read, sockets included) and in its memory (VmRSS)."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import base_env, free_port, http, wait_until

pytestmark = pytest.mark.e2e

OFFERED = 100 * 1024 * 1024
READ_BUDGET = 2 * 1024 * 1024  # socket buffers and uvicorn's 64 KiB high-water mark, with room to spare


def proc_value(pid: int, name: str, field: str) -> int:
    """A number from /proc/<pid>/<name> (io: bytes; status: kB)."""
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value.split()[0])
    raise KeyError(field)


def offer(port: int, path: str, headers: dict, *, chunked: bool) -> tuple[int, bytes, int]:
    """POST ``path`` offering OFFERED bytes, reading the answer whenever it comes; (status, the
    answer's head and what followed, bytes the client managed to send)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: donebox.test\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {OFFERED}\r\n"
    s.sendall(head.encode() + b"\r\n")
    s.setblocking(False)
    chunk = b"a" * 65536
    frame = b"10000\r\n" + chunk + b"\r\n" if chunked else chunk
    pending, sent, answer, can_send = b"", 0, b"", True
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            want_write = can_send and sent < OFFERED
            readable, writable, _ = select.select([s], [s] if want_write else [], [], 1)
            if readable:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                answer += data
                continue
            if writable:
                if not pending:
                    pending = frame
                try:
                    n = s.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    can_send = False  # the server closed: read what it answered
                    continue
                pending, sent = pending[n:], sent + n
    finally:
        s.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, sent


def test_unauthenticated_and_oversized_bodies_are_answered_with_almost_nothing_read(tmp_path, procs):
    port = free_port()
    env = base_env(tmp_path)
    assert procs.run(["migrate"], env).returncode == 0
    made = procs.run(["api-token", "create", "e2e"], env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    web = procs.start(["web", "--port", str(port)], env)
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "the web server")

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [  # (what, path, headers, the status it gets)
        ("API, no token", "/api/teams/1/entries", {"Content-Type": "application/json"}, 401),
        ("API, unknown token", "/api/messages", {"Authorization": "Bearer dbx_nope"}, 401),
        ("form page, no session", "/teams/1/entries", form, 303),
        ("sign-in form, no session", "/signin", form, 403),
        ("inbound webhook, wrong secret", "/inbound/raw", {"Authorization": "Bearer wrong"}, 401),
        ("unsubscribe, forged token", "/t/u/1.u.AAAAAAAAAAAAAAAAAAAAAA", {}, 404),
        ("API, past API_MAX_BYTES", "/api/suppressions", {"Authorization": f"Bearer {token}"}, 413),
    ]
    rss_before = proc_value(web.pid, "status", "VmRSS")
    report = []
    for what, path, headers, want in cases:
        if want == 413:
            headers = {**headers, "Content-Type": "application/json"}
        for chunked in (False, True):
            before = proc_value(web.pid, "io", "rchar")
            status, answer, sent = offer(port, path, headers, chunked=chunked)
            read = proc_value(web.pid, "io", "rchar") - before
            report.append(
                f"{what} ({'chunked' if chunked else 'declared'}): {status}, read {read} B, sent {sent} B"
            )
            assert status == want, (what, chunked, answer[:300])
            assert b"connection: close" in answer.lower(), (what, answer[:300])
            assert read < READ_BUDGET + (1024 * 1024 if want == 413 else 0), report[-1]
    rss_after = proc_value(web.pid, "status", "VmRSS")
    print("\n".join(report), f"\nVmRSS {rss_before} kB -> {rss_after} kB", sep="")
    assert rss_after - rss_before < 50 * 1024  # kB: 14 x 100 MB offered, a few MB at most kept
    assert http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
