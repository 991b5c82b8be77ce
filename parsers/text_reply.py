"""Cut quoted history out of plain text, line by line.

Each line is classified first (blank, ``>`` quote, a quoted line with another
prefix or wrapped without its ``>``, "reply above this line" marker, attribution
header, header block, forward marker, text); then one pass keeps what the sender
wrote: everything after a header that is not followed by ``>`` lines is quoted
(unless nothing of the sender's is above it: then the text under it is theirs),
everything from a marker on is dropped, a forward is kept apart, while text
between or after ``>`` blocks (inline answers, bottom posting) is kept. Every cut
is recorded with its input line and the rule of ``quotes.RULES`` that made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from parsers import quotes

MAX_LINES = 5000  # lines past this many are kept as they are, never searched for quotes
MAX_WINDOW = 5  # an attribution may be wrapped over this many lines (polymail uses five)
QP_LOOK_LINES = 200  # the first lines looked through for quoted-printable bytes left undecoded

# Bidirectional marks that right-to-left clients wrap names and addresses in: invisible, so ignored.
_BIDI = dict.fromkeys([0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_QP_UTF8 = re.compile(r"=[C-F][0-9A-F]=[89AB][0-9A-F]")  # a two-byte UTF-8 sequence, QP-encoded
_QP_BYTE = re.compile(r"=([0-9A-F]{2})")
_LINK_OPEN = re.compile(r"[(<]https?://[^)>\s]*$")
_LINK_PIECE = re.compile(r"^\(?<?https?://\S*$|^\(https?://|^\S{1,80}[)>]$")


@dataclass
class Cut:
    """What the text pass decided: kept lines, quoted lines, where a forward starts, and why."""

    reply: list[str] = field(default_factory=list)
    quoted: list[str] = field(default_factory=list)
    forwarded_at: int | None = None
    notes: list[str] = field(default_factory=list)
    reply_idx: list[int] = field(default_factory=list)  # the input line each reply line came from
    cuts: list[tuple[int, str, str]] = field(default_factory=list)  # (input line, rule name, confidence)

    def keep(self, i: int, line: str) -> None:
        self.reply.append(line)
        self.reply_idx.append(i)

    def cut(self, i: int, rule: str, followed_by_quote: bool = False) -> None:
        self.cuts.append((i, rule, quotes.RULES[rule].sure(followed_by_quote)))


def _unqp(line: str) -> str:
    """A quoted-printable line decoded for matching only; a soft break "=" at the end is dropped."""
    raw = _QP_BYTE.sub(lambda m: chr(int(m.group(1), 16)), line.removesuffix("="))
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def norm_line(line: str) -> str:
    """A line as compared with our own reminder text: no quote marks, spacing or case."""
    return " ".join(line.strip(" \t>*_").split()).lower()


def is_quote_line(line: str) -> bool:
    """A ``>``-marked line; ">>> text <<<" decorations are not quotes (a wrapped "Bob <" is)."""
    s = line.lstrip()
    return s.startswith(">") and not (s.startswith(">>") and s.rstrip().endswith("<<"))


# A quoted line wrapped by a client that did not repeat the marker: the > line before it is long
# and stops mid-sentence, and the piece is short and goes on in lower case or runs into > again.
WRAP_MIN = 50  # characters of the > line's text: shorter lines were not wrapped
WRAP_MAX = 80  # characters of the unmarked piece
WRAP_WIDTH = 76  # clients wrap at 72 to 80 columns: a first word that would pass 76 did not fit
WRAP_TAIL = 40  # characters of a piece that starts in upper case
_UNFINISHED = re.compile(r"[^.!?:;)\]\"'”»…]\s*$")


def _wrapped_quote(lines: list[str], i: int, prev_quote: bool) -> bool:
    """Whether ``lines[i]`` is the wrapped rest of the ``>`` line above it."""
    line = lines[i].strip()
    if not prev_quote or not line or len(line) > WRAP_MAX or is_quote_line(lines[i]):
        return False
    if not is_quote_line(lines[i - 1]):
        return False  # an HTML quote's lines are whole blocks, never wrapped
    above = lines[i - 1].lstrip(" >")
    if len(above) < WRAP_MIN or not _UNFINISHED.search(above):
        return False
    below = lines[i + 1] if i + 1 < len(lines) else ""
    if line[0].islower() or is_quote_line(below):
        return True
    # "...before the meeting on\nThursday.": the piece's first word did not fit on the > line
    return len(line) <= WRAP_TAIL and len(lines[i - 1].rstrip()) + 1 + len(line.split()[0]) > WRAP_WIDTH


_OTHER_FIRST = frozenset(quotes.OTHER_QUOTE_PREFIXES)


def _other_quote(lines: list[str], i: int) -> bool:
    """A "| " or ": " quoted line, in a run of two or more, that is no table row."""

    def marked(j: int) -> bool:
        return (
            0 <= j < len(lines)
            and bool(quotes.OTHER_QUOTE.match(lines[j]))
            and not lines[j].rstrip().endswith("|")
        )

    return lines[i].lstrip()[:1] in _OTHER_FIRST and marked(i) and (marked(i - 1) or marked(i + 1))


def _ends_like_header(line: str) -> bool:
    """A cheap first test: the line ends with a colon, an address bracket or a "wrote" verb."""
    tail = line[-80:].rstrip(" \t-–—")
    return bool(tail) and (tail[-1] in ":：>)]" or tail.lower().endswith(quotes.WROTE_ENDINGS))


def _field_block(lines: list[str], i: int) -> int:
    """End (exclusive) of an Outlook-style header block starting at ``i``, or 0."""
    if not any(c in lines[i][:60] for c in ":："):
        return 0
    first = quotes.field_role(lines[i])
    if first is None:
        return 0  # a block starts with a field
    if first in ("from", "date") and quotes.inline_field_block(lines[i]):
        return i + 1
    roles, end, gap = {first}, i + 1, 0
    for j in range(i + 1, min(len(lines), i + 10)):
        line = lines[j]
        role = quotes.field_role(line)
        if role:
            roles.add(role)
            end, gap = j + 1, 0
        elif not line.strip() or gap:
            break
        else:
            gap = 1  # a wrapped value: "*From:* bob@x [mailto:\n  bob@x]"
    if len(roles) >= 2 and roles & {"from", "date"}:
        return end
    return 0


def _attribution(lines: list[str], i: int, ends, is_attribution=quotes.is_attribution) -> int:
    """End (exclusive) of an "On ... wrote:" header starting at line ``i``, or 0."""
    last = min(len(lines), i + MAX_WINDOW)
    if not any(ends(j) for j in range(i, last)):
        return 0
    first = lines[i]
    multi_ok = None  # whether the first line may start a wrapped header; decided when needed
    parts = []
    blank_seen = False
    for j in range(i, last):
        line = lines[j]
        if not line.strip():
            blank_seen = True
            continue
        if j > i and multi_ok is None:
            multi_ok = bool(
                quotes.START.match(first)
                or quotes.DATE_START.match(first)
                or ("@" in first and quotes.ADDRESS.search(first))
                or (len(first) <= 120 and quotes.DATE_SIGNAL.search(first))
            )
        if j > i and (not multi_ok or (is_quote_line(line) and not quotes.WROTE.match(line.lstrip("> ")))):
            break
        if j > i and quotes.START.match(line):
            break  # the header starts on this later line, not at ``i``
        parts.append(line.strip())
        # a blank line inside the window only in "<\nmailto:...\n> wrote:" (polymail)
        if ends(j) and (not blank_seen or line.lstrip().startswith(">")):
            if is_attribution(" ".join(parts)):
                return j + 1
    return 0


def _inline_attribution(line: str, is_attribution=quotes.is_attribution) -> int:
    """Offset where an attribution starts after text on the same line, or -1."""
    if (quotes.START.match(line) or quotes.DATE_START.match(line)) and is_attribution(line):
        return -1  # the whole line is one, from its first word
    for m in quotes.START_INLINE.finditer(line):
        if m.start() and is_attribution(line[m.start() :]):
            return m.start()
    return -1


class Kinds:
    """Kinds of lines, classified lazily from the top, so the pass stops reading at the first cut.

    ``kinds[i]`` is ("blank"|"quote"|"text"|"forward"|"cut", 0), ("header", end) at a header
    start, or ("split", offset) where an attribution starts after text on the same line.
    """

    def __init__(self, lines: list[str], forced: list[str | None] | None = None):
        self.n = min(len(lines), MAX_LINES)
        # matchers see at most MAX_LINE characters of a line, quoted-printable decoded when the
        # body arrived undecoded ("escribi=C3=B3:"); the lines handed back are never changed
        view = [
            cut if cut.isascii() else cut.translate(_BIDI)  # the marks are not ASCII
            for cut in (line[: quotes.MAX_LINE] for line in lines[: self.n + MAX_WINDOW])
        ]
        if any(_QP_UTF8.search(line) for line in view[:QP_LOOK_LINES]):
            view = [_unqp(line) if "=" in line else line for line in view]
        self.lines = view
        self.forced = forced
        self.kinds: list[tuple[str, int]] = []
        self.rule_at: dict[int, str] = {}  # the rule behind each "header" and "quote" line
        self._ends: dict[int, bool] = {}
        self._attributions: dict[str, bool] = {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[str, int]:
        while len(self.kinds) <= i:
            self._step()
        return self.kinds[i]

    def ends(self, j: int) -> bool:
        """Whether line ``j`` ends like an attribution: a colon, a "wrote" verb, an address."""
        if j not in self._ends:
            self._ends[j] = _ends_like_header(self.lines[j])
        return self._ends[j]

    def is_attribution(self, window: str) -> bool:
        """``quotes.is_attribution``, asked once a window: a header line is asked of twice, as a
        line that may hold one after text, then as the first line of a window."""
        found = self._attributions.get(window)
        if found is None:
            found = self._attributions[window] = quotes.is_attribution(window)
        return found

    def _step(self) -> None:
        i, lines, kinds = len(self.kinds), self.lines, self.kinds
        line = lines[i]
        hint = self.forced[i] if self.forced else None
        if hint == "cut":
            kinds.extend(("cut", 0) for _ in range(i, self.n))
        elif hint == "header":
            kinds.append(("header", i + 1))
            self.rule_at[i] = "html-quote-markup"
        elif not line.strip():
            kinds.append(("blank", 0))
        elif hint == "signature":
            kinds.append(("text", 0))  # cut, or kept, by the signature step (parsers.reply)
        elif hint == "plain-quote":
            kinds.append(("quote", 0))
            self.rule_at[i] = "html-trailing-blockquote"
        elif hint == "quote" or is_quote_line(line):
            kinds.append(("quote", 0))
            self.rule_at[i] = "html-quote-markup" if hint == "quote" else "gt-quoted"
        elif _wrapped_quote(lines, i, i > 0 and kinds[i - 1][0] == "quote") or _other_quote(lines, i):
            kinds.append(("quote", 0))
            self.rule_at[i] = "unmarked-quote"
        elif quotes.is_reply_above(line):
            kinds.append(("above", 0))
            self.rule_at[i] = "reply-above-marker"
        elif quotes.FORWARD.match(line):
            kinds.append(("forward", 0))
        elif quotes.ORIGINAL_MESSAGE.match(line):
            kinds.append(("header", i + 1))
            self.rule_at[i] = "quote-header:original-message"
        elif quotes.DASHED_WROTE.match(line):
            kinds.append(("header", i + 1))
            self.rule_at[i] = "quote-header:dashed-wrote"
        elif quotes.is_client_header(line):
            kinds.append(("header", i + 1))
            self.rule_at[i] = "quote-header:client"
        elif self.ends(i) and (at := _inline_attribution(line, self.is_attribution)) > 0:
            kinds.append(("split", at))
            self.rule_at[i] = "quote-header:on-wrote"
        else:
            block = _field_block(lines, i)
            end = block or _attribution(lines, i, self.ends, self.is_attribution)
            if end:
                kinds.append(("header", end))
                self.rule_at[i] = "quote-header:field-block" if block else "quote-header:on-wrote"
                kinds.extend(("text", 0) for _ in range(i + 1, end))
            else:
                kinds.append(("text", 0))


_CONTINUES = re.compile(r"^\s*(?:[<(\[\"']|[^\W\d_](?<=[a-zà-ÿ]))")


def _wrapped_head(out: Cut, lines: list[str], i: int) -> bool:
    """Whether the last kept line, right above the header at ``i``, is the header's first half:
    the header goes on in lower case or with the address ("<ana@x> wrote:"), and the line above
    is short and unfinished."""
    if not out.reply or out.reply_idx[-1] != i - 1 or not _CONTINUES.match(lines[i]):
        return False
    if quotes.START.match(lines[i]) or quotes.DATE_START.match(lines[i]):
        return False  # a whole header of its own ("on Mon, ..."), the line above is the sender's
    above = out.reply[-1].strip()
    return bool(above) and len(above) <= 100 and above[-1] not in ".!?:;" and not is_quote_line(above)


def _known_cut(lines: list[str], i: int, known: set[str], need: int) -> bool:
    if norm_line(lines[i]) not in known:
        return False
    hits = {norm_line(x) for x in lines[i : i + 30]} & known
    return len(hits) >= need


def _next_kind(kinds: Kinds, start: int) -> str:
    for i in range(start, len(kinds)):
        if kinds[i][0] != "blank":
            return kinds[i][0]
    return "end"


@lru_cache(maxsize=256)  # asked by each pass of a message (its cut, then its note), and by a second reply
def known_lines(known_quotes: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """Our known text's lines as compared (norm_line), and those long enough to cut at."""
    known_all = frozenset(k for k in map(norm_line, known_quotes) if k)
    return known_all, frozenset(k for k in known_all if len(k) >= 8)


