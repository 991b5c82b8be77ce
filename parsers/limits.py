"""Parsing budgets: how much of a hostile message the parsers read, in one table.

Every budget keeps the work linear in the input: past one, the parsers cut or
flatten what they read, record a note, and leave the raw bytes untouched.
docs/security.md ("Parsing budgets") lists them with their reasons.
"""

from __future__ import annotations

# HTML (parsers.html_bounds, before lexbor builds a tree)
MAX_HTML_CHARS = 4_000_000  # characters of an HTML body parsed; the rest is cut
# Elements open at once. Blink and WebKit flatten past 512 too; lexbor's tree building costs
# the depth of the open-element stack for each tag, so deeper nesting is quadratic.
MAX_HTML_DEPTH = 512
# Tags read, or elements built (re-opened ones too); past it, the rest of the tags are stripped.
MAX_HTML_NODES = 50_000
MAX_HTML_ATTRIBUTES = 64  # attributes of one tag; lexbor's duplicate check is quadratic in them
MAX_HTML_OPTIONS = 256  # select/option/optgroup/datalist tags: lexbor re-scans a select's options per option

# MIME (parsers.message, parsers.mime_fallback)
MAX_ADDRESS_CHARS = 200_000  # characters of one address-list header read; the rest is not
MAX_MIME_PARTS = 1000  # parts walked; past it the rest are not read
MAX_MIME_DEPTH = 50  # multipart / message nesting walked
MAX_MIME_BOUNDARY_LINES = 5000  # boundary lines the fallback splitter follows (parts of all levels)

# Plain text (reply extraction)
MAX_TEXT_CHARS = 1_000_000  # characters of a body that reply extraction reads; the rest is cut (noted)
