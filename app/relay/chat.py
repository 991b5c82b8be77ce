"""Chat posts: one neutral post, five services' incoming-webhook formats, and their URLs checked.

A producer stores a post in an outbox row of kind ``chat`` (its ``context``: a title, the link
back, an optional intro, sections of plain-text lines, a footer); the row's ``to_addr`` names the
team's ``ChatDestination`` as ``chat:<id>``, never its URL, which is a secret. At send time the
pipeline formats the post for the destination's service (``payload``) and POSTs it
(app/relay/transports/webhook.py). Every format escapes what people wrote, so an entry can never
become markup or a mention, and keeps within the service's documented limits.

    slack       blocks (header, mrkdwn sections, a button), ``text`` as the notification fallback
    mattermost  Markdown ``text`` (Slack-compatible webhooks; mentions defused)
    teams       an Adaptive Card in a message attachment (Workflows and connector webhooks)
    googlechat  cardsV2 (header, sections of textParagraph, a button), ``text`` as the fallback
    discord     one embed (title linking back, fields per section), no allowed mentions
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

CHAT_KIND = "chat"
TO_PREFIX = "chat:"


class ChatURLError(ValueError):
    """Raised with the reason when a webhook URL is refused for a service."""


@dataclass(frozen=True)
class Service:
    """A chat service: its name on forms, the hosts its incoming webhooks live on (suffixes; empty:
    any, for self-hosted Mattermost), and the path they start with."""

    name: str
    label: str
    hosts: tuple[str, ...]
    path: str = "/"


SERVICES = {
    s.name: s
    for s in (
        Service("slack", "Slack", ("hooks.slack.com",), "/services/"),
        Service("teams", "Microsoft Teams", ("webhook.office.com", "logic.azure.com", "powerplatform.com")),
        Service("googlechat", "Google Chat", ("chat.googleapis.com",), "/v1/spaces/"),
        Service("mattermost", "Mattermost", (), "/hooks/"),
        Service("discord", "Discord", ("discord.com", "discordapp.com"), "/api/webhooks/"),
    )
}
MAX_URL = 2000


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _private(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def check_url(service: str, url: str, *, allow_local: bool = False) -> str:
    """``url`` stripped, when it can be ``service``'s incoming webhook; ChatURLError otherwise.

    https only, on one of the service's hosts (loosely: the host or a subdomain of it) and under
    its webhook path; never an IP literal of a private network. ``allow_local`` (CHAT_ALLOW_LOCAL,
    refused in production) also takes http:// and loopback hosts on any path: tests' servers.
    """
    found = SERVICES.get(service)
    if found is None:
        raise ChatURLError(f"the service must be one of {', '.join(SERVICES)}, not {service[:32]!r}")
    url = (url or "").strip()
    if not url or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise ChatURLError(f"give the webhook URL {found.label} showed you (at most {MAX_URL} characters)")
    try:
        u = urlsplit(url)
        host = (u.hostname or "").lower()
        u.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise ChatURLError(f"not a URL: {e}") from None
    local = allow_local and _loopback(host)
    if u.scheme != "https" and not (local and u.scheme == "http"):
        raise ChatURLError("a webhook URL starts with https://")
    if not host or u.username or u.password:
        raise ChatURLError("a webhook URL names a host, and no user or password")
    if local:
        return url
    if _loopback(host) or _private(host):
        raise ChatURLError(f"{host} is a local or private address, not {found.label}'s")
    if found.hosts and not any(host == h or host.endswith("." + h) for h in found.hosts):
        raise ChatURLError(f"{found.label} webhooks live on {' or '.join(found.hosts)}, not {host}")
    if not u.path.startswith(found.path) or len(u.path) <= len(found.path):
        example = f"https://{found.hosts[0] if found.hosts else 'your-server'}{found.path}..."
        raise ChatURLError(f"{found.label} webhook URLs look like {example}")
    return url


def mask(url: str) -> str:
    """The URL as lists show it: scheme and host, then only the last four characters of the rest
    (the path carries the webhook's secret)."""
    u = urlsplit(url)
    rest = url[len(f"{u.scheme}://{u.netloc}") :]
    return f"{u.scheme}://{u.netloc}/…{rest[-4:]}" if len(rest) > 8 else f"{u.scheme}://{u.netloc}/…"


def to_addr(destination_id: int) -> str:
    """What an outbox row's ``to_addr`` holds for a destination: its reference, not its URL."""
    return f"{TO_PREFIX}{destination_id}"


def destination_id(to: str) -> int | None:
    """The destination id in a chat row's ``to_addr``; None when it names none."""
    rest = to[len(TO_PREFIX) :] if to.startswith(TO_PREFIX) else ""
    return int(rest) if rest.isascii() and rest.isdigit() and len(rest) < 10 else None


# ---------------------------------------------------------------- the neutral post


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Post:
    """What a chat post says, in plain text (every format escapes it): stored as JSON in the row."""

    title: str
    url: str  # the link back (the team's day page)
    intro: str = ""
    sections: tuple[Section, ...] = ()
    footer: str = ""
    link_text: str = "Open in donebox"

    def to_json(self) -> str:
        return json.dumps(
            {
                "title": self.title,
                "url": self.url,
                "intro": self.intro,
                "sections": [{"title": x.title, "lines": list(x.lines)} for x in self.sections],
                "footer": self.footer,
                "link_text": self.link_text,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Post:
        """The post a row stores; ValueError when it is not one."""
        d = json.loads(raw or "{}")
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("title"), str)
            or not isinstance(d.get("url"), str)
        ):
            raise ValueError("the row's context is not a chat post (title and url)")
        sections = tuple(
            Section(str(x.get("title", "")), tuple(str(line) for line in x.get("lines", ())))
            for x in d.get("sections", ())
        )
        return cls(
            d["title"],
            d["url"],
            str(d.get("intro", "")),
            sections,
            str(d.get("footer", "")),
            str(d.get("link_text") or "Open in donebox"),
        )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(lines: tuple[str, ...], limit: int, bullet: str, esc) -> str:
    """Escaped bullet lines within ``limit`` characters, then "… and N more"."""
    out, used = [], 0
    for i, line in enumerate(lines):
        item = bullet + esc(_cut(line, limit // 2))
        if used + len(item) + 1 > limit - 20:
            out.append(f"… and {len(lines) - i} more")
            break
        out.append(item)
        used += len(item) + 1
    return "\n".join(out)


# ---------------------------------------------------------------- the formats


def _slack_esc(text: str) -> str:
    # the three characters Slack asks to escape: with them, no <!channel>, <@U..> or <url|link>
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(post: Post) -> dict:
    """Slack's incoming webhook: Block Kit blocks (a section's text at most 3000 characters, at
    most 50 blocks), ``text`` the notification's fallback."""
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": _cut(post.title, 150)}}]
    if post.intro:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_esc(_cut(post.intro, 2900))}}
        )
    for x in post.sections[:45]:
        body = _lines(x.lines, 2800, "• ", _slack_esc)
        text = f"*{_slack_esc(_cut(x.title, 150))}*" + (f"\n{body}" if body else "")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": post.link_text}, "url": post.url}
            ],
        }
    )
    if post.footer:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_esc(_cut(post.footer, 2900))}]}
        )
    return {"text": _slack_esc(f"{post.title}: {post.url}"), "blocks": blocks}


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")


