"""A counting SMTP sink for the kill test: accepts everything, counts each Message-ID.

Run as ``python bench/sink.py PORT OUTFILE [DELAY_MS]``; on SIGTERM it writes
``{message_id: count}`` as JSON. With DELAY_MS it answers each message's content that many
milliseconds late (each connection waits on its own), as a remote server does whose reply takes
a round trip and its own queueing.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections import Counter

from aiosmtpd.controller import Controller

MID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class Counting:
    def __init__(self, delay_s: float = 0.0):
        self.seen: Counter[str] = Counter()
        self.delay_s = delay_s

    async def handle_DATA(self, server, session, envelope):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        m = MID.search(envelope.original_content.split(b"\r\n\r\n", 1)[0])
        self.seen[m.group(1).decode() if m else "(none)"] += 1
        return "250 2.0.0 Ok"


def main() -> None:
    port, out = int(sys.argv[1]), sys.argv[2]
    handler = Counting(float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    done = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print("ready", flush=True)
    loop.run_until_complete(done.wait())
    controller.stop()
    with open(out, "w") as f:
        json.dump(dict(handler.seen), f)


if __name__ == "__main__":
    main()
