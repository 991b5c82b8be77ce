"""A local HTTP receiver of donebox's webhooks on loopback (the outside world's side), verifying each
POST with the snippet docs/relay.md gives application developers."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs" / "relay.md"


def documented_verifier():
    """``verify_donebox_signature`` as docs/relay.md writes it (the python block defining it)."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    code = next(b for b in blocks if "def verify_donebox_signature" in b)
    namespace: dict = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation's code
    return namespace["verify_donebox_signature"]


class Receiver:
    """Answers ``status`` to every POST and keeps (verified, headers, body) of each; ``stop`` and
    ``start`` take it down and bring it back on the same port."""

    def __init__(self, secret: str = ""):
        self.secret = secret
        self.status = 200
        self.received: list[tuple[bool, dict, bytes]] = []
        self.verify = documented_verifier()
        self.server = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/donebox"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = receiver.verify(receiver.secret, self.headers.get("Donebox-Signature", ""), body)
                receiver.received.append((ok, dict(self.headers), body))
                status = receiver.status if ok else 401
                answer = b'{"ok": true}' if status < 300 else b"receiver says no " * 100
                self.send_response(status)
                if 300 <= status < 400:  # elsewhere: a webhook must not follow it
                    self.send_header("Location", "http://127.0.0.2:9/elsewhere")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
