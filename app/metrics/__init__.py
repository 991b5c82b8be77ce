"""Prometheus metrics of every donebox process, read at ``GET /metrics`` (docs/metrics.md).

Each process writes its counters and histograms into files under METRICS_DIR (prometheus-client's
multiprocess mode); the web process answering a scrape adds them up, with the gauges it reads from
the database at that moment (``app.metrics.scrape``). The families themselves live in
``app.metrics.families``, beside nothing else: the places where things happen call them.

This module must stay free of prometheus_client: ``prepare`` runs before it is imported, since the
library decides at import whether a process writes files.
"""

from __future__ import annotations

import os
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # what prometheus-client reads, at import, in every process


def prepare(metrics_dir: Path) -> None:
    """Make ``metrics_dir`` this process's (and its children's) metric store: created, the files of
    processes no longer running removed, and PROMETHEUS_MULTIPROC_DIR set to it. Called by
    ``donebox web|worker|scheduler|run|smtp|imap`` before anything imports prometheus_client.

    Several commands may share the directory (a web, a worker and a scheduler on one host), so a
    start removes only the files of dead processes, never all of them, as the library's advice to
    wipe the directory would with one parent."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    forget_dead(metrics_dir)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)


def forget_dead(metrics_dir: Path, *, live_gauges_only: bool = False) -> list[int]:
    """Remove the metric files of processes that are not running; their pids.

    With ``live_gauges_only`` (a scrape) only the ``gauge_live*`` files go, as
    prometheus_client's ``mark_process_dead`` does: a dead worker's counters still count until the
    next start, and its gauges stop counting at once."""
    dead: set[int] = set()
    for path in metrics_dir.glob("*.db"):
        kind, _, pid = path.stem.rpartition("_")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if live_gauges_only and not kind.startswith("gauge_live"):
            continue
        path.unlink(missing_ok=True)
        dead.add(int(pid))
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True
