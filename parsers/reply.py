"""The new text of an emailed reply: quotes, attributions and signatures cut away.

``extract_reply`` takes an ``InboundEmail`` (anything with ``.text`` and
``.html``), raw MIME bytes or text, HTML, or plain text, and returns a frozen
``Reply``. It is pure and lenient: no clock, network or database, and malformed
mail gives a ``Reply`` with notes, never an exception. Plain text wins over
HTML when a message has both; HTML is cut on its structure first
(``parsers.html_reply``), then both go through the same line pass
(``parsers.text_reply``) and the signature finder (``parsers.signature``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsers import limits, quotes
from parsers.html_reply import html_lines
from parsers.message import parse_mime
from parsers.signature import search_signature
from parsers.text_reply import QP_LOOK_LINES, cut_quotes, known_lines, norm_line


@dataclass(frozen=True)
class Reply:
    """What the sender wrote (``text``), what was cut (``quoted``, ``signature``) and why (``notes``).

    ``lines`` are the body's lines as the extractor read them (the plain text, or the lines
    rendered from the HTML); ``cut_at`` is the index in ``lines`` of the first line not kept in
    ``text`` (None: nothing was cut), ``rule`` the name of the rule in ``parsers.quotes.RULES``
    that cut there and ``confidence`` how sure that rule is ("high" or "low"). A forwarded
    message is kept apart in ``forwarded_text``: the reply is the new text above it.
    """

    text: str
    quoted: str = ""
    signature: str = ""
    notes: tuple[str, ...] = ()
    forwarded: bool = False
    from_html: bool = False
    empty: bool = False
    lines: tuple[str, ...] = ()
    cut_at: int | None = None
    rule: str = ""
    confidence: str = "high"
    forwarded_text: str = ""


MAX_PASSES = 4  # the text pass is repeated on its own output until nothing more is cut

_MIME_HEADER = re.compile(r"^[!-9;-~]{1,76}:")
_MIME_NAMES = {"content-type", "mime-version", "message-id", "received", "return-path", "dkim-signature"}
_HTML_TAG = re.compile(
    r"<(?:html|head|body|div|p|br|blockquote|span|table|tr|td|font|hr|a|b|i|u|ul|ol|li|meta|style|o:p"
    r"|pre|h[1-6]|img|center|section)[\s/>]",
    re.I,
)


def looks_like_mime(raw: str) -> bool:
    """Whether ``raw`` starts with an RFC 5322 header block that names MIME or transport fields."""
    head = raw[:65536].replace("\r\n", "\n").split("\n\n", 1)[0]
    names = set()
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            continue
        if not _MIME_HEADER.match(line):
            return False
        names.add(line.split(":", 1)[0].lower())
    return bool(names & _MIME_NAMES) or {"from", "subject", "date"} <= names


def looks_like_html(raw: str) -> bool:
    """Whether ``raw`` holds HTML markup rather than plain text."""
    return _HTML_TAG.search(raw[:200_000]) is not None


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _body_of(message) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(plain text, html, notes) of whatever the caller handed in."""
    if message is None:
        return None, None, ("no message",)
    if hasattr(message, "text") and hasattr(message, "html"):
        # text derived from the HTML has lost the quote structure the HTML still has
        text = None if getattr(message, "text_from_html", False) else message.text
        return text, message.html, ()
    if isinstance(message, bytes | bytearray):
        raw = bytes(message)
        if looks_like_mime(raw[:65536].decode("latin-1")):
            email = parse_mime(raw)
            return _body_of(email)[0], email.html, ("parsed as MIME",) + email.notes
        message = raw.decode("utf-8", "replace")
    if not isinstance(message, str):
        return None, None, (f"unsupported input {type(message).__name__}",)
    if looks_like_mime(message):
        email = parse_mime(message.encode("utf-8", "surrogateescape"))
        return _body_of(email)[0], email.html, ("parsed as MIME",) + email.notes
    if looks_like_html(message):
        return None, message, ()
    return message, None, ()


