"""A scheduler process for the concurrency tests: wait for a shared start instant, tick once, report.

Usage: python -m tests.jobs.scheduler_proc <start-at epoch seconds> <tick now ISO 8601>
"""

import sys
import time
from datetime import datetime

import jobs.actors  # noqa: F401 - the broker from REDIS_URL, as in `donebox scheduler`
from app.settings import get_settings
from jobs.scheduler import tick

if __name__ == "__main__":
    start_at, now = float(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
    settings = get_settings()
    time.sleep(max(0.0, start_at - time.time()))
    result = tick(now=now, settings=settings)
    print(f"created={len(result['created'])}", flush=True)