def _md_esc(text: str) -> str:
    # Markdown's punctuation escaped, and an @ followed by a zero-width space, so "@channel" or
    # "@everyone" in an entry never notifies anybody
    return _MD_SPECIAL.sub(r"\\\1", text).replace("@", "@\u200b")


def _markdown(post: Post, limit: int, heading: str) -> str:
    parts = [f"{heading} [{_md_esc(_cut(post.title, 200))}]({post.url})"]
    if post.intro:
        parts.append(_md_esc(_cut(post.intro, 1000)))
    room = max(200, (limit - 1500) // max(1, len(post.sections)))
    for x in post.sections:
        parts.append(f"**{_md_esc(_cut(x.title, 200))}**\n" + _lines(x.lines, room, "- ", _md_esc))
    parts.append(
        f"[{post.link_text}]({post.url})" + (f" · {_md_esc(_cut(post.footer, 500))}" if post.footer else "")
    )
    return _cut("\n\n".join(parts), limit)


def mattermost(post: Post) -> dict:
    """Mattermost's incoming webhook: Markdown ``text`` (at most 16383 characters)."""
    return {"text": _markdown(post, 16000, "####")}


def _card_esc(text: str) -> str:
    # Adaptive Cards' TextBlock reads a subset of Markdown: escape it the same way
    return _MD_SPECIAL.sub(r"\\\1", text)


def teams(post: Post) -> dict:
    """Microsoft Teams: an Adaptive Card (1.4) in a message attachment, what Workflows webhooks and
    the older connector webhooks both take; a card stays well under Teams' 28 KB."""
    body: list[dict] = [
        {
            "type": "TextBlock",
            "text": _card_esc(_cut(post.title, 200)),
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
        }
    ]
    if post.intro:
        body.append({"type": "TextBlock", "text": _card_esc(_cut(post.intro, 1000)), "wrap": True})
    room = max(300, 20000 // max(1, len(post.sections)))
    for x in post.sections[:40]:
        body.append(
            {
                "type": "TextBlock",
                "text": _card_esc(_cut(x.title, 200)),
                "weight": "Bolder",
                "wrap": True,
                "spacing": "Medium",
            }
        )
        if x.lines:
            body.append({"type": "TextBlock", "text": _lines(x.lines, room, "- ", _card_esc), "wrap": True})
    if post.footer:
        body.append(
            {"type": "TextBlock", "text": _card_esc(_cut(post.footer, 500)), "isSubtle": True, "wrap": True}
        )
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "actions": [{"type": "Action.OpenUrl", "title": post.link_text, "url": post.url}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def googlechat(post: Post) -> dict:
    """Google Chat's incoming webhook: cardsV2 (a header, a section of ``textParagraph`` per section,
    whose text is Google Chat's small HTML subset, escaped; a button), ``text`` the fallback."""
    sections: list[dict] = []
    if post.intro:
        sections.append({"widgets": [{"textParagraph": {"text": html.escape(_cut(post.intro, 1000))}}]})
    room = max(300, 24000 // max(1, len(post.sections)))
    for x in post.sections[:40]:
        text = _lines(x.lines, room, "• ", html.escape).replace("\n", "<br>") or "-"
        sections.append(
            {"header": html.escape(_cut(x.title, 200)), "widgets": [{"textParagraph": {"text": text}}]}
        )
    button = {"text": post.link_text, "onClick": {"openLink": {"url": post.url}}}
    sections.append({"widgets": [{"buttonList": {"buttons": [button]}}]})
    header = {"title": _cut(post.title, 200)}
    if post.footer:
        header["subtitle"] = _cut(post.footer, 200)
    return {
        "text": f"{_cut(post.title, 200)}: {post.url}",
        "cardsV2": [{"cardId": "donebox", "card": {"header": header, "sections": sections}}],
    }


def discord(post: Post) -> dict:
    """Discord's webhook: one embed (title at most 256, description 4096, at most 25 fields of
    name 256 and value 1024, 6000 characters in all) and no mentions allowed."""
    fields, total = [], len(post.title) + len(post.intro) + len(post.footer)
    for i, x in enumerate(post.sections):
        value = _lines(x.lines, 1000, "• ", _md_esc) or "-"
        name = _cut(x.title, 256)
        if i >= 24 or total + len(name) + len(value) > 5000:
            fields.append({"name": "…", "value": f"and {len(post.sections) - i} more: see the day page"})
            break
        fields.append({"name": name, "value": value})
        total += len(name) + len(value)
    embed: dict = {"title": _cut(post.title, 256), "url": post.url, "fields": fields}
    if post.intro:
        embed["description"] = _md_esc(_cut(post.intro, 500))
    if post.footer:
        embed["footer"] = {"text": _cut(post.footer, 300)}
    return {"content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}


FORMATS = {
    "slack": slack,
    "mattermost": mattermost,
    "teams": teams,
    "googlechat": googlechat,
    "discord": discord,
}


def payload(service: str, post: Post) -> bytes:
    """The JSON body ``service``'s incoming webhook takes for ``post``; ValueError for an unknown service."""
    fmt = FORMATS.get(service)
    if fmt is None:
        raise ValueError(f"no chat format for {service!r}")
    return json.dumps(fmt(post), ensure_ascii=False).encode("utf-8")
