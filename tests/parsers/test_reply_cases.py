"""Reply extraction on the project's own cases (tests/fixtures/replies) and on the shared corpus.

Every own case must come out exactly (after the shared scorer's whitespace normalization), with
a cut point that names a rule of ``parsers.quotes.RULES``; the shared corpus must stay at or
above its bar. ``bench/replies.py`` reports the same figures with their timing.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from parsers.quotes import RULES
from parsers.reply import extract_reply, extract_reply_text
from tests.conftest import need

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "replies"
CASES = [json.loads(line) for line in (FIXTURES / "cases.jsonl").read_text(encoding="utf-8").splitlines()]
KINDS = ("quote-header", "unmarked-quote", "reply-above", "signature", "html", "forward", "header-first")
# shared/ beside the checkout (as CI lays it), else the team's copy
_BESIDE = HERE.parent.parent.parent / "shared"
SHARED = Path(os.environ.get("DONEBOX_SHARED") or (_BESIDE if _BESIDE.exists() else "/work/shared"))
SHARED_BAR = 98.0  # percent exact on the shared corpus


def normalize(text: str) -> str:
    """The shared scorer's ``ws_normalized``: lines stripped, blank runs collapsed, ends trimmed."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.strip()
        if not (line == "" and out and out[-1] == ""):
            out.append(line)
    return "\n".join(out).strip()


def strips_signature(case: dict) -> bool:
    return "signature" in case["strips"]


def test_the_cases_are_what_make_cases_writes():
    spec = importlib.util.spec_from_file_location("make_cases", FIXTURES / "make_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.cases == CASES


def test_every_kind_has_its_cases():
    counts = collections.Counter(case["kind"] for case in CASES)
    assert set(counts) == set(KINDS)
    assert len(CASES) >= 150 and min(counts.values()) >= 10, counts
    assert len({case["id"] for case in CASES}) == len(CASES)
    assert all(case["source"] and case["format"] in ("plain", "html") for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['id']}-{c['kind']}-{c['lang']}" for c in CASES])
def test_every_own_case_comes_out_exactly(case):
    reply = extract_reply(case["input"], strip_signature=strips_signature(case))
    assert normalize(reply.text) == normalize(case["expected"])
    assert reply.from_html == (case["format"] == "html")
    if "forwarded" in case:
        assert reply.forwarded
        assert re.sub(r"\s+", "", reply.forwarded_text) == re.sub(r"\s+", "", case["forwarded"])
    else:
        assert not reply.forwarded_text
    # a cut names its rule and the rule's confidence; the line it points at was not kept whole
    if normalize(reply.text) != normalize("\n".join(reply.lines)):
        assert reply.cut_at is not None and 0 <= reply.cut_at < len(reply.lines)
        assert reply.rule in RULES
        assert reply.confidence in (RULES[reply.rule].confidence, RULES[reply.rule].quoted)
        assert reply.lines[reply.cut_at].strip() not in [x.strip() for x in reply.text.split("\n")]


RULED = [c for c in CASES if "rule" in c]


@pytest.mark.parametrize("case", RULED, ids=[f"{c['id']}-{c['rule']}" for c in RULED])
def test_the_first_cut_names_the_rule_and_confidence_the_case_expects(case):
    reply = extract_reply(case["input"], strip_signature=strips_signature(case))
    assert (reply.rule, reply.confidence) == (case["rule"], case["confidence"])
    if case["kind"] == "header-first":
        assert reply.cut_at == 0


def test_every_rule_the_parsers_name_is_in_the_table():
    # a rule missing from RULES would raise inside extraction, which must never raise
    named = set()
    for path in (HERE.parent.parent / "parsers").glob("*.py"):
        named |= set(
            re.findall(
                r'"((?:quote-header|signature|html|gt|unmarked|reply|own|forward|header)[\w:-]*)"',
                path.read_text(),
            )
        )
    used = {
        n
        for n in named
        if n in RULES or ":" in n or n.endswith(("-quoted", "-quote", "-marker", "-reminder"))
    }
    assert used <= set(RULES), used - set(RULES)
    assert all(
        rule.confidence in ("high", "low") and rule.quoted in ("", "high", "low") for rule in RULES.values()
    )


def _shared_scorer():
    path = SHARED / "tools" / "eval_replies.py"
    if not (path.exists() and (SHARED / "corpus" / "replies-dev.jsonl").exists()):
        need(
            "the shared reply corpus and scorer",
            f"{SHARED} has no corpus/replies-dev.jsonl (set DONEBOX_SHARED)",
        )
    spec = importlib.util.spec_from_file_location("eval_replies", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shared_corpus_stays_above_its_bar():
    scorer = _shared_scorer()
    path = SHARED / "corpus" / "replies-dev.jsonl"
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    misses = []
    for case in cases:
        strip = "signature" in case.get("strips", "quotes+signature")
        exact, _f1 = scorer.score(case, extract_reply_text(case["input"], strip_signature=strip))
        if not exact:
            misses.append(case["id"])
    percent = 100 * (len(cases) - len(misses)) / len(cases)
    assert percent >= SHARED_BAR, f"{percent:.1f}% exact, missed {misses}"
