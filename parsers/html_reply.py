"""HTML reply -> text lines, each tagged by what the HTML structure says it is.

The structure is read first: a client's own quote containers (Gmail, Apple
Mail, Thunderbird, Outlook, Yahoo, Zimbra ...) mark lines as ``quote``,
``header`` or ``cut`` (everything from there on is history); the text pass in
``parsers.text_reply`` then decides the rest. Rendering is iterative, so deep
nesting cannot exhaust the stack, and bounded in nodes.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

from parsers import quotes
from parsers.html_bounds import bound_html
from parsers.signature import find_signature

MAX_NODES = 50_000  # nodes past this many are not rendered (a reply sits at the top)

SKIP = {"head", "style", "script", "title", "xml", "template", "noscript", "-comment", "-doctype"}
BLOCK = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "blockquote", "hr", "h1", "h2", "h3", "h4", "h5",
    "h6", "pre", "body", "html", "section", "article", "header", "footer", "dl", "dt", "dd", "address",
}  # fmt: skip

# Where a client starts the quoted history: everything from here on is cut.
CUT_IDS = (
    "divRplyFwdMsg",  # Outlook web, Outlook for iOS / Android
    "appendonsend",  # Outlook web: the empty div just above the reply header
    "OLK_SRC_BODY_SECTION",  # Outlook for Mac
    "mail-editor-reference-message-container",  # new Outlook for Mac
    "stopSpelling",  # Hotmail: <hr id="stopSpelling">
    "zwchr",  # Zimbra: <hr id="zwchr">
)
CUT_CLASSES = ("yahoo_quoted", "OutlookMessageHeader", "zmail_extra")  # Yahoo, Outlook 2003, Zoho
# Blockquote classes that mark a quote even without type="cite".
QUOTE_CLASSES = ("protonmail_quote", "tutanota_quote", "zmail_quote")
# Outlook 2007+ and Windows Mail draw the reply header as a div with a top border.
_BORDER_TOP = re.compile(r"border-top(?:-style)?:\s*solid", re.I)
# Gmail's "Indent" button makes a borderless blockquote: content, not a quote.
_INDENT = re.compile(r"border:\s*none", re.I)
_SPACE = re.compile(r"\s+")
# The sender's signature: Gmail, Thunderbird, Outlook web, Apple Mail (iOS), Roundcube, Zoho.
SIGNATURE_CLASSES = frozenset({"gmail_signature", "moz-signature", "zmail_signature_below"})
SIGNATURE_IDS = frozenset({"Signature", "AppleMailSignature", "_rc_sig", "signature"})
# Attribution containers: the line "On ... wrote:" itself.
HEADER_CLASSES = ("gmail_attr", "moz-cite-prefix")


def _classes(attrs: dict) -> str:
    return attrs.get("class") or ""


def _starts_with(node, pattern: re.Pattern) -> bool:
    text = node.text(deep=True, separator="\n")[:400]
    first = next((line for line in text.splitlines() if line.strip()), "")
    return bool(pattern.match(first))


def _is_cut(node, tag: str, attrs: dict) -> bool:
    # Outlook on the web prefixes the ids of a message it re-wraps: "x_divRplyFwdMsg"
    if (attrs.get("id") or "").removeprefix("x_") in CUT_IDS or attrs.get("data-marker") == "__DIVIDER__":
        return True
    if any(c in _classes(attrs) for c in CUT_CLASSES):
        return True
    style = attrs.get("style") or ""
    return tag == "div" and bool(_BORDER_TOP.search(style)) and _starts_with(node, quotes.FIELD)


def _plain_blockquote(attrs: dict) -> bool:
    """A blockquote with no client marking: a quote only when it ends the message (``html_lines``)."""
    if attrs.get("type") == "cite" or "gmail_quote" in _classes(attrs):
        return False
    return not _INDENT.search(attrs.get("style") or "")


def _text_after(node, most: int = 50) -> bool:
    """Whether the sender's text follows ``node`` inside its parent. An unmarked blockquote with
    text after it is their own formatting (a passage they quote to answer it); one that ends its
    container, or is followed only by a signature, may hold the history (the last such one does,
    as talon decides)."""
    after: list[str] = []
    sibling = node.next
    for _ in range(most):
        if sibling is None:
            break
        if sibling.tag not in SKIP:
            after.append(sibling.text(deep=True, separator="\n") or "")
            if sum(map(len, after)) > 2000:
                return True
        sibling = sibling.next
    else:
        return True
    lines = [line.strip() for line in "\n".join(after).replace("\xa0", " ").split("\n") if line.strip()]
    if not lines:
        return False
    found = find_signature(["(the quote)", *lines])  # a signature never starts on the first line
    return found is None or found[0] != 1


class _Lines:
    """Accumulates rendered text into lines, remembering each line's kind."""

    def __init__(self):
        self.lines: list[str] = []
        self.kinds: list[str | None] = []
        self.buf: list[str] = []
        self.kind: str | None = None
        self.nbsp = False  # the line so far holds a no-break space

    def add(self, text: str, kind: str | None) -> None:
        if not self.buf:
            self.kind = kind
        self.buf.append(text)

    def newline(self, hard: bool = False) -> None:
        """End the line; a block edge (soft) adds no empty line, a ``<br>`` (hard) does, and so does
        a block of nothing but no-break spaces (Outlook's and Word's ``<p>&nbsp;</p>`` between paragraphs)."""
        text = "".join(self.buf).replace("\xa0", " ").strip()
        if text or hard or self.nbsp:
            self.lines.append(text)
            self.kinds.append(self.kind if text else None)
        self.buf, self.kind, self.nbsp = [], None, False


