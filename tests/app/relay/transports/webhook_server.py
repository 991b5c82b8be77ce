"""A local HTTP server standing in for chat services' incoming webhooks: it keeps every POST (path,
headers, JSON body) and answers as told, per path, else as the service does (Slack and Mattermost
"ok", Discord 204, Teams' Workflows 202, Google Chat the created message)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# the path each service's webhook URL has (the real services' shapes, on loopback)
PATHS = {
    "slack": "/services/T0000TEST/B0000TEST/abcdefghijklmnopqrstuvwx",
    "mattermost": "/hooks/xk3tm5fm3pb6fq1yerm3ctest",
    "teams": "/workflows/0d1e2f3a4b5c/triggers/manual/paths/invoke",
    "googlechat": "/v1/spaces/AAAAtest/messages?key=testkey&token=testtoken",
    "discord": "/api/webhooks/1234567890/testtokenABCDEF",
}
ANSWERS = {
    "slack": (200, {"Content-Type": "text/plain"}, b"ok"),
    "mattermost": (200, {"Content-Type": "text/plain"}, b"ok"),
    "teams": (202, {}, b""),
    "googlechat": (200, {"Content-Type": "application/json"}, b'{"name": "spaces/AAAAtest/messages/1"}'),
    "discord": (204, {}, b""),
}


@dataclass
class Hit:
    path: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class WebhookServer:
    """Started on 127.0.0.1 on a free port; ``script[path]`` is a list of answers given in turn."""

    hits: list[Hit] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict, bytes]]] = field(default_factory=dict)

    def start(self) -> WebhookServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.hits.append(Hit(self.path, dict(self.headers), body))
                queued = server.script.get(self.path)
                if queued:
                    status, headers, answer = queued.pop(0)
                else:
                    service = next((k for k, p in PATHS.items() if p == self.path), "slack")
                    status, headers, answer = ANSWERS[service]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{PATHS[service]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
