"""Find the signature at the end of a reply: delimiters, phone footers, sign-offs, contact blocks.

Only the tail is searched, and each rule is cautious about real content: a
signature never starts on the first line, never holds a bullet or an entry
("Goal: ..."), and a colon in the body cuts nothing.
"""

from __future__ import annotations

import re

_I = re.I

# Footers that mail apps append, one whole line each, by language.
MOBILE_FOOTER_PATTERNS = tuple(
    p
    for p in (
        # English: "Sent from my iPhone", "Sent wirelessly from my BlackBerry device on the Bell network.",
        # "Sent from my phone, please excuse typos."
        r"sent (?:\w+ )?from my [\w .'&®™\-]{1,60}[.!]?"
        r"(?:[,;]?\s?(?:please )?(?:excuse|pardon|sorry)[\w .,']{0,60})?",
        # "Typos courtesy of my iPhone", "Brevity courtesy of my phone"
        r"(?:typos|brevity|errors|autocorrect) (?:courtesy of|by|thanks to) (?:my )?.{1,40}",
        # English: "Sent from Outlook for iOS", "Sent with Sparrow (http://...)", "Sent via BlackBerry"
        r"sent (?:from|with|via|using) (?:the )?(?:iphone|ipad|android|blackberry|samsung|outlook|yahoo|gmail"
        r"|aol|mailbox|sparrow|windows|mail|huawei|xiaomi|proton ?mail|spark|nine|bluemail|edison|airmail"
        r"|superhuman|fastmail|zoho|tutanota|polymail|acompli|mobile|galaxy)\b[\w .'&®™\-]{0,50}"
        r"(?:\s?[(<]https?://\S{1,200}[)>])?[.!]?",
        # Outlook mobile in any language: "Get Outlook for iOS", "Télécharger Outlook pour Android<https://...>"
        r".{0,30}\boutlook (?:for|pour|für|para|per|voor|för|dla|pro|na|til) (?:ios|android)\b.{0,30}"
        r"(?:\s?<https?://\S{1,200}>)?",
        # AOL: "Sent from the all-new AOL app for iOS"
        r"sent from (?:the )?(?:all-new )?aol (?:app|mobile).{0,30}",
        r"envoyé (?:\w+ ){0,2}(?:de|depuis|par) (?:mon|ma) .{1,80}",  # French
        # German: "Von meinem iPhone gesendet", "Gesendet mit der GMX Mail App",
        # "Diese Nachricht wurde von meinem Android Mobiltelefon mit WEB.DE Mail gesendet."
        r"(?:von meinem .{1,40} gesendet|gesendet (?:von|mit) (?:meinem |der |dem )?.{1,40})[.!]?",
        r"diese nachricht wurde von meinem .{1,80} gesendet[.!]?",
        r"enviado (?:desde|do|de|con) .{1,60}",  # Spanish, Portuguese
        r"enviat des de(?:l)? .{1,40}",  # Catalan
        r"trimis de pe .{1,40}",  # Romanian
        r"elküldve (?:az? )?.{1,40}",  # Hungarian
        r"poslano (?:s|sa|iz|z) .{1,40}",  # Croatian, Serbian, Slovenian
        r"odoslané z .{1,40}",  # Slovak
        r"(?:надіслано з|изпратено от|послато са) .{1,40}",  # Ukrainian, Bulgarian, Serbian
        r"(?:στάλθηκε|εστάλη) από .{1,40}",  # Greek
        r"נשלח מ.{1,40}",  # Hebrew
        r"(?:أُرسلت|أرسلت|مرسل) من .{1,40}",  # Arabic
        r"(?:dikirim|dihantar) dari .{1,40}",  # Indonesian, Malay
        r"gửi từ .{1,40}",  # Vietnamese
        r"ส่งจาก.{1,40}",  # Thai
        r"išsiųsta iš .{1,40}",
        r"nosūtīts no .{1,40}",
        r"saadetud (?:minu )?.{1,40}",  # Baltic
        r".{1,30} से भेजा गया",
        r"ارسال شده از .{1,40}",  # Hindi, Persian
        r"inviato da(?:l mio)? .{1,40}",  # Italian
        r"(?:verzonden|verstuurd) (?:vanaf|met|van) .{1,40}",  # Dutch
        r"(?:skickat från|sendt fra) .{1,40}",  # Swedish, Danish, Norwegian
        r"lähetetty .{0,30}(?:puhelimesta|iphonesta|androidista|laitteesta)",  # Finnish
        r"(?:wysłane z|odesláno z|отправлено (?:с|из)) .{1,40}",  # Polish, Czech, Russian
        r"\S{1,30}(?:dan|den|umdan|imden) gönderildi",  # Turkish
        r".{1,30}から送信",  # Japanese
        r"(?:发自我的|從我的|从我的).{1,30}",  # Chinese
        r".{1,30}에서 보냄",  # Korean
    )
)
MOBILE_FOOTERS = tuple(re.compile(p, _I) for p in MOBILE_FOOTER_PATTERNS)
# All of them in one pattern: one match per line instead of one per footer.
_FOOTER = re.compile("|".join(f"(?:{p})" for p in MOBILE_FOOTER_PATTERNS), _I)