@dataclass
class _Pass:
    """One quote cut and signature cut over some lines, with each kept line's index in them."""

    kept: list[str]
    kept_idx: list[int]
    quoted: list[str]
    signature: list[str]
    forwarded: list[str]
    notes: tuple[str, ...]
    cuts: list[tuple[int, str, str]]
    settled: bool = True  # no signature is left in ``kept`` (the search did not stop at its cap)


def _marked_signature(own: list[str], own_idx: list[int], kinds: list[str | None]) -> int | None:
    """Where the kept lines end in lines the HTML marks as the signature, if they do."""
    at = None
    for j in range(len(own) - 1, 0, -1):  # never the first line
        kind = kinds[own_idx[j]] if own_idx[j] < len(kinds) else None
        if kind == "signature":
            at = j
        elif own[j].strip():
            break
    return at


def _one_pass(lines, kinds, known_quotes, strip_signature) -> _Pass:
    cut = cut_quotes(lines, kinds, known_quotes)
    notes = tuple(cut.notes)
    known = known_lines(known_quotes)[0]  # as cut_quotes compared them
    if known and any(norm_line(q) in known for q in cut.quoted):
        notes += ("the quote holds our own reminder text",)
    stop = len(cut.reply) if cut.forwarded_at is None else cut.forwarded_at
    own, own_idx, forwarded = cut.reply[:stop], cut.reply_idx[:stop], cut.reply[stop:]
    cuts = list(cut.cuts)
    signature: list[str] = []
    if strip_signature and kinds and (at := _marked_signature(own, own_idx, kinds)) is not None:
        # the client marked its signature in the HTML: certain, and whatever sign-off is above
        # it is looked for next
        signature = own[at:]
        cuts.append((own_idx[at], "signature:html-markup", quotes.RULES["signature:html-markup"].confidence))
        own, own_idx = own[:at], own_idx[:at]
        while own and not own[-1].strip():
            own.pop()
            own_idx.pop()
        notes += ("cut the signature the HTML marks",)
    found, settled = search_signature(own) if strip_signature else (None, True)
    if found is not None:
        at, rule = found
        signature = own[at:] + signature
        cuts.append((own_idx[at], rule, quotes.RULES[rule].confidence))
        own, own_idx = own[:at], own_idx[:at]
        while own and not own[-1].strip():
            own.pop()
            own_idx.pop()
        notes += ("cut a signature",)
    return _Pass(own, own_idx, cut.quoted, signature, forwarded, notes, cuts, settled)


def _join(lines: list[str], idx: list[int], collapse: bool) -> tuple[str, list[int]]:
    """The lines joined as text (blank runs collapsed if asked, ends trimmed), and the index of
    each of its lines."""
    out: list[str] = []
    out_idx: list[int] = []
    for line, i in zip(lines, idx, strict=True):
        if collapse and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
        out_idx.append(i)
    while out and not out[-1]:
        out.pop()
        out_idx.pop()
    lead = 0
    while lead < len(out) and not out[lead]:
        lead += 1
    return "\n".join(out[lead:]), out_idx[lead:]


def _text(lines: list[str], collapse: bool) -> str:
    return _join(lines, list(range(len(lines))), collapse)[0]


def _cut_point(lines: list[str], kept_idx: list[int], cuts: list[tuple[int, str, str]]):
    """(cut_at, rule, confidence) from the cuts of every pass: the topmost cut, moved up over the
    lines dropped with it (blank lines and the rule above a quote), then down to a non-blank line."""
    if not cuts:
        return None, "", "high"
    at, rule, confidence = min(cuts)
    kept = set(kept_idx)
    while at > 0 and at - 1 not in kept:
        at -= 1
    while at < len(lines) - 1 and not lines[at].strip() and at not in kept:
        at += 1
    return at, rule, confidence


