"""Moving a reply's cut: a person says where their reply ends, and its entries are made again.

Processing keeps, on each reply that made entries, the lines the extractor read, the first line it
did not keep, the rule that cut there and how sure that rule is (``process.cut_values``). The
reply's author, an admin of its team or an operator may move the cut (``who_may`` decides; another
member of the team is refused with the reason, anyone else finds nothing). ``move_cut`` then, in
the caller's transaction:

1. takes the text above the new cut (``parsers.correction``) as the reply's text, and what is below
   as what was cut, on the inbound row (a compare-and-set on ``processed``: a message being
   processed again is not changed under the worker), rule ``corrected``, confidence high;
2. splits that text as processing does (goals marked by number, answers mapped to the team's
   questions: ``process.reply_drafts``) and replaces the reply's entries through
   ``app.checkins.entries.replace_reply``, the one writer of Entry; goals it marks are closed as a
   reply closes them (a goal closed by the old text stays closed);
3. keeps the correction as a case (``ReplyCase``: the body the extractor read, the lines, the cut
   before and after, the text, who and when), which ``app.inbound.cases`` exports.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select, update
from sqlmodel import Session

from app.accounts.users import membership
from app.checkins import entries, goals
from app.checkins import questions as asked
from app.checkins.teams import options
from app.inbound.accept import text
from app.inbound.process import load_email, reply_drafts
from app.models import InboundMessage, Member, ReplyCase, Team, User
from app.settings import Settings
from parsers.correction import cut_text, kept_text, last_kept

CORRECTED = "corrected"  # the rule of a cut a person moved
MAX_NOTES = 4000


class CutError(Exception):
    """Raised when a cut cannot be seen or moved: ``status`` (403, 404, 409, 422) and the reason."""

    def __init__(self, status: int, reason: str, field: str = "end"):
        super().__init__(reason)
        self.status, self.field = status, field


def who_may(s: Session, row: InboundMessage, user: User) -> str:
    """How ``user`` may see the original of ``row`` and move its cut: ``author``, ``admin`` (of the
    author's team) or ``operator``. Raises CutError 403 for another member of the author's team, who
    knows the reply exists (its entries are on the team's pages), and 404 for anyone else."""
    if user.is_operator:
        return "operator"
    author = s.get(Member, row.member_id) if row.member_id else None
    mine = membership(s, user.email, author.team_id) if author is not None else None
    if mine is None:
        raise CutError(404, "No such inbound message.")
    if mine.id == author.id:
        return "author"
    if mine.role == "admin":
        return "admin"
    raise CutError(
        403,
        "Only the member who wrote this reply or an admin of the team sees its original and moves its cut.",
    )


def lines_of(row: InboundMessage) -> list[str]:
    """The reply's lines as the extractor read them ([] when they were not kept)."""
    try:
        lines = json.loads(row.reply_lines) if row.reply_lines else []
    except ValueError:
        return []
    return [str(line) for line in lines] if isinstance(lines, list) else []


class Cut(NamedTuple):
    """Where a reply was cut, as its entries' pages show it."""

    confidence: str  # high | low | '' (processed before cuts were kept)
    rule: str

    @property
    def guessed(self) -> bool:
        """The extractor was not sure where the reply ends."""
        return self.confidence == "low"


def cuts(s: Session, inbound_ids) -> dict[int, Cut]:
    """{inbound id: Cut} of these replies, in one query."""
    wanted = sorted({i for i in inbound_ids if i is not None})
    if not wanted:
        return {}
    t = InboundMessage.__table__
    rows = s.connection().execute(select(t.c.id, t.c.cut_confidence, t.c.cut_rule).where(t.c.id.in_(wanted)))
    return {r.id: Cut(r.cut_confidence, r.cut_rule) for r in rows}


class Moved(NamedTuple):
    """What moving a cut did."""

    before: int | None  # the first line not kept before (None: nothing was cut)
    after: int  # the first line not kept now (len(lines): nothing cut)
    deleted: int  # entries the old text had made
    made: int  # entries the new text made
    case_id: int


def _end(value, lines: list[str]) -> int:
    """The number (from 1, as pages show them) of the line a form named as the reply's last, checked."""
    try:
        end = int(str(value).strip())
    except ValueError:
        raise CutError(422, "Pick the line where your reply ends.") from None
    if not 1 <= end <= len(lines):
        raise CutError(422, f"There is no line {end} in this reply: pick one of lines 1 to {len(lines)}.")
    return end


def check(row: InboundMessage, end) -> tuple[list[str], int]:
    """(the lines, the new cut) when the reply of ``row`` may end at line ``end`` (numbered from 1: the
    new cut is before index ``end``); else CutError (409: not a processed reply whose lines were kept;
    422: no such line, no text above it, or the reply would keep the same text)."""
    if row.state != "processed":
        raise CutError(409, f"Only a processed reply's cut can be moved; this message is {row.state}.")
    lines = lines_of(row)
    if not lines:
        raise CutError(
            409,
            "This message's lines were not kept: it made no entries, or was processed before cuts were kept.",
        )
    cut_at = _end(end, lines)
    if not kept_text(lines, cut_at).strip():
        raise CutError(
            422, f"Line {cut_at} keeps no text of the reply: pick a line at or below its first words."
        )
    now_at = len(lines) if row.cut_at is None else row.cut_at
    if kept_text(lines, cut_at) == kept_text(lines, now_at):  # blank lines either side change nothing
        raise CutError(422, f"The reply already ends at line {(last_kept(lines, now_at) or 0) + 1}.")
    return lines, cut_at


def history(s: Session, inbound_id: int) -> list[tuple[ReplyCase, str]]:
    """The corrections of a reply, oldest first, with the email of who made each."""
    rows = s.execute(
        select(ReplyCase, User.email)
        .join(User, User.id == ReplyCase.by_user_id)
        .where(ReplyCase.inbound_id == inbound_id)
        .order_by(ReplyCase.id)
    ).all()
    return [(case, email) for case, email in rows]


def _input(row: InboundMessage) -> tuple[str, str]:
    """(the body the extractor read: the HTML part when the lines are the HTML's, else the text part;
    the sender's display name)."""
    email = load_email(row)
    return text((email.html if row.reply_html else email.text) or ""), text(email.from_name)[:320]


def move_cut(
    s: Session, row: InboundMessage, end, *, user: User, role: str, now: datetime, settings: Settings
) -> Moved:
    """Move the cut of ``row`` to below line ``end`` (its reply's last line, from 1), redo its entries
    and keep the case (see the module's docstring); CutError when it cannot (``check``). The caller
    commits."""
    # the row locked, and read again under the lock: two corrections (or a correction and a reprocess)
    # of one reply take turns, and the second sees what the first made (SQLite: BEGIN IMMEDIATE)
    s.refresh(row, with_for_update=True)
    lines, cut_at = check(row, end)
    author = s.get(Member, row.member_id)
    team = s.get(Team, author.team_id)
    kept = kept_text(lines, cut_at)
    drafts, notes, marked = reply_drafts(kept, asked.of(options(s, team.id)))
    said = "the author" if role == "author" else f"an {role}"
    before = row.cut_at
    was = "nothing cut" if before is None else f"it ended at line {before}, {row.cut_rule or 'no rule'}"
    note = f"cut moved by {said}: the reply ends at line {cut_at} ({was})"
    t = InboundMessage.__table__
    moved = s.connection().execute(
        update(t)
        .where(t.c.id == row.id, t.c.state == "processed")
        .values(
            reply_text=text(kept),
            quoted_text=text(cut_text(lines, cut_at)),
            signature_text="",
            cut_at=None if cut_at == len(lines) else cut_at,
            cut_rule=CORRECTED,
            cut_confidence="high",
            notes=text("\n".join(n for n in (row.notes, note, *notes) if n))[-MAX_NOTES:],
        )
    )
    if moved.rowcount != 1:
        raise CutError(409, "The message is being processed again: reload the page and try once it is done.")
    reply = entries.Reply(team.id, author.id, row.day, row.id, drafts)
    deleted, made = entries.replace_reply(s, reply, now=now, settings=settings)
    if marked:
        entries.add_notes(s, goals.apply_marks(s, [(row.id, author.id, row.day, marked)], now=now))
    body, from_name = _input(row)
    case = ReplyCase(
        inbound_id=row.id,
        team_id=team.id,
        member_id=author.id,
        by_user_id=user.id,
        by_role=role,
        kind="html" if row.reply_html else "plain",
        input=body,
        from_name=from_name,
        lines=row.reply_lines,
        cut_before=before,
        rule_before=row.cut_rule,
        confidence_before=row.cut_confidence,
        cut_at=cut_at,
        expected=text(kept),
        created_at=now,
    )
    s.add(case)
    s.flush()
    s.expire(row)  # the row was changed by the statement above
    return Moved(before, cut_at, deleted, made, case.id)
