"""Authentication-Results (RFC 8601) and Received-SPF (RFC 7208 section 9.1) header fields.

Pure and lenient: a header that does not follow the grammar gives what could be read and a
note, never an exception. Comments ``(...)`` (nested, with ``\\`` escapes) and quoted strings
are understood. Sizes are bounded: ``MAX_HEADER_CHARS``, ``MAX_TOKENS`` and ``MAX_RESULTS`` per
field; ``MAX_HEADERS`` fields of each kind and ``MAX_TOTAL_CHARS`` per message. Scanning is done
by regular expressions, linear in what is read. Which of these headers to believe is not decided
here: that is app/inbound/authentication.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADER_CHARS = 16_384  # a field longer than this is read up to here
MAX_RESULTS = 64  # method results read from one Authentication-Results field
MAX_HEADERS = 50  # Authentication-Results (and Received-SPF) fields read from one message
MAX_TOKENS = 2000  # tokens read from one field (64 results of a dozen tokens fit well)
MAX_TOTAL_CHARS = 65_536  # characters of such fields read from one message, all fields together
_TOKEN = re.compile(
    r'(?P<space>\s+)|(?P<semi>;)|(?P<eq>=)|"(?P<quoted>(?:[^"\\]|\\.)*)(?P<closed>"?)'
    r'|(?P<open>\()|(?P<close>\))|(?P<word>[^\s;="()]+)',
    re.DOTALL,
)
_COMMENT = re.compile(r"\\.|[()]", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class MethodResult:
    """One ``method=result`` statement with its reason and properties (``header.d`` -> value)."""

    method: str  # lower-case: spf, dkim, dmarc, arc, auth, iprev, ...
    result: str  # lower-case: pass, fail, softfail, neutral, none, temperror, permerror, policy
    version: str = ""
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()  # ("smtp.mailfrom", "a@example.com"), names lower-case

    def prop(self, name: str) -> str:
        """The first property called ``name`` (e.g. ``header.d``), or ''."""
        return next((v for k, v in self.properties if k == name), "")


@dataclass(frozen=True)
class AuthResults:
    """One Authentication-Results field: who wrote it (``authserv_id``) and what it found."""

    authserv_id: str  # lower-case
    results: tuple[MethodResult, ...] = ()
    version: str = ""
    notes: tuple[str, ...] = ()


def domain_of(value: str) -> str:
    """The domain of an address, ``@domain`` or bare domain, lower-case, without a trailing dot."""
    value = value.strip().strip("<>").strip()
    return value.rsplit("@", 1)[-1].strip().rstrip(".").lower()


def _comment_end(value: str, start: int, notes: list[str]) -> int:
    """The index just past the comment opening at ``start`` (nested, ``\\`` escapes), or the end."""
    depth = 1
    for m in _COMMENT.finditer(value, start + 1):
        if m.group() == "(":
            depth += 1
        elif m.group() == ")":
            depth -= 1
            if not depth:
                return m.end()
    notes.append("unclosed comment")
    return len(value)


def _lex(value: str, notes: list[str]) -> list[tuple[str, str]]:
    """Tokens of a header value: ("word"|"quoted", text), (";", ";") and ("=", "="); comments dropped.
    At most MAX_TOKENS; the scanning itself is regular expressions, linear in the (cut) value."""
    if len(value) > MAX_HEADER_CHARS:
        notes.append(f"header longer than {MAX_HEADER_CHARS} characters: the rest was not read")
        value = value[:MAX_HEADER_CHARS]
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        if len(tokens) >= MAX_TOKENS:
            notes.append(f"more than {MAX_TOKENS} tokens: the rest was not read")
            break
        m = _TOKEN.match(value, i)
        kind = m.lastgroup
        if kind == "open":
            i = _comment_end(value, i, notes)
            continue
        i = m.end()
        if m.group("quoted") is not None:  # lastgroup is "closed" here
            if not m.group("closed"):
                notes.append("unclosed quoted string")
            tokens.append(("quoted", _ESCAPE.sub(r"\1", m.group("quoted"))))
        elif kind in ("word", "semi", "eq"):
            tokens.append(("word" if kind == "word" else m.group(), m.group()))
        elif kind == "close":
            notes.append("stray ')'")
    return tokens


def _segments(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if token[0] == ";":
            out.append([])
        else:
            out[-1].append(token)
    return out


def _pairs(tokens: list[tuple[str, str]], notes: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The lone words and the ``name=value`` pairs of a run of tokens, in order."""
    words: list[str] = []
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "word" and i + 1 < len(tokens) and tokens[i + 1][0] == "=":
            has_value = i + 2 < len(tokens) and tokens[i + 2][0] in ("word", "quoted")
            pairs.append((text.lower(), tokens[i + 2][1] if has_value else ""))
            i += 3 if has_value else 2
            continue
        if kind in ("word", "quoted"):
            words.append(text)
        else:
            notes.append(f"unexpected {text!r}")
        i += 1
    return words, pairs


