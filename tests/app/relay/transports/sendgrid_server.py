"""A small local server speaking SendGrid's v3 mail send: validates like the real one, answers as told."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "SG.test-key"


class V3Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: dict | None = None, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v3/mail/send":
            return self._answer(404, {"errors": [{"message": "not found"}]})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._answer(401, {"errors": [{"message": "The provided authorization grant is invalid"}]})
        if srv.script:
            status, headers = srv.script.pop(0)
            return self._answer(status, {"errors": [{"message": f"scripted {status}"}]}, headers)
        try:
            mail = json.loads(body)
            assert mail["personalizations"][0]["to"][0]["email"]
            assert mail["from"]["email"] and mail["subject"] and mail["content"]
        except (ValueError, KeyError, IndexError, AssertionError, TypeError):
            return self._answer(400, {"errors": [{"message": "Bad Request", "field": None}]})
        msg_id = uuid.uuid4().hex[:22]
        srv.accepted.append((msg_id, mail))
        self._answer(202, None, {"X-Message-Id": msg_id})


def start() -> ThreadingHTTPServer:
    """A started server on 127.0.0.1:<free port>; ``.accepted``, and ``.script`` of (status, headers)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), V3Handler)
    srv.accepted, srv.script = [], []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
