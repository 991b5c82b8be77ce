"""Reply extraction benchmark: donebox against the reference libraries, in one run.

    python bench/replies.py [--quick] [--corpus PATH] [--cases PATH] [--project-path DIR] [--rounds N]

Scores every extractor with the shared scorer (``$DONEBOX_SHARED/tools/eval_replies.py``,
``DONEBOX_SHARED`` defaulting to ``<repo>/../shared``) on the shared corpus and prints one
``name=value`` line per figure: exact-match percentage, mean token F1, mean and median
milliseconds per message, per extractor and per source repository and language, and
``speed_ratio_vs_talon`` (talon's mean time over donebox's). Then every extractor on the
project's own cases (``tests/fixtures/replies/cases.jsonl``), overall and by ``kind`` (what
each case exercises: quote headers, unmarked quotes, reply-above markers, signatures, HTML,
forwards, a header first): ``donebox_own_*`` figures. There the reply is ``Reply.text``, a
forwarded message excluded (the shared corpus keeps it: ``extract_reply_text``).
``--project-path`` scores another checkout's ``parsers`` (a before/after comparison).
``--quick`` runs one timing round and finishes in under a minute; a full run times each
message over several rounds (the median per message) and rewrites the ``## Reply extraction``
section of BENCHMARKS.md.

The reference libraries are not project dependencies; install them to compare:

    pip install talon email-reply-parser mail-parser-reply quotequail

A missing one prints ``<name>=unavailable``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROJECT = REPO  # the checkout whose parsers are measured (--project-path)
OWN_CASES = REPO / "tests" / "fixtures" / "replies" / "cases.jsonl"
SHARED = Path(os.environ.get("DONEBOX_SHARED", REPO.parent / "shared"))
SECTION = "## Reply extraction"

from common import put_section  # noqa: E402 - bench/ is on sys.path when run as a script

# extractor name -> the scorer's adapter class name and the distribution to report the version of
LIBRARIES = {
    "talon": ("Talon", "talon"),
    "email_reply_parser": ("EmailReplyParserAdapter", "email-reply-parser"),
    "mail_parser_reply": ("MailParserReply", "mail-parser-reply"),
    "quotequail": ("Quotequail", "quotequail"),
}


def load_scorer():
    """Import the shared scorer module from its file."""
    path = SHARED / "tools" / "eval_replies.py"
    spec = importlib.util.spec_from_file_location("eval_replies", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def adapters(scorer):
    """(name, adapter or None) for every extractor, donebox last."""
    out = []
    for name, (cls, _) in LIBRARIES.items():
        adapter = getattr(scorer, cls)()
        out.append((name, adapter if adapter.available() else None))
    donebox = scorer.Project(str(PROJECT), "parsers.reply:extract_reply_text")
    out.append(("donebox", donebox if donebox.available() else None))
    return out


def measure(scorer, adapter, cases, rounds: int):
    """Score rows from the first round; per-message time is the median over ``rounds``."""
    scorer.run(adapter, cases[:5])  # warm-up: imports, compiled patterns, caches
    rows = scorer.run(adapter, cases)
    times = [[r["ms"]] for r in rows]
    for _ in range(rounds - 1):
        for t, r in zip(times, scorer.run(adapter, cases), strict=True):
            t.append(r["ms"])
    for r, t in zip(rows, times, strict=True):
        r["ms"] = statistics.median(t)
    return rows


class OwnAdapter:
    """donebox on the project's own cases: ``Reply.text``, told whether the case strips signatures."""

    def __init__(self):
        from parsers.reply import extract_reply

        self.extract = extract_reply

    def __call__(self, case):
        strip = "signature" in case.get("strips", "quotes+signature")
        return self.extract(case["input"], strip_signature=strip).text


