"""Tracking: signed tokens, link rewriting, the open pixel, List-Unsubscribe, and recording hits.

A token names a message, what it is for (o: open, c: click, u: unsubscribe) and,
for a click, the index of the link in the URLs recorded for that message; an
HMAC over SECRET_KEY signs all of it. Nothing in a click URL chooses where it
redirects: the destination is read from the message's recorded links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from html import escape

from selectolax.lexbor import LexborHTMLParser
from sqlmodel import Session

from app.metrics import families as metrics
from app.models import MessageEvent, OutboundMessage
from app.relay import packing, suppressions, webhooks

SIG_CHARS = 22  # ~128 bits of HMAC-SHA256, URL-safe base64
_TOKEN = re.compile(rf"^(\d{{1,12}})\.([ocu])(\d{{0,4}})\.([A-Za-z0-9_-]{{{SIG_CHARS}}})$")

# User agents of image proxies, security scanners and prefetchers: their hits are "machine" hits.
# Ordered, matched case-insensitively anywhere in the User-Agent.
MACHINE_AGENTS = re.compile(
    "|".join(
        [
            r"GoogleImageProxy",  # Gmail fetches images through its proxy, often on delivery
            r"YahooMailProxy",
            r"ggpht\.com",
            r"Mimecast",
            r"Proofpoint",
            r"Barracuda",
            r"Symantec",
            r"MessageLabs",
            r"Microsoft Office Existence Discovery",
            r"\bbot\b|crawler|spider|preview",
            r"python-requests|curl/|wget/|Go-http-client|okhttp",
            r"^$",  # no User-Agent at all
        ]
    ),
    re.IGNORECASE,
)


def _mac(secret: str, payload: str) -> bytes:
    return hmac.digest(secret.encode(), payload.encode(), hashlib.sha256)


def _sig(secret: str, payload: str) -> str:
    return base64.urlsafe_b64encode(_mac(secret, payload)).decode()[:SIG_CHARS]


def make_token(secret: str, message_id: int, kind: str, index: int | None = None) -> str:
    """The signed token for ``kind`` (o, c, u) of ``message_id``; ``index`` is the link for a click."""
    payload = f"{message_id}.{kind}{'' if index is None else index}"
    return f"{payload}.{_sig(secret, payload)}"


@dataclass(frozen=True)
class Token:
    """A verified token."""

    message_id: int
    kind: str
    index: int | None


def verify_token(secret: str, token: str, kind: str) -> Token | None:
    """The Token when well-formed, of ``kind`` and correctly signed; else None."""
    m = _TOKEN.match(token)
    if not m or m.group(2) != kind:
        return None
    mid, k, idx, sig = m.groups()
    if not hmac.compare_digest(sig, _sig(secret, f"{mid}.{k}{idx}")):
        return None
    return Token(int(mid), k, int(idx) if idx else None)


_MAILTO_TOKEN = re.compile(r"^(\d{1,12})\.m\.([0-9a-f]{32})$")


def mailto_token(secret: str, message_id: int) -> str:
    """The unsubscribe token of the List-Unsubscribe mailto address: lowercase hex, since mail
    systems may change the case of an address's local part (the https token is case-sensitive)."""
    payload = f"{message_id}.m"
    return f"{payload}.{_mac(secret, payload).hex()[:32]}"


def verify_mailto_token(secret: str, token: str) -> int | None:
    """The message id of a well-formed, correctly signed mailto token (any case); else None."""
    m = _MAILTO_TOKEN.match(token.strip().lower())
    if not m or not hmac.compare_digest(mailto_token(secret, int(m.group(1))), m.group(0)):
        return None
    return int(m.group(1))


def is_machine(user_agent: str) -> bool:
    """True for the User-Agents of known image proxies, scanners and prefetchers."""
    return bool(MACHINE_AGENTS.search(user_agent or ""))


# ---------------------------------------------------------------- at render time


# the open pixel, its src (the base URL, /t/o/ and the token) where {} is
_PIXEL = '<img src="{}" width="1" height="1" alt="" style="display:none">'


def _rewrite(html: str, *, base_url: str, token) -> tuple[str, list[str]]:
    tree = LexborHTMLParser(html)
    links: list[str] = []
    for node in tree.css("a[href]"):
        url = (node.attributes.get("href") or "").strip()
        if not url.lower().startswith(("http://", "https://")) or len(links) >= 9999:
            continue
        node.attrs["href"] = f"{base_url}/t/c/{token('c', len(links))}"
        links.append(url)
    img = LexborHTMLParser(_PIXEL.format(f"{base_url}/t/o/{token('o', None)}"))
    if tree.body is not None:
        tree.body.insert_child(img.css_first("img"))
    return tree.html or html, links


@dataclass(frozen=True)
class _Plan:
    """An HTML part with tracking added, cut where the tokens go: text, token, text, ..., text."""

    texts: tuple[str, ...]
    tokens: tuple[tuple[str, int | None], ...]  # (kind, link index) of each cut
    links: tuple[str, ...]

    def packed(self) -> PackedPlan:
        joined = "".join(self.texts).encode("utf-8")
        return PackedPlan(packing.pack(joined), tuple(len(t) for t in self.texts), self.tokens, self.links)


@dataclass(frozen=True)
class PackedPlan:
    """A plan as a shared render keeps it, its texts compressed: the render's HTML is kept beside it,
    and as they were, the plans doubled what a worker holds for the renders in flight (measured: a
    worker's peak 157 to 174 MB in the full outbound bench). Unpacking takes tens of microseconds,
    finding the plan again an HTML parse of hundreds."""

    texts_packed: bytes  # app.relay.packing
    lengths: tuple[int, ...]
    tokens: tuple[tuple[str, int | None], ...]
    links: tuple[str, ...]

    def plan(self) -> _Plan:
        joined, texts, at = packing.unpack(self.texts_packed).decode("utf-8"), [], 0
        for n in self.lengths:
            texts.append(joined[at : at + n])
            at += n
        return _Plan(tuple(texts), self.tokens, self.links)