# Sign-off lines ("Thanks,", "Best regards, Bob"): the signature starts here.
SIGN_OFF_WORDS = (
    "thanks", "thank you", "many thanks", "thanks again", "thx", "ty", "cheers", "best", "best wishes",
    "regards", "best regards", "kind regards", "warm regards", "warmly", "sincerely", "yours", "take care",
    "cordialement", "bien à vous", "merci",  # French
    "mit freundlichen grüßen", "viele grüße", "beste grüße", "liebe grüße", "gruß", "grüße",  # German
    "saludos", "atentamente", "un saludo",  # Spanish
    "abraços", "atenciosamente", "cumprimentos",  # Portuguese
    "cordiali saluti", "saluti", "grazie",  # Italian
    "met vriendelijke groet", "groeten", "groet",  # Dutch
    "med vänliga hälsningar", "hälsningar", "mvh", "med venlig hilsen", "hilsen", "vh",  # Nordic
    "pozdrawiam", "s pozdravem", "с уважением", "спасибо", "saygılarımla",  # pl, cs, ru, tr
    "üdvözlettel", "udvozlettel", "ystävällisin terveisin", "terveisin",  # hu, fi
)  # fmt: skip
# The sign-off words in any case, then at most a capitalized name: "Thanks, Bob", "Cheers!".
_SIGN_OFF_ALT = "|".join(re.escape(w) for w in sorted(SIGN_OFF_WORDS, key=len, reverse=True))
# "Med venlig hilsen / Kind regards": two sign-offs joined by a slash count as one.
SIGN_OFF = re.compile(
    rf"^\s*(?i:{_SIGN_OFF_ALT})(?:\s?/\s?(?i:{_SIGN_OFF_ALT}))?[\s,!.]*"
    r"(?:[A-Z][\w'.\-]*(?:\s+[A-Z][\w'.\-]*){0,2})?[\s,!.]*$"
)

# Legal footers: the signature starts at the paragraph that opens like this.
DISCLAIMERS = tuple(
    re.compile(p, _I)
    for p in (
        r"^\W{0,5}(?:confidentiality notice|disclaimer|legal notice|important notice"
        r"|notice of confidentiality|privileged (?:and|&) confidential)\b",
        r"^this (?:e-?mail|message|communication|transmission)\b.{0,120}"
        r"\b(?:confidential|privileged|intended)",
        r"^the (?:information|content)s? (?:contained )?in this (?:e-?mail|message|communication)",
        r"^if you (?:are not|have received this)\b.{0,60}\b(?:intended recipient|in error)",
        r"^(?:este|ce|questo|diese|deze) (?:correo|courriel|message|messaggio|e-?mail|nachricht|bericht)\b"
        r".{0,120}(?:confidencial|confidentiel|riservat|vertraulich|vertrouwelijk)",
    )
)
# Whether any of them opens a line, in one match instead of five: the search asks it of every kept
# line, and again for each signature cut.
DISCLAIMER = re.compile("|".join(f"(?:{p.pattern})" for p in DISCLAIMERS), _I)

# "-- " (RFC 3676) and its sloppy cousins "--", "---", "__", "———". A lone "—" is left alone: clients
# and notification footers use it as a rule above content.
DELIMITER = re.compile(r"^\s*(?:-{2,}|_{2,}|—{2,})\s*$")
# A one-word name after a dash or slash, as the last line: "-roman", "- Lev.", "/Anna".
DASH_NAME = re.compile(r"^\s*[-–—/]\s?[^\W\d_][\w'.]{0,30}\s*$")
# Lines a signature never holds: bullets and entry prefixes.
CONTENT = re.compile(
    r"^\s*(?:[-*•+]\s|\d{1,3}[.)]\s|\[[ xX]\]|(?:goal|tomorrow|blocked|blocker|done)\s?:)", _I
)
NAME = re.compile(r"^\s*[A-Z][\w'.\-]*(?:\s+[A-Z][\w'.\-]*){0,3}\s*(?:[,|–—-].{0,60})?$")
CONTACT = re.compile(r"\+?\d[\d\s().\-]{6,}\d|@\w|https?://|\bwww\.|\|")

