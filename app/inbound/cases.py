"""The cuts people moved, as cases of reply extraction: ``donebox replies export-cases`` writes them in
the shared corpus's JSONL format (one object a line: id, source, repo, lang, kind, input, expected,
strips, assertion, match, expected_format, notes), so an operator can give real cases back.

Only the latest correction of each reply is written (a later one says the earlier was wrong). What
identifies people is masked (``Masker``), the same way in a case's input and its expected text:

- every email address becomes ``user1@example.com``, ``user2@example.com``... (one address, one
  placeholder within a case; reply and unsubscribe addresses with their tokens go the same way);
- the team's name becomes ``Team1``; the names of its members, the sender's display name and the
  capitalised words before an address (``Ada Lovelace <ada@...> wrote:``) become ``Member1``,
  ``Member2``..., each whole name and each of its words;
- @mentions become ``@member1``...; links to this instance (BASE_URL) ``https://donebox.example/link``.

Masking is a net, not a proof: a phone number in a signature, a name split by HTML tags or a name
no one on the team carries stays. The operator reads the file before sharing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TextIO

from sqlalchemy import select
from sqlmodel import Session

from app.models import Member, ReplyCase, Team

EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
MENTION = re.compile(r"(?<![\w@])@([\w][\w.-]*\w|\w)")
# up to four capitalised words just before <address>: a From or a quote's attribution line
NAME_BEFORE = re.compile(
    r"((?:[A-Z\u00C0-\u024F][\w'\u2019.-]*[ \t]+){1,4})(?=\"?[ \t]*(?:<|&lt;)[^<>\s@&]+@)"
)
QUOTED_NAME = re.compile(r"\"([^\"<>\n@]{1,80})\"[ \t]*(?:<|&lt;)[^<>\s@&]+@")
WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")
INSTANCE = "https://donebox.example/link"


class Masker:
    """Replaces addresses, names, mentions and this instance's links in the texts of one case, the same
    thing by the same placeholder in each text it masks."""

    def __init__(self, names: Iterable[str], base_url: str = "", teams: Iterable[str] = ()):
        self.names: set[str] = {n.strip() for n in names if n and n.strip()}
        self.teams = sorted({t.strip() for t in teams if t and t.strip()}, key=len, reverse=True)
        self.base_url = base_url.rstrip("/")
        self.emails: dict[str, str] = {}
        self.people: dict[str, str] = {}
        self.handles: dict[str, str] = {}

    def _email(self, m: re.Match) -> str:
        key = m.group(0).lower()
        if key not in self.emails:
            self.emails[key] = f"user{len(self.emails) + 1}@example.com"
        return self.emails[key]

    def _person(self, name: str) -> str:
        key = name.lower()
        if key not in self.people:
            self.people[key] = f"Member{len(self.people) + 1}"
        return self.people[key]

    def _handle(self, m: re.Match) -> str:
        key = m.group(1).lower()
        if key not in self.handles:
            self.handles[key] = f"member{len(self.handles) + 1}"
        return "@" + self.handles[key]

    def learn(self, value: str) -> None:
        """Take the names ``value`` shows beside addresses as names to mask too."""
        self.names.update(m.group(1).strip() for m in NAME_BEFORE.finditer(value))
        self.names.update(m.group(1).strip() for m in QUOTED_NAME.finditer(value))

    def _name_pattern(self) -> re.Pattern | None:
        whole = {n for n in self.names if WORD.search(n)}
        words = {w for n in whole for w in WORD.findall(n) if len(w) > 1}
        # whole names first, then their words; a word as written, capitalised or lower-case
        forms = sorted(
            whole | {f for w in words for f in (w, w.capitalize(), w.lower())}, key=len, reverse=True
        )
        if not forms:
            return None
        return re.compile(r"(?<![\w@])(?:" + "|".join(re.escape(f) for f in forms) + r")(?![\w@])")

    def mask(self, value: str) -> str:
        """``value`` with its addresses, names, mentions and links to this instance replaced."""
        if self.base_url:
            value = re.sub(re.escape(self.base_url) + r"[^\s\"'<>)\]]*", INSTANCE, value)
        value = EMAIL.sub(self._email, value)
        value = MENTION.sub(self._handle, value)
        for n, team in enumerate(self.teams, 1):
            value = re.sub(r"(?<!\w)" + re.escape(team) + r"(?!\w)", f"Team{n}", value, flags=re.I)
        pattern = self._name_pattern()
        if pattern is not None:
            value = pattern.sub(lambda m: self._person(_whole_name(m.group(0), self.names)), value)
        return value


def _whole_name(found: str, names: set[str]) -> str:
    """The name ``found`` belongs to (a word of a longer name counts as that name)."""
    low = found.lower()
    for name in sorted(names, key=len):
        if low == name.lower() or low in (w.lower() for w in WORD.findall(name)):
            return name
    return found


def _latest(s: Session, team_id: int | None) -> list[tuple[ReplyCase, ReplyCase]]:
    """(first, latest) correction of each reply, in the order of their latest: the first says where
    the extractor had cut, the latest what the reply is."""
    stmt = select(ReplyCase).order_by(ReplyCase.id)
    if team_id is not None:
        stmt = stmt.where(ReplyCase.team_id == team_id)
    first: dict[int, ReplyCase] = {}
    latest: dict[int, ReplyCase] = {}
    for case in s.execute(stmt).scalars():
        first.setdefault(case.inbound_id, case)
        latest[case.inbound_id] = case
    return sorted(((first[i], c) for i, c in latest.items()), key=lambda pair: pair[1].id)


def _note(first: ReplyCase, case: ReplyCase) -> str:
    who = {"author": "the reply's author", "admin": "a team admin"}.get(case.by_role, "an operator")
    before = (
        "kept every line"
        if first.cut_before is None
        else f"ended the reply at line {first.cut_before} (rule {first.rule_before or 'unnamed'}, "
        f"confidence {first.confidence_before or 'not recorded'})"
    )
    said = f"{who} said it ends at line {case.cut_at}"
    return f"donebox's extractor {before}; {said}. Masked: addresses, names, links."


def as_corpus(
    case: ReplyCase, names: Iterable[str], base_url: str = "", first: ReplyCase | None = None, team: str = ""
) -> dict:
    """One case in the corpus's format, masked (see the module's docstring): ``names`` of the team's
    members, its name ``team``; ``first``: the reply's first correction, which says where the
    extractor had cut (``case`` itself by default)."""
    masker = Masker([*names, case.from_name], base_url, teams=[team])
    masker.learn(case.input)
    return {
        "id": f"local-{case.id:04d}",
        "source": f"donebox:replycase/{case.id}",
        "repo": "local",
        "lang": "und",  # not guessed: the corpus's heuristic names the quote header's language
        "kind": case.kind,
        "input": masker.mask(case.input),
        "expected": masker.mask(case.expected),
        "strips": "quotes+signature",  # donebox cuts signatures too: the person's text has none
        "assertion": f"corrected_by_{case.by_role}",
        "match": "ws_normalized",
        "expected_format": "text",
        "notes": _note(first or case, case),
    }


def export(s: Session, out: TextIO, *, base_url: str = "", team_id: int | None = None) -> int:
    """Write the latest correction of each reply (of ``team_id``'s, or every team's) to ``out``, one
    masked JSON object a line; how many."""
    cases = _latest(s, team_id)
    teams = {c.team_id for _, c in cases}
    names: dict[int, list[str]] = {t: [] for t in teams}
    team_names: dict[int, str] = {}
    if teams:
        for team_id_, name in s.execute(select(Member.team_id, Member.name).where(Member.team_id.in_(teams))):
            names[team_id_].append(name)
        team_names = dict(s.execute(select(Team.id, Team.name).where(Team.id.in_(teams))).all())
    for first, case in cases:
        row = as_corpus(case, names[case.team_id], base_url, first, team_names.get(case.team_id, ""))
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(cases)