_PLANS: dict[tuple[str, str], _Plan] = {}
_PLANS_LOCK = threading.Lock()
PLANS_KEPT = 64


def plan_of(html: str, base_url: str) -> _Plan:
    """Where the tokens go in ``html`` once tracked (one HTML parse), not kept: a shared render keeps
    its plan with it (app.relay.shared_renders ``derived``)."""
    mark = f"dbx{secrets.token_hex(8)}"  # letters and digits: HTML serialization leaves it alone
    tracked, links = _rewrite(
        html, base_url=base_url, token=lambda kind, i: f"{mark}{kind}{'' if i is None else i}{mark}"
    )
    cuts = tracked.split(mark)  # text, "c0", text, "c1", ..., text
    tokens = tuple((c[0], int(c[1:]) if len(c) > 1 else None) for c in cuts[1::2])
    return _Plan(tuple(cuts[::2]), tokens, tuple(links))


_LINK_TAG = re.compile(r"<a[\s/>]", re.I | re.A)
_BODY_END = "</body>"
_PIXEL_START, _PIXEL_END = _PIXEL.split("{}")


def linkless_plan(html: str, base_url: str) -> _Plan | None:
    """``plan_of(html)`` without an HTML parse, for an HTML part that css_inline wrote (the relay's
    renders: html5ever's serialization, every element closed, tag names in lower case) holding no
    ``<a`` tag: the pixel goes in just before the one ``</body>``, the body's last child, as
    ``_rewrite`` puts it there. A reminder's HTML has no link, and its plan was a parse and a
    serialization of its own for each recipient. None for any other HTML: ``plan_of`` parses it."""
    if _LINK_TAG.search(html):
        return None
    end = html.find(_BODY_END)
    if end < 0 or html.find(_BODY_END, end + 1) >= 0:
        return None  # no body's end tag, or one more inside a raw-text element: parse
    before = f"{html[:end]}{_PIXEL_START}{escape(base_url, quote=True)}/t/o/"
    return _Plan((before, _PIXEL_END + html[end:]), (("o", None),), ())


def _plan(html: str, base_url: str) -> _Plan:
    """``plan_of(html)``, kept for the last PLANS_KEPT distinct HTML parts (a composed message sent
    to many recipients has the same HTML for each)."""
    key = (html, base_url)
    with _PLANS_LOCK:
        hit = _PLANS.get(key)
    if hit is not None:
        return hit
    plan = plan_of(html, base_url)
    with _PLANS_LOCK:
        if len(_PLANS) >= PLANS_KEPT:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def add_tracking(
    html: str, *, base_url: str, secret: str, message_id: int, first_link: int = 0, plan: _Plan | None = None
) -> tuple[str, list[str]]:
    """(html with http(s) links rewritten and an open pixel added, the original URLs in link order).

    ``first_link`` is the index of its first link among the message's recorded links (a composed
    message may have more than one HTML part, their links recorded one after another). ``plan``:
    ``plan_of(html, base_url)`` made earlier, else it is made (or taken from the last few kept)."""
    plan = plan or _plan(html, base_url)
    out = [plan.texts[0]]
    for (kind, index), text in zip(plan.tokens, plan.texts[1:], strict=True):
        out.append(make_token(secret, message_id, kind, None if index is None else index + first_link))
        out.append(text)
    return "".join(out), list(plan.links)


def unsubscribe_headers(*, base_url: str, secret: str, reply_domain: str, message_id: int) -> dict[str, str]:
    """List-Unsubscribe (mailto and https) and List-Unsubscribe-Post for RFC 8058 one-click."""
    token, mailto = make_token(secret, message_id, "u"), mailto_token(secret, message_id)
    return {
        "List-Unsubscribe": f"<mailto:unsubscribe+{mailto}@{reply_domain}>, <{base_url}/t/u/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# ---------------------------------------------------------------- hits


def record_hit(s: Session, message_id: int, kind: str, *, now: datetime, user_agent: str, **detail) -> None:
    """Append an ``open``/``click``/``unsubscribe`` MessageEvent with the time and user agent."""
    info = {"ua": (user_agent or "")[:500], "machine": is_machine(user_agent), **detail}
    metrics.hit(kind)
    s.add(MessageEvent(message_id=message_id, kind=kind, detail=json.dumps(info), created_at=now))
    s.flush()
    webhooks.emit_messages(s, [(message_id, kind, json.dumps(info))], now=now)


def click_target(s: Session, token: Token) -> str | None:
    """The URL recorded for the token's message and link index, or None."""
    message = s.get(OutboundMessage, token.message_id)
    if message is None or not message.links:
        return None
    urls = json.loads(message.links)
    return urls[token.index] if token.index is not None and token.index < len(urls) else None


def unsubscribe(s: Session, message_id: int, *, now: datetime, user_agent: str, via: str) -> str | None:
    """Suppress the message's recipient (idempotent) and record the event; the address, or None."""
    m = s.get(OutboundMessage, message_id)
    if m is None:
        return None
    suppressions.add(
        s, m.to_addr, "unsubscribe", detail=f"message {m.id} via {via}", team_id=m.team_id, now=now
    )
    record_hit(s, m.id, "unsubscribe", now=now, user_agent=user_agent, via=via)
    return m.to_addr
