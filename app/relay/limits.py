"""Per-sender rate limits (messages per second), shared by every worker process through Redis.

Placeholder until the limiter lands: no limit is applied.
"""

from __future__ import annotations


def wait_turn(settings, sender) -> None:
    """Block until ``sender`` may send one more message under its ``rate_per_s``."""
    return None
