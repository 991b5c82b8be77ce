"""A test plugin, loaded only by processes started with this folder on PYTHONPATH (tests/e2e).

It stands in for a parser that never finishes: mail carrying the header ``X-Test-Poison:
stall`` makes ``parsers.message.parse_mime`` stall, in short sleeps (so a job's time limit can
interrupt it, as it can interrupt any Python code). Nothing in donebox refers to it.
"""

import time

import parsers.message

_real_parse_mime = parsers.message.parse_mime
STALL_S = 600  # far past any job time limit a test sets


def _stalling_parse_mime(raw, *args, **kwargs):
    if b"\nX-Test-Poison: stall" in raw[:4096]:
        deadline = time.monotonic() + STALL_S
        while time.monotonic() < deadline:
            time.sleep(0.02)
    return _real_parse_mime(raw, *args, **kwargs)


parsers.message.parse_mime = _stalling_parse_mime