def own_figures(name, scorer, adapter, cases, rounds: int) -> dict:
    """One extractor on the project's own cases: exact, F1 and median ms overall and per kind.
    The scorer's library adapters read the input format from ``kind``: they get ``format`` there."""
    as_scored = [{**case, "kind": case["format"]} for case in cases]
    rows = measure(scorer, adapter, as_scored, rounds)
    out = {
        f"{name}_own_cases": len(rows),
        f"{name}_own_exact_pct": round(100 * sum(r["exact"] for r in rows) / len(rows), 1),
        f"{name}_own_f1": round(sum(r["f1"] for r in rows) / len(rows), 3),
        f"{name}_own_ms_median": round(statistics.median(r["ms"] for r in rows), 3),
        f"{name}_own_errors": sum(1 for r in rows if r["error"]),
    }
    groups = collections.defaultdict(list)
    for case, row in zip(cases, rows, strict=True):
        groups[case["kind"]].append(row)
    for kind, group in sorted(groups.items()):
        slug = _slug(kind)
        out[f"{name}_own_cases_{slug}"] = len(group)
        out[f"{name}_own_exact_pct_{slug}"] = round(100 * sum(r["exact"] for r in group) / len(group), 1)
        out[f"{name}_own_f1_{slug}"] = round(sum(r["f1"] for r in group) / len(group), 3)
        out[f"{name}_own_ms_median_{slug}"] = round(statistics.median(r["ms"] for r in group), 3)
    return out