MAX_TAIL = 15  # non-empty lines at the end that may hold a signature


def _is_footer(line: str) -> bool:
    """A mail app's footer line, or several in different languages on one line ("... / ...")."""
    if _FOOTER.fullmatch(line):
        return True
    if " / " not in line and " | " not in line:
        return False
    parts = [p.strip() for p in re.split(r"\s[/|]\s", line)]
    return all(_FOOTER.fullmatch(part) for part in parts)


def _nonempty(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip()]


def _short_tail(lines: list[str], start: int, most: int, width: int) -> bool:
    tail = [x for x in lines[start:] if x.strip()]
    return len(tail) <= most and all(len(x.strip()) <= width and not CONTENT.match(x) for x in tail)


def _signature_start(lines: list[str], footers: dict[int, bool]) -> tuple[int, str] | None:
    """(index where a trailing signature starts, the rule's name in ``quotes.RULES``), or None.
    ``footers`` keeps whether each line read so far is a footer, for the next, shorter call."""
    idx = _nonempty(lines)
    if len(idx) < 2:
        return None
    first, tail = idx[0], idx[-MAX_TAIL:]
    for i in tail:
        if i == first:
            continue
        if (footer := footers.get(i)) is None:
            line = lines[i].strip()
            footer = footers[i] = len(line) <= 200 and _is_footer(line)
        if footer:
            if _short_tail(lines, i + 1, 3, 120):
                return i, "signature:mobile-footer"
    for i in tail:
        if i != first and DELIMITER.match(lines[i]):
            rfc = lines[i] == "-- "
            if _short_tail(lines, i + 1, 15 if rfc else 6, 200 if rfc else 80):
                return i, "signature:delimiter"
    for i in idx[-40:]:
        if i != first and DISCLAIMER.match(lines[i].strip()):
            return i, "signature:disclaimer"
    last = idx[-1]
    if last != first and DASH_NAME.match(lines[last]) and not CONTENT.match(lines[idx[-2]]):
        return last, "signature:dash-name"
    for i in idx[-4:]:
        if i != first and SIGN_OFF.match(lines[i]) and _short_tail(lines, i + 1, 3, 40):
            return i, "signature:sign-off"
    block = _contact_block(lines, idx)
    return None if block is None else (block, "signature:contact-block")


def _contact_block(lines: list[str], idx: list[int]) -> int | None:
    """A last paragraph like "Jane Doe | CTO\\n+1 555 010 0199" after a blank line."""
    start = idx[-1]
    while start - 1 >= 0 and lines[start - 1].strip():
        start -= 1
    if start <= idx[0] or not _short_tail(lines, start, 6, 80):
        return None
    block = lines[start : idx[-1] + 1]
    if NAME.match(block[0]) and any(CONTACT.search(x) for x in block) and len(block) >= 2:
        return start
    return None


MAX_CUTS = 6  # stacked signatures cut from one reply


def find_signature(lines: list[str]) -> tuple[int, str] | None:
    """(where the signature starts in ``lines``, the rule of its topmost cut), or None.

    Repeated until no rule fits, so stacked footers ("Thanks,\nAna\n\nSent from my iPhone") all go.
    """
    return search_signature(lines)[0]


def search_signature(lines: list[str]) -> tuple[tuple[int, str] | None, bool]:
    """``find_signature``'s answer, and whether the search ended because no rule fits the lines
    above its cut (rather than after MAX_CUTS cuts): then those lines hold no signature."""
    found, end, footers = None, len(lines), {}
    for _ in range(MAX_CUTS):
        hit = _signature_start(lines[:end], footers)
        if hit is None:
            return found, True
        found, end = hit, hit[0]
        while end and not lines[end - 1].strip():
            end -= 1
    return found, False


def split_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split ``lines`` into (body, signature)."""
    found = find_signature(lines)
    if found is None:
        return list(lines), []
    body = lines[: found[0]]
    while body and not body[-1].strip():
        body.pop()
    return body, lines[found[0] :]
