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


def put_section(heading: str, section: str, keep_subsections: bool = False) -> None:
    """Put ``section`` (starting with ``heading``) in BENCHMARKS.md where the section of that
    heading stands, up to the next ``## `` (with ``keep_subsections``, up to the next heading of any
    level, so hand-written ``### `` parts under it stay); at the end when there is none."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start >= 0:
        ends = [text.find(mark, start + 1) for mark in ("\n## ", "\n### ")[: 2 if keep_subsections else 1]]
        end = min((e for e in ends if e >= 0), default=-1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text)
