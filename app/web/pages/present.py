"""Jinja filters for pages: entry text with #tags and @mentions linked, everything else escaped."""

from __future__ import annotations

import re
from urllib.parse import quote

from markupsafe import Markup, escape

from app.checkins.entries import MAX_TEXT, cut
from app.settings import get_settings
from app.web.common import templates

_TOKEN = re.compile(r"(?<![\w&])([#@])(\w[\w.-]*\w|\w)")


def entry_html(value: str, team_id: int) -> Markup:
    """Escaped entry text, cut at MAX_ENTRY_CHARS (older rows predate the limit); #tag and @mention
    become links to the team's search."""
    value = cut(value or "", max(MAX_TEXT, get_settings().max_entry_chars))
    out, pos = [], 0
    for m in _TOKEN.finditer(value or ""):
        out.append(escape(value[pos : m.start()]))
        sigil, word = m.groups()
        param = "tag" if sigil == "#" else "mention"
        href = f"/teams/{int(team_id)}/search?{param}={quote(word.lower())}"
        out.append(Markup('<a class="{}" href="{}">{}{}</a>').format(param, href, sigil, word))
        pos = m.end()
    out.append(escape((value or "")[pos:]))
    return Markup("").join(out)


templates.env.filters["entry_html"] = entry_html
