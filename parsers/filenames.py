"""Attachment filenames as senders write them -> names safe to store, show and save.

A sender controls the name: it can carry a path (``\\share\\mail\\x.msg``, ``../../etc/passwd``),
control or bidi-override characters, a Windows device name, no name at all, or a thousand
characters. ``safe_filename`` keeps what is harmless of it and replaces the rest; the raw name
stays beside it (``parsers.message.Attachment.raw_filename``). Pure, never raises.
"""

from __future__ import annotations

import re
import unicodedata

MAX_BYTES = 255  # the longest name (UTF-8 bytes) most file systems store
FALLBACK = "attachment"  # the name of a part whose own name is nothing usable
# Windows device names: "CON", "con.txt" and "Com1.tar.gz" all open the device, not a file
_DEVICE = re.compile(r"^(con|prn|aux|nul|clock\$|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.I)
# characters no Windows file name may hold (the path separators are gone by the time this runs)
_FORBIDDEN = re.compile(r'[<>:"|?*]')
# control (Cc), format (Cf: bidi overrides, zero-width), separator (Zl, Zp), surrogate, unassigned
_HOSTILE_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"))
# a fallback name's extension by content type, so a nameless part still opens in the right program
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/json": ".json",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
}


def _clean_char(c: str) -> str:
    category = unicodedata.category(c)
    if category in _HOSTILE_CATEGORIES:
        return "_"
    if category == "Zs" and c != " ":  # no-break and other spaces look like one and are one here
        return " "
    return c


def _truncate(name: str) -> str:
    """``name`` cut to MAX_BYTES of UTF-8 on a character boundary, its extension kept when short."""
    if len(name.encode("utf-8")) <= MAX_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and 0 < len(ext.encode("utf-8")) <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    budget = MAX_BYTES - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return cut.rstrip(" .") + suffix


def fallback_name(content_type: str = "") -> str:
    """The name given to a part whose own name is unusable: ``attachment`` plus its type's extension."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return FALLBACK + _EXTENSIONS.get(base, "")


def safe_filename(raw: str, content_type: str = "") -> str:
    """A name safe to store and show for the attachment name ``raw``.

    Path components (``/`` and ``\\``) are dropped; control, format and Windows-forbidden
    characters become ``_``; leading dots and trailing dots and spaces go (no hidden files, no
    names Windows silently changes); a device name gets a ``_`` prefix; the result is held to
    MAX_BYTES, extension kept. Nothing usable left (empty, ``.``, ``..``) -> ``fallback_name``.
    Idempotent: a safe name is its own safe name.
    """
    name = unicodedata.normalize("NFC", raw or "")
    parts = [p for p in re.split(r"[/\\]", name) if p.strip(" .")]
    name = parts[-1] if parts else ""
    name = "".join(_clean_char(c) for c in name)
    name = _FORBIDDEN.sub("_", name)
    name = name.strip().lstrip(".").rstrip(" .").strip()
    if not name or not name.strip("_"):
        return fallback_name(content_type)
    if _DEVICE.match(name):
        name = "_" + name
    return _truncate(name)
