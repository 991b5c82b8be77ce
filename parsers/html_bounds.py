"""A linear pre-pass that keeps hostile HTML cheap for lexbor to parse.

lexbor's tree building (like every HTML5 tree builder) looks down the stack of
open elements for many tags, so 50,000 nested ``<div>``s cost 50,000^2 steps;
it also re-opens every "active" formatting element after each misnested close,
and re-checks all attributes of a tag and all options of a select. This pass
reads the markup once with a cheap model of that stack (O(1) amortized per
tag: names, the positions of scope markers and special elements, and a count
of formatting elements waiting to be re-opened) and, past a budget in
``parsers.limits``, drops the excess tags (their text stays), trims attribute
lists, strips the tags past the node budget and cuts an over-long body. Each
kind of cut is noted once. Markup within every budget comes back unchanged.

The model over-counts rather than under-counts: whatever it misses (implied
``tbody``, Noah's-ark dedup, foreign content) only makes it drop sooner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsers import limits

# A comment (to its end or the end of input), a bogus comment or doctype, or a tag: each match consumes
# what it reads, so one scan is linear whatever is unterminated.
_TOKEN = re.compile(
    r"""<(?:!--(?:-?>|.*?(?:--!?>|\Z))|[!?][^>]*+>?|/(?![A-Za-z])[^>]*+>?"""
    r"""|(/?)([A-Za-z][^\t\n\f\r />]*+)((?:[^>"'=]++|=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+')?+|["'])*+)>?)""",
    re.S,
)
_ATTR = re.compile(
    r"""[^\t\n\f\r />=][^\t\n\f\r />=]*+"""
    r"""(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >]*+))?+"""
)
# Tags past the node budget: removed, their text kept (a "<" that starts no tag stays text).
_STRIP = re.compile(r"<(?:!--.*?(?:--!?>|\Z)|[/!?]?[A-Za-z][^<>]*+>?|[!?/][^<>]*+>?)", re.S)

VOID = frozenset(
    "area base br col embed hr img input keygen link meta param source track wbr basefont bgsound frame"
    " image".split()
)
# Start and end tags the tree builder merges into the one html/head/body it has: no depth.
IGNORED = frozenset(("html", "head", "body", "frameset"))
FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
# Scope markers: a look down the stack for "X in scope" stops at them.
MARKERS = frozenset("applet caption html table td th marquee object template".split())
SPECIAL = MARKERS | frozenset(
    """address article aside blockquote body button center colgroup dd details dialog dir div dl dt fieldset
    figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup iframe li listing main menu nav noembed
    noframes noscript ol p plaintext pre script search section select style summary tbody textarea tfoot
    thead title tr ul xmp""".split()
)
CLOSES_P = frozenset(
    """address article aside blockquote center details dialog dir div dl fieldset figcaption figure footer
    header hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 h6 pre listing form plaintext
    table hr xmp""".split()
)
TABLE_PARTS = frozenset("caption col colgroup tbody td tfoot th thead tr".split())
OPTIONS = frozenset(("select", "option", "optgroup", "datalist"))
# Where the look down the stack for an open li (dd, dt) stops: a special element, except these.
_STOP_LI = SPECIAL - {"address", "div", "p", "li"}
_STOP_DD = SPECIAL - {"address", "div", "p", "dd", "dt"}
_AFE = "#afe"  # a bundle of re-opened formatting elements, weighted by how many


@dataclass(frozen=True)
class BoundedHTML:
    """The markup to parse, what was cut and why, and what the pass counted."""

    html: str
    notes: tuple[str, ...] = ()
    tags: int = 0  # tags the model read (the work done, apart from one regex scan)
    nodes: int = 0  # elements the tree builder will create, as the model counts them
    max_depth: int = 0  # the deepest open-element stack the model saw


class _Stack:
    """The model of lexbor's open elements: names with weights, O(1) scope questions."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int]] = []
        self.at: dict[str, list[int]] = {}
        self.markers: list[tuple[int, int]] = []  # (position, pending when it opened)
        self.specials: list[int] = []
        self.stop_li: list[int] = []
        self.stop_dd: list[int] = []
        self.pending = 0  # formatting elements closed implicitly, re-opened at the next text
        self.depth = 0  # weights on the stack plus pending
        self.nodes = 0
        self.max_depth = 0

    def last(self, name: str) -> int:
        pos = self.at.get(name)
        return pos[-1] if pos else -1

    def last_marker(self) -> int:
        return self.markers[-1][0] if self.markers else -1

    @staticmethod
    def top(positions: list[int]) -> int:
        return positions[-1] if positions else -1

    def push(self, name: str, weight: int = 1) -> None:
        pos = len(self.items)
        self.items.append((name, weight))
        self.at.setdefault(name, []).append(pos)
        if name in MARKERS:
            self.markers.append((pos, self.pending))
        for names, positions in (
            (SPECIAL, self.specials),
            (_STOP_LI, self.stop_li),
            (_STOP_DD, self.stop_dd),
        ):
            if name in names:
                positions.append(pos)
        self.depth += weight
        self.nodes += weight
        self.max_depth = max(self.max_depth, self.depth)

    def pop_to(self, pos: int, explicit: bool) -> None:
        """Pop down to and including ``pos``; formatting elements popped on the way wait to re-open."""
        while len(self.items) > pos:
            top = len(self.items) - 1
            name, weight = self.items.pop()
            self.at[name].pop()
            for positions in (self.specials, self.stop_li, self.stop_dd):
                if positions and positions[-1] == top:
                    positions.pop()
            if self.markers and self.markers[-1][0] == top:
                _, before = self.markers.pop()
                if self.pending > before:  # the marker's close clears what was opened inside it
                    self.depth -= self.pending - before
                    self.pending = before
            if (name in FORMATTING or name == _AFE) and not (explicit and top == pos):
                self.pending += weight
            else:
                self.depth -= weight

    def reopen(self) -> None:
        if self.pending:
            weight, self.pending = self.pending, 0
            self.depth -= weight
            self.push(_AFE, weight)

    def close_reopened(self) -> None:
        """An end tag for a formatting element that is waiting to re-open, or was re-opened in a bundle."""
        bundle = self.last(_AFE)
        if self.pending:
            self.pending -= 1
            self.depth -= 1
        elif bundle > self.top(self.specials) and self.items[bundle][1] > 0:
            self.items[bundle] = (_AFE, self.items[bundle][1] - 1)
            self.depth -= 1

    def close_p(self) -> None:
        p = self.last("p")
        if p > max(self.last_marker(), self.last("button")):
            self.pop_to(p, explicit=False)


def _start(stack: _Stack, name: str) -> bool:
    """Model a start tag; False when it must be dropped (over the depth budget)."""
    if name in IGNORED:
        return True
    if name in CLOSES_P:
        stack.close_p()
    current = stack.items[-1][0] if stack.items else ""
    if name == "li":
        li = stack.last("li")
        if li > stack.top(stack.stop_li):
            stack.pop_to(li, explicit=False)
    elif name in ("dd", "dt"):
        dd = max(stack.last("dd"), stack.last("dt"))
        if dd > stack.top(stack.stop_dd):
            stack.pop_to(dd, explicit=False)
    elif name in TABLE_PARTS and stack.last("table") < 0:
        return True  # ignored outside a table
    elif name in ("td", "th", "tr"):
        cell = max(stack.last("td"), stack.last("th"), stack.last("tr") if name == "tr" else -1)
        if cell > stack.last("table"):
            stack.pop_to(cell, explicit=False)
    elif name in ("option", "optgroup") and current in ("option", name):
        stack.pop_to(len(stack.items) - 1, explicit=False)
    if name not in SPECIAL:
        stack.reopen()
    if name in VOID:
        stack.nodes += 1
        return True
    if stack.depth >= limits.MAX_HTML_DEPTH:
        return False
    stack.push(name)
    return True


def _end(stack: _Stack, name: str) -> None:
    if name in IGNORED or name in VOID or (name in TABLE_PARTS and stack.last("table") < 0):
        return
    if name == "p":
        stack.close_p()
        return
    pos = stack.last(name)
    if pos < 0:
        if name in FORMATTING:
            stack.close_reopened()
        return
    if name == "li" and pos < max(stack.last("ul"), stack.last("ol")):
        return  # not in list-item scope
    if name == "table" or name in TABLE_PARTS:
        if pos >= stack.last("table"):  # table scope: only a table (or template) stops the look
            stack.pop_to(pos, explicit=True)
    elif name in SPECIAL:
        if pos >= stack.last_marker():
            stack.pop_to(pos, explicit=True)
    elif pos > stack.top(stack.specials):
        stack.pop_to(pos, explicit=True)


def _trim_attributes(name: str, closing: str, attrs: str) -> str | None:
    """The tag with its first MAX_HTML_ATTRIBUTES attributes, or None when it has no more than that."""
    found = _ATTR.findall(attrs, 0, len(attrs))
    if len(found) <= limits.MAX_HTML_ATTRIBUTES:
        return None
    return f"<{closing}{name} {' '.join(found[: limits.MAX_HTML_ATTRIBUTES])}>"


def bound_html(html: str) -> BoundedHTML:
    """``html`` cut to the budgets of ``parsers.limits``, with a note per kind of cut; linear time."""
    notes: list[str] = []
    if len(html) > limits.MAX_HTML_CHARS:
        html = html[: limits.MAX_HTML_CHARS]
        notes.append(f"HTML longer than {limits.MAX_HTML_CHARS} characters: the rest was cut")
    stack = _Stack()
    out: list[str] = []
    copied = 0  # html[:copied] is in ``out``
    dropped: dict[str, int] = {}
    options = tags = 0
    flat = wide = many = False
    pos = 0  # end of the last token
    for t in _TOKEN.finditer(html):
        start = t.start()
        if start > pos:
            stack.reopen()  # text re-opens formatting elements
        pos = t.end()
        raw_name = t.group(2)
        if raw_name is None:
            continue  # a comment, doctype or bogus comment
        tags += 1
        if tags > limits.MAX_HTML_NODES or stack.nodes >= limits.MAX_HTML_NODES:
            out.append(html[copied:start])
            out.append(_STRIP.sub("", html[start:]))
            copied = len(html)
            many = True
            break
        closing, name = t.group(1), raw_name.lower()
        keep = True
        if name in OPTIONS:
            options += 1
            keep = options <= limits.MAX_HTML_OPTIONS
        if keep and closing:
            if dropped.get(name):
                dropped[name] -= 1
                keep = False
            else:
                _end(stack, name)
        elif keep:
            keep = _start(stack, name)
            if not keep:
                dropped[name] = dropped.get(name, 0) + 1
                flat = True
        replacement = None
        if keep and pos - start > 512:
            replacement = _trim_attributes(name, closing, t.group(3))
            wide = wide or replacement is not None
        if not keep or replacement is not None:
            out.append(html[copied:start])
            if replacement is not None:
                out.append(replacement)
            copied = pos
    if flat:
        notes.append(
            f"HTML nested deeper than {limits.MAX_HTML_DEPTH} elements: the deeper tags were dropped"
        )
    if options > limits.MAX_HTML_OPTIONS:
        notes.append(f"more than {limits.MAX_HTML_OPTIONS} form option tags: the rest were dropped")
    if wide:
        notes.append(f"a tag with more than {limits.MAX_HTML_ATTRIBUTES} attributes: the rest were dropped")
    if many:
        notes.append(f"HTML longer than {limits.MAX_HTML_NODES} elements: the tags past them were stripped")
    if copied:
        out.append(html[copied:])
        html = "".join(out)
    return BoundedHTML(html, tuple(notes), tags, stack.nodes, stack.max_depth)
