"""Entry search: full-text (SQLite FTS5 / PostgreSQL GIN tsvector) against a LIKE scan, same data, same run.

    .venv/bin/python bench/web_search.py [--quick]

Seeds a scratch database (migrated like production) with N entries, then times
``app.checkins.entries.search`` for a rare word and the reference ``text LIKE '%word%'``
query. Prints one name=value line per figure; a full run writes the
"## Web: entry search" section of BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import put_section  # noqa: E402 - bench/ is on sys.path when run as a script

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
WORDS = "shipped reviewed fixed wrote paired planned migrated deployed tested refactored".split()


def seed(engine, n: int) -> None:
    from sqlalchemy import text

    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO team (name, timezone, reminder_time, digest_time, workdays) "
                "VALUES ('bench', 'UTC', '17:00', '08:00', '12345')"
            )
        )
        c.execute(
            text(
                "INSERT INTO member (team_id, email, name, role, active) "
                "VALUES (1, 'a@b.c', 'a', 'member', true)"
            )
        )
        rows = [
            {
                "t": f"{WORDS[i % 10]} the thing number {i} for {WORDS[(i * 7) % 10]} #tag{i % 50} w{i}x",
                "d": date(2026, 1, 1),
            }
            for i in range(n)
        ]
        c.execute(
            text(
                "INSERT INTO entry (team_id, member_id, day, text, kind, tags, mentions) "
                "VALUES (1, 1, :d, :t, 'done', '', '')"
            ),
            rows,
        )
        if engine.dialect.name == "postgresql":
            c.execute(text("ANALYZE entry"))


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def measure(url: str, n: int, repeat: int) -> dict:
    from sqlalchemy import select
    from sqlmodel import Session

    from app.checkins import entries
    from app.db import make_engine
    from app.migrate import upgrade
    from app.models import Entry

    upgrade(url)
    engine = make_engine(url)
    seed(engine, n)
    word = f"w{n // 2}x"
    with Session(engine) as s:
        assert len(entries.search(s, 1, word)) == 1
        fts = timed(lambda: entries.search(s, 1, word), repeat)
        like = timed(
            lambda: list(
                s.execute(select(Entry).where(Entry.team_id == 1, Entry.text.like(f"%{word}%"))).scalars()
            ),
            repeat,
        )
    engine.dispose()
    return {"fts_ms": fts, "like_ms": like}


def main() -> int:
    quick = "--quick" in sys.argv
    n, repeat = (20_000, 15) if quick else (200_000, 40)
    os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="donebox-bench-"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", n, repeat)
    try:
        import psycopg

        name = f"donebox_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        try:
            results["postgresql"] = measure(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, n, repeat)
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as e:  # noqa: BLE001 - the SQLite figures still stand
        print(f"# postgresql skipped: {type(e).__name__}: {e}", file=sys.stderr)
    load = os.getloadavg()[0]
    print(f"entries={n}")
    for db, r in results.items():
        print(f"search_{db}_fts_ms={r['fts_ms']:.2f}")
        print(f"search_{db}_like_ms={r['like_ms']:.2f}")
        print(f"search_{db}_speedup={r['like_ms'] / r['fts_ms']:.1f}")
    print(f"loadavg={load:.2f}")
    if not quick:
        write_section(n, results, load)
    return 0


def write_section(n: int, results: dict, load: float) -> None:
    import platform
    import sqlite3

    import sqlalchemy

    lines = [
        "## Web: entry search",
        "",
        f"Median latency of one search for a rare word over {n:,} entries "
        f"(`bench/web_search.py`, {date.today().isoformat()}, loadavg {load:.2f}, 2 cores shared).",
        "",
        "| database | full-text (ms) | LIKE scan (ms) | speedup |",
        "|---|---|---|---|",
    ]
    for db, r in results.items():
        lines.append(f"| {db} | {r['fts_ms']:.2f} | {r['like_ms']:.2f} | {r['like_ms'] / r['fts_ms']:.1f}x |")
    lines += [
        "",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}.",
        "",
    ]
    put_section("## Web: entry search", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
