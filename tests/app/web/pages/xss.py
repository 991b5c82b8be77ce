"""The XSS payload set and a checker that finds executable constructs in an HTML document."""

import re

from selectolax.lexbor import LexborHTMLParser

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    '<object data="data:text/html,<script>alert(1)</script>"></object>',
    "<embed src=javascript:alert(1)>",
    '<base href="javascript:alert(1)//">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "<style>@import 'javascript:alert(1)';</style>",
    "<scr<script>ipt>alert(1)</script>",
    '<a href="&#106;avascript:alert(1)">entity</a>',
    "{{7*7}}{% raw %}<script>alert(1)</script>",
    '#<img/src/onerror=alert(1)> @"><svg/onload=alert(1)>',
    "javascript:alert(1)",
    '<p style="background:url(javascript:alert(1));width:expression(alert(1))">styled</p>',
    '<div style="color:red;background-image:url(&quot;javascript:alert(1)&quot;)">styled too</div>',
    # mutation XSS: markup that a sanitizer's parse and the browser's re-parse read differently
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    '<form><math><mtext></form><form><mglyph><svg><mtext><style><path id="</style>'
    '<img onerror=alert(1) src>">',
    "<listing>&lt;img src=x onerror=alert(1)&gt;</listing>",
    '<template><img src=x onerror=alert(1)></template><textarea></textarea><img src=x onerror="alert(1)">',
    # UTF-7: only dangerous if a page could be read as UTF-7, which every page's charset forbids
    "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
    "+ADw-img src=x onerror=alert(1)+AD4-",
]

_DANGEROUS_TAGS = {"script", "object", "embed", "base", "frame", "frameset", "applet", "template"}
_URL_ATTRS = {"href", "src", "action", "formaction", "data", "xlink:href", "poster", "background"}
_BAD_URL = re.compile(r"^(javascript|vbscript|data:text/html)", re.IGNORECASE)


def executable_constructs(html: str, *, allowed_iframes: tuple[str, ...] = ("/mail/",)) -> list[str]:
    """What in ``html`` a browser could execute: script-ish tags, on* handlers, script URLs."""
    found = []
    tree = LexborHTMLParser(html)
    for node in tree.root.traverse(include_text=False) if tree.root else []:
        tag = (node.tag or "").lower()
        attrs = node.attributes or {}
        if tag in _DANGEROUS_TAGS:
            found.append(f"<{tag}>")
        if tag == "meta" and "refresh" in (attrs.get("http-equiv") or "").lower():
            found.append("<meta refresh>")
        if tag == "iframe":
            src = attrs.get("src") or ""
            if "sandbox" not in attrs or attrs.get("sandbox") or not src.startswith(allowed_iframes):
                found.append(f"<iframe {attrs}>")
        if tag == "style" and re.search(r"javascript|expression\(|@import", node.text() or "", re.I):
            found.append("<style> with script")
        for name, value in attrs.items():
            if name.lower() == "style" and re.search(r"expression|javascript|url\(", value or "", re.I):
                found.append(f"<{tag} style={value!r}>")
            if name.lower().startswith("on"):
                found.append(f"<{tag} {name}>")
            if name.lower() in _URL_ATTRS and value:
                cleaned = re.sub(r"[\x00-\x20]", "", value)
                if _BAD_URL.match(cleaned):
                    found.append(f"<{tag} {name}={value!r}>")
    return found