def _method(tokens: list[tuple[str, str]], notes: list[str]) -> MethodResult | None:
    words, pairs = _pairs(tokens, notes)
    if not pairs:
        if words:
            notes.append(f"no result for {words[0][:40]!r}")
        return None
    (method, result), rest = pairs[0], pairs[1:]
    if words:
        notes.append(f"unexpected words {' '.join(words)[:80]!r}")
    method, _, version = method.partition("/")
    reason = next((v for k, v in rest if k == "reason"), "")
    props = tuple((k, v) for k, v in rest if k != "reason" and "." in k)
    return MethodResult(method.strip(), result.lower(), version.strip(), reason, props)


def parse_authentication_results(value: str) -> AuthResults | None:
    """An Authentication-Results value read as far as it follows RFC 8601; None without an authserv-id."""
    notes: list[str] = []
    segments = _segments(_lex(value or "", notes))
    head = [text for kind, text in segments[0] if kind in ("word", "quoted")]
    if not head or any(kind == "=" for kind, _ in segments[0]):
        return None
    version = head[1] if len(head) > 1 and head[1].isdigit() else ""
    results: list[MethodResult] = []
    for segment in segments[1:]:
        if [t for _, t in segment] == ["none"] or not segment:
            continue
        if len(results) >= MAX_RESULTS:
            notes.append(f"more than {MAX_RESULTS} results: the rest were not read")
            break
        found = _method(segment, notes)
        if found is not None:
            results.append(found)
    return AuthResults(head[0].lower(), tuple(results), version, tuple(notes[:10]))


def parse_received_spf(value: str) -> MethodResult | None:
    """A Received-SPF value as an ``spf`` result whose properties are its key-value pairs
    (``receiver``, ``envelope-from``, ``client-ip``...); None when it has no result word."""
    notes: list[str] = []
    segments = _segments(_lex(value or "", notes))
    words, first = _pairs(segments[0], notes)
    if not words:
        return None
    pairs = list(first)
    for segment in segments[1:]:
        pairs += _pairs(segment, notes)[1]
    return MethodResult("spf", words[0].lower(), properties=tuple(pairs[:MAX_RESULTS]))


def authentication_headers(headers) -> tuple[list[AuthResults], list[MethodResult], list[str]]:
    """Every readable Authentication-Results field and Received-SPF field of (name, value) pairs,
    top first, at most ``MAX_HEADERS`` of each; plus notes on what was not read."""
    results: list[AuthResults] = []
    spf: list[MethodResult] = []
    notes: list[str] = []
    counts = {"authentication-results": 0, "received-spf": 0}
    budget = MAX_TOTAL_CHARS
    for name, value in headers:
        low = str(name).strip().lower()
        if low not in counts:
            continue
        counts[low] += 1
        if counts[low] > MAX_HEADERS:
            continue
        if budget <= 0:
            notes.append(f"more than {MAX_TOTAL_CHARS} characters of such headers: the rest were not read")
            break
        value = str(value)[: min(budget, MAX_HEADER_CHARS)]
        budget -= max(len(value), 1)
        if low == "authentication-results":
            found = parse_authentication_results(value)
            if found is None:
                notes.append("an Authentication-Results header without an authserv-id was ignored")
            else:
                results.append(found)
        else:
            received = parse_received_spf(value)
            if received is not None:
                spf.append(received)
    for low, count in counts.items():
        if count > MAX_HEADERS:
            notes.append(f"more than {MAX_HEADERS} {low} headers: the rest were not read")
    return results, spf, notes