def own_table(own: dict) -> str:
    """Exact match and F1 by kind on the own cases, one row per extractor, donebox's times last."""
    d = own["donebox"]
    kinds = sorted(k.removeprefix("donebox_own_cases_") for k in d if k.startswith("donebox_own_cases_"))
    lines = [
        "On the project's own cases (`tests/fixtures/replies/cases.jsonl`, "
        f"{d['donebox_own_cases']} cases written from clients' documented formats, by kind; the reply "
        "is the new text, a forwarded message excluded): exact match, then F1. donebox's rules were "
        "written against these cases: its figures here are a regression bar, not an unseen score.",
        "",
        "| extractor | all | " + " | ".join(f"{k} ({d[f'donebox_own_cases_{k}']})" for k in kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for name, f in own.items():
        cells = [f"{f[f'{name}_own_exact_pct']}% / {f[f'{name}_own_f1']}"]
        cells += [f"{f[f'{name}_own_exact_pct_{k}']}% / {f[f'{name}_own_f1_{k}']}" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    times = " | ".join(f"{d[f'donebox_own_ms_median_{k}']}" for k in kinds)
    lines.append(f"| donebox ms/msg median | {d['donebox_own_ms_median']} | {times} |")
    return "\n".join(lines)


def _slug(key: str) -> str:
    return re.sub(r"\W+", "_", key).strip("_").lower()


def figures(name, rows, cases):
    """The name=value figures of one extractor: overall, then per source repo and language."""
    n = len(rows)
    out = {
        f"{name}_exact_pct": round(100 * sum(r["exact"] for r in rows) / n, 1),
        f"{name}_f1": round(sum(r["f1"] for r in rows) / n, 3),
        f"{name}_ms_mean": round(statistics.fmean(r["ms"] for r in rows), 3),
        f"{name}_ms_median": round(statistics.median(r["ms"] for r in rows), 3),
        f"{name}_errors": sum(1 for r in rows if r["error"]),
    }
    for field in ("repo", "lang"):
        groups = collections.defaultdict(list)
        for case, row in zip(cases, rows, strict=True):
            groups[case.get(field, "?")].append(row)
        for key, group in sorted(groups.items()):
            out[f"{name}_exact_pct_{field}_{_slug(key)}"] = round(
                100 * sum(r["exact"] for r in group) / len(group), 1
            )
    return out


def table(results, cases) -> str:
    lines = [
        "| extractor | version | exact | F1 | ms/msg mean | ms/msg median | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in results.items():
        ver = version(LIBRARIES[name][1]) if name in LIBRARIES else "this checkout"
        if f is None:
            lines.append(f"| {name} | {ver} | unavailable | | | | |")
            continue
        lines.append(
            f"| {name} | {ver} | {f[name + '_exact_pct']}% | {f[name + '_f1']} | {f[name + '_ms_mean']} "
            f"| {f[name + '_ms_median']} | {f[name + '_errors']} |"
        )
    for field, title in (("repo", "source repository"), ("lang", "language of the quote header")):
        keys = sorted({c.get(field, "?") for c in cases})
        counts = collections.Counter(c.get(field, "?") for c in cases)
        lines += ["", f"Exact match by {title}:", ""]
        lines.append("| extractor | " + " | ".join(f"{k} ({counts[k]})" for k in keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for name, f in results.items():
            if f is None:
                continue
            cells = [f"{f[f'{name}_exact_pct_{field}_{_slug(k)}']}%" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace this benchmark's section of BENCHMARKS.md up to the next heading, keeping every other
    section and the hand-written subsections ("### ...") under it."""
    put_section(SECTION, text.rstrip("\n") + "\n", keep_subsections=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one timing round, no BENCHMARKS.md update")
    ap.add_argument("--corpus", default=str(SHARED / "corpus" / "replies-dev.jsonl"))
    ap.add_argument("--cases", default=str(OWN_CASES), help="the project's own cases, scored by kind")
    ap.add_argument("--project-path", default=str(REPO), help="the checkout whose parsers are measured")
    ap.add_argument("--rounds", type=int, default=0, help="timing rounds (default 1 quick, 7 full)")
    args = ap.parse_args(argv)
    global PROJECT
    PROJECT = Path(args.project_path).resolve()
    sys.path.insert(0, str(PROJECT))
    rounds = args.rounds or (1 if args.quick else 7)
    scorer = load_scorer()
    cases = [json.loads(line) for line in open(args.corpus, encoding="utf-8") if line.strip()]
    print(f"corpus={args.corpus}")
    print(f"cases={len(cases)}")
    print(f"rounds={rounds}")
    results = {}
    for name, adapter in adapters(scorer):
        if adapter is None:
            print(f"{name}=unavailable")
            results[name] = None
            continue
        results[name] = figures(name, measure(scorer, adapter, cases, rounds), cases)
        for key, value in results[name].items():
            print(f"{key}={value}")
    if any(results[name] is None for name in LIBRARIES):
        print("install_hint=pip install talon email-reply-parser mail-parser-reply quotequail")
    own_cases = [json.loads(line) for line in open(args.cases, encoding="utf-8") if line.strip()]
    own = {}
    for name, adapter in adapters(scorer):
        if adapter is not None:
            own[name] = own_figures(
                name, scorer, OwnAdapter() if name == "donebox" else adapter, own_cases, rounds
            )
            for key, value in own[name].items():
                print(f"{key}={value}")
    talon, donebox = results.get("talon"), results.get("donebox")
    ratio = None
    if talon and donebox and donebox["donebox_ms_mean"]:
        ratio = round(talon["talon_ms_mean"] / donebox["donebox_ms_mean"], 1)
        print(f"speed_ratio_vs_talon={ratio}")
    if args.quick:
        return 0
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            SECTION,
            "",
            f"Measured {now} by `python bench/replies.py` on {len(cases)} cases of "
            f"`{Path(args.corpus).name}` (shared corpus), Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs; time per message is the median of {rounds} "
            "rounds, then the mean and median over messages, each library called through the shared "
            "scorer's adapter. Reference libraries: `pip install talon email-reply-parser "
            "mail-parser-reply quotequail`.",
            "",
            table(results, cases),
            "",
            f"donebox is {ratio}x faster than talon on the mean." if ratio else "talon was not measured.",
            "",
            own_table(own),
            "",
            "",
        ]
    )
    write_section(section)
    print("wrote=BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