def html_lines(html: str) -> tuple[list[str], list[str | None], list[str]]:
    """Render ``html`` to (lines, kind per line, notes). A kind is None (text), "quote", "plain-quote"
    (an unmarked blockquote that ends the message), "header", "cut" (history from here on) or
    "signature" (inside the client's signature container)."""
    bounded = bound_html(html)
    notes: list[str] = list(bounded.notes)
    tree = LexborHTMLParser(bounded.html)
    root = tree.body or tree.root
    if root is None:
        return [], [], notes
    out = _Lines()
    quote = header = pre = gmail = nested = sig = 0
    plain = 0  # how many top-level unmarked blockquotes were seen; their lines are "maybe:<n>"
    last_plain = None  # the last of them: the only one that may be the quote
    cut = False
    seen = 0
    # Depth-first with an explicit stack: a node is pushed with the state to restore when it
    # closes; its next sibling is pushed only then, so a wide body is never listed at once.
    stack: list = [(root, None)]
    while stack:
        node, restore = stack.pop()
        if restore is not None:
            (quote, header, pre, gmail, nested, sig), block = restore
            if block:
                out.newline()
            if node is not root and node.next is not None:
                stack.append((node.next, None))
            continue
        seen += 1
        if seen > MAX_NODES:
            notes.append(f"HTML longer than {MAX_NODES} nodes: the rest was not read")
            break
        tag = node.tag
        if tag == "-text":
            text = node.text_content or ""
            kind = "cut" if cut else "header" if header else "quote" if quote else None
            if kind is None and nested and plain:
                kind = f"maybe:{plain}"
            if kind is None and sig:
                kind = "signature"
            if not pre:
                out.nbsp = out.nbsp or "\xa0" in text
                out.add(_SPACE.sub(" ", text), kind)
            else:
                for i, piece in enumerate(text.split("\n")):
                    if i:
                        out.newline(hard=True)
                    out.add(piece, kind)
        elif tag == "br":
            out.newline(hard=True)
        if tag == "-text" or tag == "br" or tag in SKIP:
            if node is not root and node.next is not None:
                stack.append((node.next, None))
            continue
        attrs = node.attributes if tag in ("div", "blockquote", "hr", "span", "table", "p") else {}
        if not cut and attrs and _is_cut(node, tag, attrs):
            if _starts_with(node, quotes.FORWARD):
                notes.append("forwarded message in the HTML")
            else:
                cut = True
                notes.append(f"HTML quote starts at <{tag}> {attrs.get('id') or _classes(attrs)}".rstrip())
        block = tag in BLOCK
        stack.append((node, ((quote, header, pre, gmail, nested, sig), block)))
        classes = _classes(attrs)
        if attrs and (
            (attrs.get("id") or "").removeprefix("x_") in SIGNATURE_IDS
            or SIGNATURE_CLASSES & set(classes.split())
        ):
            sig += 1
        if tag == "blockquote":
            if attrs.get("type") == "cite" or gmail or any(c in classes for c in QUOTE_CLASSES):
                quote += 1
            elif not nested and not quote and _plain_blockquote(attrs):
                plain += 1
                last_plain = node
            nested += 1
        elif "gmail_quote" in classes:
            if _starts_with(node, quotes.FORWARD):
                notes.append("forwarded message in the HTML")
            elif node.css_first("blockquote") is None:
                quote += 1  # old Gmail: attribution and history in one div, no blockquote
            else:
                gmail += 1
        if any(c in classes for c in HEADER_CLASSES) and not _starts_with(node, quotes.FORWARD):
            header += 1
        if tag == "pre":
            pre += 1
        if block:
            out.newline()
        if node.child is not None:
            stack.append((node.child, None))
    out.newline()
    # the last unmarked blockquote is the quote unless the sender's text follows it (looked at
    # once, here: asking it of every blockquote of a long message would cost quadratic time)
    last = f"maybe:{plain}" if last_plain is not None and not _text_after(last_plain) else None
    kinds = [("plain-quote" if k == last else None) if k and k.startswith("maybe:") else k for k in out.kinds]
    return out.lines, kinds, notes