def _stable(lines: list[str], one: _Pass) -> bool:
    """Whether a pass over the plain-text pass ``one``'s text would cut nothing more, so need not
    run: ``one`` kept a run of the input's lines whole, under nothing but blank lines, and
    cut everything after it. The same lines without those after them read as they did: every
    rule of the text pass looks back only at kept lines and looks ahead only for more evidence of
    a quote (fewer lines ahead find less), and the signature search already ended on these lines
    with no rule fitting. Not where a kept line holds an "=" (the pass reads such a line
    quoted-printable decoded when any line of the first QP_LOOK_LINES looks encoded, so
    without the lines cut it may read it otherwise), nor for a text too long for that look to
    have seen every line."""
    if len(lines) > QP_LOOK_LINES or not one.settled or not one.kept_idx:
        return False
    if any("=" in line for line in one.kept):
        return False
    first = one.kept_idx[0]
    return (
        one.kept_idx == list(range(first, first + len(one.kept_idx)))
        and not any(line.strip() for line in lines[:first])
        and all(kept == lines[i] for kept, i in zip(one.kept, one.kept_idx, strict=True))
    )


def extract_reply(message, *, strip_signature: bool = True, known_quotes: tuple[str, ...] = ()) -> Reply:
    """Extract the sender's new text from ``message``; never raises."""
    text, html, notes = _body_of(message)
    if text and len(text) > limits.MAX_TEXT_CHARS:
        # each pass below is linear, but several of them over megabytes of "> " lines add up
        text = text[: limits.MAX_TEXT_CHARS]
        notes += (f"text longer than {limits.MAX_TEXT_CHARS} characters: the rest was not read",)
    from_html = not (text and text.strip()) and bool(html and html.strip())
    if from_html:
        lines, kinds, html_notes = html_lines(html)
        notes += tuple(html_notes)
    else:
        lines, kinds = _lines(text or ""), None
    one = _one_pass(lines, kinds, known_quotes, strip_signature)
    quoted, signature, forwarded, cuts = one.quoted, one.signature, one.forwarded, one.cuts
    body, idx = _join(one.kept, one.kept_idx, from_html)
    more = one.notes
    # Cutting can bring lines together that now read as a header ("From: x" / "Sent: y" around a
    # removed quote); repeating the pass until it is stable makes extraction idempotent.
    repeat = bool(quoted or signature or forwarded)
    if repeat and not from_html and _stable(lines, one):
        repeat = False  # the pass would give the same text back
    for _ in range(MAX_PASSES if repeat else 0):
        again_lines = _lines(body)
        again = _one_pass(again_lines, None, known_quotes, strip_signature)
        again_body, again_idx = _join(again.kept, again.kept_idx, from_html)
        if again_body == body:
            break
        notes += more
        # the second pass's line j is the body's line j, which came from input line idx[j]
        same = len(again_lines) == len(idx)
        cuts += [(idx[j], r, c) for j, r, c in again.cuts if same and j < len(idx)]
        quoted, signature = quoted + again.quoted, again.signature + signature
        forwarded = again.forwarded or forwarded
        more = again.notes
        body, idx = again_body, [idx[j] for j in again_idx] if same else idx
    notes += more
    cut_at, rule, confidence = _cut_point(lines, idx, cuts)
    return Reply(
        text=body,
        quoted=_text(quoted, True),
        signature=_text(signature, True),
        notes=notes,
        forwarded=bool(forwarded),
        from_html=from_html,
        empty=not body.strip(),
        lines=tuple(lines),
        cut_at=cut_at,
        rule=rule,
        confidence=confidence,
        forwarded_text=_text(forwarded, True),
    )


def extract_reply_text(raw: str, strip_signature: bool = True, with_forwarded: bool = True) -> str:
    """The sender's new text from plain text, HTML or a whole raw MIME message.

    A forwarded message is not quoted history: it follows the new text here (the convention of
    the shared reply corpus and of talon), unless ``with_forwarded`` is false. ``Reply.text``
    alone is the new text above it.
    """
    reply = extract_reply(raw, strip_signature=strip_signature)
    if with_forwarded and reply.forwarded_text:
        return (reply.text + "\n\n" + reply.forwarded_text).strip("\n")
    return reply.text