def cut_quotes(lines: list[str], forced: list[str] | None = None, known_quotes: tuple[str, ...] = ()) -> Cut:
    """Split ``lines`` into the sender's lines and quoted lines; never raises on odd input."""
    out = Cut()
    kinds = Kinds(lines, forced)
    known_all, known = known_lines(known_quotes)
    need = min(2, len(known))
    in_quote = False
    i, n = 0, len(kinds)
    while i < n:
        kind, end = kinds[i]
        line = lines[i]
        if kind == "text" and not in_quote and known and _known_cut(lines, i, known, need):
            # our own reminder text: everything from here is quoted, with any attribution just above,
            # and any shorter line of ours (the greeting) that the cut point did not count
            at = i
            while out.reply and len(out.reply[-1]) < 200:
                last = out.reply[-1]
                if last.strip() and not (_ends_like_header(last) or norm_line(last) in known_all):
                    break
                out.quoted.insert(0, out.reply.pop())
                at = out.reply_idx.pop()
            while out.quoted and not out.quoted[0].strip():
                out.keep(at, out.quoted.pop(0))
                at += 1
            out.notes.append("cut at our own reminder text")
            out.cut(at, "own-reminder")
            out.quoted.extend(lines[i:])
            return _finish(out)
        rule = kinds.rule_at.get(i, "")
        if kind == "split":  # "reply On <date>, bob@x wrote:" on one line
            head = line[:end].rstrip(" -–—")
            if head.strip():
                out.keep(i, head)
            kind, line, end = "header", line[end:], i + 1
        if kind == "cut":
            out.notes.append("cut at the quoted part of the HTML")
            out.cut(i, "html-quote-markup")
            out.quoted.extend(lines[i:])
            return _finish(out)
        if kind == "above":
            out.notes.append("cut at a reply-above-this-line marker")
            out.cut(i, "reply-above-marker")
            out.quoted.extend(lines[i:])
            return _finish(out)
        if kind == "forward":
            if in_quote:
                out.quoted.append(line)
                i += 1
                continue
            out.forwarded_at = len(out.reply)
            out.notes.append("forwarded message kept")
            out.cut(i, "forward")
            for j in range(i, len(lines)):
                out.keep(j, lines[j])
            return _finish(out)
        if kind == "header" and rule == "quote-header:on-wrote" and _wrapped_head(out, lines, i):
            # the line above is the start of this header, wrapped by the client ("Ana Ruiz (ACME)\n
            # <ana@x> schrieb am ...:"): it goes with the header
            line = out.reply.pop() + " " + line
            i = out.reply_idx.pop()
        if kind == "header":
            if _next_kind(kinds, end) == "quote":
                out.notes.append("cut a quote header and its > lines")
                out.cut(i, rule, followed_by_quote=True)
                out.quoted.append(line)
                out.quoted.extend(lines[i + 1 : end])
                in_quote = True
                i = end
                continue
            if rule != "html-quote-markup" and not in_quote and not any(x.strip() for x in out.reply):
                # a header first, then unmarked text: nothing above it is the sender's, so what
                # follows is (bottom posting, a reply typed under the attribution)
                out.notes.append(f"cut the quote header {line.strip()[:60]!r} above the text")
                out.cut(i, "header-first")
                out.quoted.append(line)
                out.quoted.extend(lines[i + 1 : end])
                i = end
                continue
            out.notes.append(f"cut at quote header {line.strip()[:60]!r}")
            out.cut(i, rule)
            out.quoted.append(line)
            out.quoted.extend(lines[i + 1 :])
            return _finish(out)
        if kind == "quote":
            if not in_quote:
                out.cut(i, rule or "gt-quoted")
            in_quote = True
            out.quoted.append(line)
        elif kind == "blank":
            if in_quote:
                out.quoted.append(line)
            else:
                out.keep(i, line)
        elif in_quote and (_LINK_OPEN.search(lines[i - 1]) or _LINK_PIECE.match(line.strip())):
            out.quoted.append(line)  # a long link broke the run of > lines
        else:
            in_quote = False
            out.keep(i, line)
        i += 1
    if len(lines) > n:
        out.notes.append(f"only the first {MAX_LINES} lines were searched for quotes")
        for j in range(n, len(lines)):
            out.keep(j, lines[j])
    if out.quoted and not out.notes:
        out.notes.append("cut > quoted lines")
    return _finish(out)


def _finish(out: Cut) -> Cut:
    """Drop trailing rules and blanks that only separated the reply from the quote."""
    stop = out.forwarded_at if out.forwarded_at is not None else len(out.reply)
    head, tail = out.reply[:stop], out.reply[stop:]
    hidx, tidx = out.reply_idx[:stop], out.reply_idx[stop:]
    # rules, banners ("--- Original Message ---", "[Original Message]") and the blank lines between
    # them, right above the quote, went with it ("=====\nOriginal Message\n=====\nFrom: ...")
    while head and (
        not head[-1].strip()
        or (out.quoted and (quotes.RULE.match(head[-1]) or quotes.BANNER.match(head[-1])))
        or (out.quoted and quotes.BARE_BANNER.match(head[-1]))
    ):
        line = head.pop()
        hidx.pop()
        if line.strip() and not quotes.RULE.match(line):
            out.quoted.insert(0, line)
    lead = 0
    while lead < len(head) and not head[lead].strip():
        lead += 1
    head, hidx = head[lead:], hidx[lead:]
    if out.forwarded_at is not None:
        out.forwarded_at = len(head)
    out.reply = head + tail
    out.reply_idx = hidx + tidx
    return out
