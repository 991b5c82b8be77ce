"""What every bench shares and that reads no settings at import: waiting for a port, and writing
a bench's section into BENCHMARKS.md."""

from __future__ import annotations

import socket
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def wait_port(port: int, timeout_s: float = 10) -> None:
    """Return once something listens on 127.0.0.1:``port``; RuntimeError after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def put_section(heading: str, section: str) -> None:
    """Put ``section`` (starting with ``heading``) in BENCHMARKS.md where the section of that
    heading stands, up to the next ``## ``; at the end when there is none."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text)
