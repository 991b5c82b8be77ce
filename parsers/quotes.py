"""Quote-marker tables and the small matchers built on them.

Every marker a mail client writes above quoted history lives here, in ordered,
commented tables of words, compiled once; ``RULES`` at the end names every rule
that can cut a reply and how sure a cut by it is (``Reply.rule``/``confidence``).
The matchers take one line or a short window of lines (already cut to
``MAX_LINE`` characters) and never backtrack badly: each pattern is anchored and
its repeats are bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 1000  # characters of a line that the matchers look at

# Verbs that end an attribution line ("On <date>, <who> wrote:"), by language.
# They may sit in the middle ("Am ... schrieb Bob <b@x>:") or at the very end.
WROTE_WORDS = (
    "wrote", "writes",  # English
    "a écrit", "écrit",  # French
    "schrieb", "geschrieben",  # German
    "escribió", "escribio",  # Spanish
    "escreveu",  # Portuguese
    "ha scritto", "scrisse",  # Italian
    "schreef", "geschreven",  # Dutch ("heeft ... het volgende geschreven")
    "napisał(a)", "napisała", "napisał", "nadesłał", "pisze",  # Polish
    "skrev",  # Swedish, Danish, Norwegian
    "kirjoitti",  # Finnish
    "napsal(a)", "napsala", "napsal", "napísal",  # Czech, Slovak
    "написал(а)", "написала", "написал", "пишет", "написав", "пише",  # Russian, Ukrainian
    "yazdı",  # Turkish ("... tarihinde şunu yazdı:")
    "đã viết",  # Vietnamese
    "έγραψε",  # Greek
    "a scris",  # Romanian
    "írta",  # Hungarian ("Bob <b@x> ezt írta (időpont: ...):")
    "menulis",  # Indonesian
    "のメッセージ", "のメール", "書きました",  # Japanese (Outlook, Apple Mail)
    "写道", "寫道",  # Chinese (Gmail, simplified and traditional)
    "כתב", "כתבה",  # Hebrew
    "كتب", "نوشت",  # Arabic, Persian
    "ने लिखा", "เขียน",  # Hindi, Thai
    "작성",  # Korean (Gmail "...님이 작성:", Outlook "...님이 작성하였습니다:")
    "va escriure",  # Catalan
    "napisao je", "napisala je", "napisao", "napisala", "napisal",  # Croatian, Serbian, Slovenian
    "је написао/ла", "написао", "написала", "написа",  # Serbian (Cyrillic), Bulgarian
    "rašė", "rakstīja", "kirjutas",  # Lithuanian, Latvian, Estonian
    "skrifaði",  # Icelandic
    "sumulat", "aliandika",  # Filipino, Swahili
    "geskryf",  # Afrikaans ("... het Bob <b@x> geskryf:")
    "ysgrifennodd",  # Welsh
    "escribiu",  # Galician
    "shkroi",  # Albanian
    "எழுதியது", "লিখেছেন", "نے لکھا",  # Tamil, Bengali, Urdu
    "жазды",  # Kazakh
    "idatzi zuen", "idatzi du",  # Basque ("Bob (<b@x>) erabiltzaileak hau idatzi zuen (...):")
)  # fmt: skip

# Weaker verbs: an attribution only when the line also starts with a start word.
WEAK_WROTE_WORDS = (
    "sent",
    "said",  # English ("On <date>, Bob <b@x> sent:", "On <date>, Bob said:")
    "verzond",  # Dutch
)

# Words an attribution line starts with ("On", "Le", "Am" ...), by language.
START_WORDS = (
    "On",  # English
    "Le",  # French
    "Am",  # German
    "El",  # Spanish
    "Em", "Às",  # Portuguese
    "Il giorno", "Il",  # Italian
    "Op",  # Dutch
    "W dniu", "Dnia",  # Polish
    "Den", "På",  # Swedish, Danish, Norwegian
    "Dne", "Dňa",  # Czech, Slovak
    "Vào",  # Vietnamese
    "Στις",  # Greek
    "În",  # Romanian
    "Pada",  # Indonesian
    "Quoting", "Zitat von", "Citando",  # Horde / IMP ("Quoting Bob <b@x>:")
    "בתאריך",  # Hebrew (Gmail: "בתאריך <date> מאת <who> <addr>:")
    "في",  # Arabic (Gmail: "في <date> تمت كتابة ما يلي بواسطة <who> <addr>:")
)  # fmt: skip

# "-----Original Message-----" and its translations (Outlook, AOL, Android, Zimbra).
ORIGINAL_MESSAGE_WORDS = (
    "Original Message", "Reply Message", "Original message",  # English
    "Ursprüngliche Nachricht", "Antwort Nachricht", "Originalnachricht",  # German
    "Message d'origine", "Message original",  # French
    "Mensaje original",  # Spanish
    "Mensagem original", "Mensagem Original",  # Portuguese
    "Messaggio originale",  # Italian
    "Oorspronkelijk bericht", "Origineel bericht",  # Dutch
    "Oprindelig meddelelse", "Oprindelig besked",  # Danish
    "Opprinnelig melding",  # Norwegian
    "Ursprungligt meddelande", "Originalmeddelande",  # Swedish
    "Alkuperäinen viesti",  # Finnish
    "Wiadomość oryginalna", "Oryginalna wiadomość",  # Polish
    "Původní zpráva", "Původní e-mail", "Pôvodná správa",  # Czech (Outlook, Seznam), Slovak
    "Исходное сообщение", "Оригинальное сообщение",  # Russian
    "Orijinal Mesaj", "Özgün İleti",  # Turkish
    "元のメッセージ", "原始邮件", "原始郵件", "원본 메시지",  # Japanese, Chinese, Korean
)  # fmt: skip

# Markers that start a forwarded message: flagged, never cut as a quote.
FORWARD_WORDS = (
    "Forwarded message", "Forwarded Message",  # English (Gmail, Thunderbird)
    "Weitergeleitete Nachricht",  # German
    "Message transféré",  # French
    "Mensaje reenviado",  # Spanish
    "Mensagem encaminhada",  # Portuguese
    "Messaggio inoltrato",  # Italian
    "Doorgestuurd bericht",  # Dutch
    "Vidarebefordrat meddelande",  # Swedish
    "Videresendt meddelelse", "Videresendt melding",  # Danish, Norwegian
    "Välitetty viesti",  # Finnish
    "Przekazana wiadomość", "Przeslana wiadomosc",  # Polish
    "Přeposlaná zpráva",  # Czech
    "Пересылаемое сообщение", "Пересланное сообщение",  # Russian (Mail.ru, Gmail)
    "Начало переадресованного сообщения",  # Russian (Yandex)
    "İletilen ileti",  # Turkish
    "転送されたメッセージ", "转发的邮件", "轉寄的郵件", "전달된 메시지",  # Japanese, Chinese, Korean
)  # fmt: skip

# Lotus Notes names who forwarded: "----- Forwarded by Ana Ruiz/ACME on 09/14/2015 02:23 PM -----".
FORWARD_BY_WORDS = ("Forwarded by", "Weitergeleitet von", "Transféré par", "Inoltrato da", "Reenviado por")

# Apple Mail and friends write a sentence instead of a dashed rule.
FORWARD_SENTENCES = (
    "Begin forwarded message",  # English (Apple Mail)
    "Anfang der weitergeleiteten Nachricht", "Anfang der weitergeleiteten E-Mail",  # German
    "Début du message réexpédié", "Début du message transféré",  # French
    "Inicio del mensaje reenviado",  # Spanish
    "Início da mensagem reencaminhada", "Começo da mensagem encaminhada",  # Portuguese
    "Inizio messaggio inoltrato",  # Italian
    "Begin doorgestuurd bericht",  # Dutch
    "Vidarebefordrat brev",  # Swedish
    "Videresendt besked",  # Danish
)  # fmt: skip

# "Reply above this line" markers that help desks, trackers and notification mails write above
# their text (Zendesk "##- Please type your reply above this line -##", Help Scout, Basecamp,
# Jira ...), by language: the phrase a marker line holds. Nothing below such a line is the reply.
ABOVE_THIS_LINE = (
    "above this line",  # English
    "write below this line", "reply below this line", "type below this line",  # English ("do not ...")
    "über dieser zeile", "oberhalb dieser zeile",  # German
    "au-dessus de cette ligne",  # French
    "encima de esta línea", "arriba de esta línea",  # Spanish
    "acima desta linha", "acima dessa linha",  # Portuguese
    "sopra questa riga", "sopra questa linea", "sopra a questa riga",  # Italian
    "boven deze regel", "boven deze lijn",  # Dutch
    "ovanför denna rad", "ovanför den här raden",  # Swedish
    "over denne linje", "over denne linjen", "over denne linja",  # Danish, Norwegian
    "tämän rivin yläpuolelle",  # Finnish
    "powyżej tej linii",  # Polish
    "nad tento řádek", "nad tímto řádkem", "nad tento riadok",  # Czech, Slovak
    "выше этой строки", "над этой строкой", "вище цього рядка",  # Russian, Ukrainian
    "bu satırın üstüne", "bu satırın üzerine",  # Turkish
    "e sor fölé", "deasupra acestei linii",  # Hungarian, Romanian
    "πάνω από αυτή τη γραμμή", "מעל שורה זו", "أعلى هذا السطر", "فوق هذا السطر",  # Greek, Hebrew, Arabic
    "di atas baris ini", "phía trên dòng này", "เหนือบรรทัดนี้",  # Indonesian, Vietnamese, Thai
    "この行より上", "この線より上",  # Japanese
    "此行上方", "此行以上", "这行以上", "이 줄 위에",  # Chinese, Korean
)  # fmt: skip
MAX_MARKER = 120  # characters: a marker is a short line of its own, not a sentence in a paragraph
# A marker line also asks for a reply in words (lower-cased stems), or is decorated (MARKER_EDGES at
# either end): "Moved the banner above this line" is the sender's text.
MARKER_VERBS = (
    "reply", "respond", "write", "type", "answer", "comment", "post",  # English
    "antwort", "schreib", "répon", "repon", "écri", "respond", "escrib", "contest", "escrev", "rispond",
    "scriv", "antwoord", "reageer", "typ ", "schrijf", "svar", "skriv", "vastaa", "kirjoita", "odpow",
    "pisz", "odpověz", "odpovez", "piš", "ответ", "пиш", "відпов", "yanıt", "cevap", "yaz", "válasz",
    "răspun", "scrie", "απαντ", "γράψ", "השב", "כתוב", "תגוב", "الرد", "اكتب", "balas", "tulis",
    "trả lời", "viết", "ตอบ", "พิมพ์",
    "返信", "入力", "記入", "回复", "回覆", "输入", "答复", "답장", "회신", "작성",
)  # fmt: skip
MARKER_EDGES = "#-—–=*_~↑↓^<>[]()|"

# Quote prefixes other than ">": "| " (Eudora, some web mail) and ": " (some Usenet readers).
# A line counts only in a run of two or more, and never when it ends with "|" (a table row).
OTHER_QUOTE_PREFIXES = ("|", ":")

# Whole-line headers of particular clients that fit no pattern above: (a substring the line must
# hold, lower-cased, to be tried at all; the pattern).
CLIENT_HEADERS = tuple(
    (needle, re.compile(p, re.I))
    for needle, p in (
        # Lotus Notes / IBM Notes: "Ana Ruiz ---09/14/2015 02:23:14 PM---" and the first quoted words
        ("---", r"^.{1,80}\s-{3}\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\s\d{1,2}:\d{2}(?::\d{2})?\s?(?:[AP]M)?-{3}"),
        # sup and alot: "Excerpts from Ana Ruiz's message of 2015-09-14 14:23:18 +0200:"
        ("excerpts from", r"^excerpts from .{1,80}'s message of .{1,80}:\s*$"),
    )
)


def is_client_header(line: str) -> bool:
    """One of ``CLIENT_HEADERS``."""
    low = line.lower()
    return any(needle in low and p.match(line) for needle, p in CLIENT_HEADERS)


# Header fields of an Outlook-style block ("From: / Sent: / To: / Subject:"), by role.
FIELD_LABELS = {
    "from": (
        "From", "Von", "De", "Da", "Van", "Fra", "Från", "Od", "От", "Від", "Kimden", "Lähettäjä",
        "Feladó", "Từ", "差出人", "发件人", "寄件者", "보낸 사람", "보낸사람", "От кого", "Reply-To",
        "Antwort an", "Répondre à", "Responder a", "Antwoord aan",
        "De la", "Από", "מאת", "من", "จาก", "Dari", "Šalje", "Pošiljatelj", "Pošiljalac", "Nuo", "Saatja",
    ),
    "date": (
        "Sent", "Date", "Gesendet", "Datum", "Envoyé", "Enviado", "Enviada", "Fecha", "Data", "Inviato",
        "Verzonden", "Sendt", "Dato", "Skickat", "Wysłano", "Odesláno", "Отправлено", "Дата", "Надіслано",
        "Gönderildi", "Tarih", "Lähetetty", "Elküldve", "Đã gửi", "送信日時", "日付", "发送时间", "日期",
        "寄件日期", "보낸 날짜", "보낸날짜", "날짜", "Envoyé le", "Enviado el", "Gesendet am",
        "Trimis", "Στάλθηκε", "Ημερομηνία", "נשלח", "תאריך", "تم الإرسال", "التاريخ", "ส่ง", "วันที่", "Dikirim",
        "Tanggal", "Poslano", "Odoslané", "Enviados", "Enviada em", "Išsiųsta", "Nosūtīts", "Saadetud",
    ),
    "to": (
        "To", "An", "À", "A", "Para", "Aan", "Til", "Till", "Do", "Komu", "Кому", "Kime", "Vastaanottaja",
        "Címzett", "Đến", "宛先", "收件人", "收件者", "받는 사람", "받는사람", "Pour",
        "Către", "Προς", "אל", "إلى", "ถึง", "Kepada", "Prima", "Tới", "Kam", "Kellele",
    ),
    "cc": (
        "Cc", "CC", "Kopie", "Kopia", "DW", "Копия", "Bilgi", "抄送", "副本", "참조", "Kopi", "Vedhæftet",
        "Κοιν", "עותק", "نسخة", "สำเนา", "Tembusan",
    ),
    "organization": ("Organization", "Organisation", "组织"),
    "subject": (
        "Subject", "Betreff", "Objet", "Sujet", "Asunto", "Assunto", "Oggetto", "Onderwerp", "Emne", "Ämne",
        "Temat", "Předmět", "Тема", "Konu", "Aihe", "Tárgy", "Chủ đề", "件名", "主题", "主旨", "제목",
        "Subiect", "Θέμα", "נושא", "الموضوع", "เรื่อง", "Subjek", "Perihal", "Predmet", "Tema", "Teema",
    ),
}  # fmt: skip


def _alt(words) -> str:
    """An alternation of escaped words, longest first so "napisał(a)" beats "napisał"."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


def _trie(words) -> str:
    """The words of ``_alt`` as a trie: the same matches (the longer word first wherever one is the
    other's start), one branch a character. ``re`` tries every branch of an alternation at every
    position of a search; behind ``_first(words)`` a position whose character starts no word fails
    at once (under IGNORECASE ``re`` has no quick scan of its own for the first character)."""
    tree: dict = {}
    for word in set(words):
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def branch(node: dict) -> str:
        more = [re.escape(ch) + branch(child) for ch, child in sorted(node.items()) if ch]
        if not more:
            return ""
        alt = more[0] if len(more) == 1 and "" not in node else "(?:" + "|".join(more) + ")"
        return alt + "?" if "" in node else alt

    return branch(tree)


def _first(words) -> str:
    """A lookahead for the first characters of ``words``."""
    return "(?=[" + "".join(sorted({re.escape(w[0]) for w in words})) + "])"


# A word ends where no letter follows; CJK verbs simply end.
_WORD_END = r"(?![^\W\d_])"

# CJK verbs run straight into what follows ("작성하였습니다"), so only the others need a word end.
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")
_WROTE_CJK = _trie([w for w in WROTE_WORDS if _CJK.search(w)])
_WROTE_OTHER = _trie([w for w in WROTE_WORDS if not _CJK.search(w)])
WROTE = re.compile(rf"{_first(WROTE_WORDS)}(?:{_WROTE_CJK}|(?:{_WROTE_OTHER}){_WORD_END})", re.I)
# The verbs lower-cased, for a quick "does this line end with one" test before any regex.
WROTE_ENDINGS = tuple(w.lower() for w in WROTE_WORDS + WEAK_WROTE_WORDS)
_WROTE_ASCII = tuple(w.lower() for w in WROTE_WORDS if w.isascii())


def ends_on_a_verb(window: str) -> bool:
    """A quick test that ``WROTE.search(window)`` finds a verb: an ASCII window ending on one,
    before any spaces and colons ("... <ana@x> wrote:"). It never holds where the pattern finds
    nothing (in ASCII, lower-casing is what IGNORECASE compares, and what follows the verb is no
    letter); where it does not hold, the pattern is asked. The pattern is the slow part of an
    attribution line's test: under IGNORECASE, ``re`` cannot scan ahead for its first letters."""
    return window.isascii() and window.rstrip(" \t:").lower().endswith(_WROTE_ASCII)


WEAK_WROTE = re.compile(rf"\b(?:{_alt(WEAK_WROTE_WORDS)}){_WORD_END}", re.I)

# Leading decoration before a marker: spaces, bold stars, dashes, underscores.
_LEAD = r"[\s*_\-–—]{0,40}"

# A start word at the beginning of the window, or after text on the same line
# ("reply On Wed, Apr 4, 2012 at 3:59 PM, bob@x wrote:").
START = re.compile(rf"^{_LEAD}(?:{_alt(START_WORDS)})\s", re.I)
START_INLINE = re.compile(rf"{_first(START_WORDS)}(?:^|(?<=\s)|(?<=-))(?:{_trie(START_WORDS)})\s")

_MONTHS = (
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|janv|févr|mars|avr|mai|juin|juil|août|sept|déc"
    r"|ene|abr|ago|dic|gen|mag|giu|lug|ott|okt|mär|dez|maj|sty|lut|kwi|cze|lip|sie|wrz|paź|lis|gru"
    r"|янв|фев|мар|апр|мая|июн|июл|авг|сен|окт|ноя|дек"
)
_WEEKDAYS = (
    r"mon|tue|wed|thu|fri|sat|sun|lun|mar|mer|jeu|ven|sam|dim|mié|jue|vie|sáb|dom|mo|di|mi|do|fr|sa|so"
    r"|ma|ti|on|to|fr|lø|sø|må|tis|ons|tor|fre|lör|sön|pn|wt|śr|cz|pt|sb|nd|пн|вт|ср|чт|пт|сб|вс|seg|ter|qua|qui|sex"
    r"|ke|pe|la|su|po|út|st|čt|pá|ne"
)
# A window that starts with a date: "2011/4/7", "26.06.2014,", "Thu, 26 Jun 2014", "пн, 14 сент. 2015".
DATE_START = re.compile(
    rf"^{_LEAD}(?:\d{{1,4}}[-./年]\s?\d{{1,2}}|\d{{1,2}}[.]?\s(?:{_MONTHS})|(?:{_WEEKDAYS})[a-zäéöü]{{0,6}}\.?,?\s+\d)",
    re.I,
)
# Some date or time somewhere in the window. Each branch starts at a digit: the lookahead
# fails every other position at once, where the four branches would each be tried.
DATE_SIGNAL = re.compile(
    r"(?=\d)(?:\d{1,2}[:.]\d{2}|\b(?:19|20)\d{2}\b|\d{1,4}[-./]\d{1,2}[-./]\d{1,4}|\d+年)"
)

# How an attribution window ends: a colon, or the verb itself, then maybe dashes.
# (An end test, not a regex search: an alternation of all the verbs tried at every position of
# the window cost more than the rest of the extraction.)
_HEADER_ENDINGS = (":", "：") + WROTE_ENDINGS


def header_end(window: str) -> bool:
    """Whether ``window`` ends with a colon or a "wrote" verb, then maybe spaces and dashes."""
    return window[-200:].rstrip(" \t\n-–—").lower().endswith(_HEADER_ENDINGS)


COLON_END = re.compile(r"[:：][\s\-–—]{0,40}$")
# An address starts where a run of its characters starts, and that run, taken whole, must meet
# the "@" (no shorter run can): the lookbehind and the possessive run make a search find the
# first address the plain pattern finds, without its retries inside every word (quadratic in a
# long word). For ``search`` only: ``finditer`` would not start a second address mid-word.
ADDRESS = re.compile(r"(?<![\w.+'-])[\w.+'-]++@[\w-]+(?:\.[\w-]+)+")
BRACKETED_ADDRESS = re.compile(r"[<(\[]\s?(?:mailto:)?[\w.+'-]+@[\w-]+(?:\.[\w-]+)+\s?[>)\]]")
MAX_GENERIC = 250  # characters of a header known only by its date, time, address and colon
# A date with a year and a time of day somewhere in the window.
YEAR_AND_TIME = re.compile(r"^(?=.*\b(?:19|20)\d{2}\b)(?=.*\b\d{1,2}[:.]\d{2}\b)")
# The window ends on an address and a colon: "<b@x>:", "(b@x):", "[2015-09-14 02:23]:".
ADDRESS_COLON_END = re.compile(r"[>)\]]\s?[:：]\s*$")
# A whole line of one to four names and the verb: "Bob Smith wrote:", "Ana Ruiz a écrit :".
NAME_WROTE_WORDS = (
    "wrote", "writes", "schrieb", "a écrit", "escribió", "escreveu", "ha scritto", "schreef", "skrev",
    "kirjoitti", "napsal", "napisał", "написал", "написала",
)  # fmt: skip
# Words that start a sentence about someone's writing, not a name: "As Lea wrote:".
NOT_NAMES = frozenset(
    "as like and but so then he she they we i you someone somebody everyone it this that who what also "
    "wie und aber er sie comme et il elle como y él ella".split()
)
# Lower-case particles inside names: "Ana de la Fuente", "Jan van Dijk".
NAME_PARTICLES = frozenset("de la del da van von der den du le di dos das ter ten".split())
NAME_WROTE = re.compile(
    rf"^[\s*]{{0,4}}([^\W\d_][\w.'\-]{{0,30}}(?:\s[\w.'\-]{{1,30}}){{0,3}})\s(?:{_alt(NAME_WROTE_WORDS)})\s?[:：]\s*$",
    re.I,
)
# The date-first form may end on the address: "2011/4/7 Bob <bob@x>" or "... (bob@x):".
ADDRESS_END = re.compile(r"[>)\]]\s?[:：]?[\s\-–—]{0,40}$")

# Characters that clients draw rules and banners with: ASCII dashes, underscores, equals signs,
# asterisks and tildes, Unicode hyphens and dashes (Proton Mail writes U+2010), box drawing.
DASHES = "-_=*~\u2010\u2011\u2012\u2013\u2014\u2015\u2500\u2501\u2212"
_D = f"[{re.escape(DASHES)}]"

# Banner decoration: the rule characters, and the angle brackets and hashes some clients use
# ("<<<<< Original Message >>>>>", "##### Original Message #####").
_BD = f"[{re.escape(DASHES + '<>#')}]"
ORIGINAL_MESSAGE = re.compile(
    rf"^[\s>]{{0,20}}{_BD}{{2,}}\s?(?:{_alt(ORIGINAL_MESSAGE_WORDS)})\s?{_BD}{{2,}}\s*$", re.I
)
# The words alone, or bracketed, between rule lines: "=====\n  Original Message\n=====". Taken
# only right above a cut (text_reply._finish): on their own they may be the sender's words.
BARE_BANNER = re.compile(rf"^\s{{0,20}}[\[(*]?\s?(?:{_alt(ORIGINAL_MESSAGE_WORDS)})\s?[\])*]?\s?:?\s*$", re.I)
FORWARD = re.compile(
    rf"^[\s>*]{{0,20}}(?:{_D}{{2,}}\s?(?:{_alt(FORWARD_WORDS)})\s?{_D}{{0,40}}"
    rf"|{_D}{{2,}}\s?(?:{_alt(FORWARD_BY_WORDS)})\s.{{1,120}}?{_D}{{2,}}"
    rf"|(?:{_alt(FORWARD_SENTENCES)})\s?:?)\s*$",
    re.I,
)
# "---- John Smith wrote ----" (Android) and "---- On <date> Bob wrote ----" (Zoho).
DASHED_WROTE = re.compile(rf"^\s*-{{2,}}+.{{1,300}}(?:{_alt(WROTE_WORDS)})\s?:?\s?-{{2,}}\s*$", re.I)

_FIELD_ROLE = {label.lower(): role for role, labels in FIELD_LABELS.items() for label in labels}
_ALL_LABELS = _alt(label for labels in FIELD_LABELS.values() for label in labels)
FIELD = re.compile(rf"^[\s>*]{{0,20}}\*?({_ALL_LABELS})\s?\*?\s?[:：]", re.I)
FIELD_INLINE = re.compile(rf"\s\*?({_ALL_LABELS})\s?\*?\s?[:：]", re.I)

_ABOVE_LOWER = tuple(p.lower() for p in ABOVE_THIS_LINE)
_ABOVE_ASCII = tuple(p for p in _ABOVE_LOWER if p.isascii())  # all an ASCII line can hold
OTHER_QUOTE = re.compile(rf"^\s{{0,3}}[{re.escape(''.join(OTHER_QUOTE_PREFIXES))}](?:\s|$)")


def is_reply_above(line: str) -> bool:
    """A "reply above this line" marker line."""
    if len(line) > MAX_MARKER:
        return False
    low = line.lower()  # substring tests: several times faster than one alternation of phrases
    if not any(p in low for p in (_ABOVE_ASCII if low.isascii() else _ABOVE_LOWER)):
        return False
    s = line.strip()
    return s[0] in MARKER_EDGES or s[-1] in MARKER_EDGES or any(v in low for v in MARKER_VERBS)


# A line of nothing but rule characters: "-----", "______", "=====".
RULE = re.compile(rf"^[\s{re.escape(DASHES)}]+$")
# A dashed banner in any language ("-------- Oprindelig besked --------"): part of the quote
# header when a header block follows it directly.
BANNER = re.compile(rf"^\s*{_D}{{2,}}+\s?[^{re.escape(DASHES)}]{{1,60}}?\s?{_D}{{2,}}\s*$")


def field_role(line: str) -> str | None:
    """The role ("from", "date", "to", "cc", "subject") of a header field line, or None."""
    m = FIELD.match(line)
    return _FIELD_ROLE.get(m.group(1).lower()) if m else None


def inline_field_block(line: str) -> bool:
    """A whole header block on one line: "From: bob@x Date: Thu, 24 Mar 2016"."""
    if field_role(line) not in ("from", "date"):
        return False
    roles = {_FIELD_ROLE.get(m.group(1).lower()) for m in FIELD_INLINE.finditer(line)}
    return bool(roles & {"from", "date", "to", "subject"})


def _is_name(words: str) -> bool:
    """Capitalized words, maybe with particles, that do not open a sentence ("As Lea")."""
    parts = words.split()
    if parts[0].lower() in NOT_NAMES:
        return False
    return all(p[0].isupper() or p.lower() in NAME_PARTICLES for p in parts)


def is_attribution(window: str) -> bool:
    """Whether ``window`` (one to five lines joined by spaces) is a whole "On ... wrote:" line."""
    if len(window) > 600:
        return False
    if DASHED_WROTE.match(window):
        return True
    has_addr = "@" in window and ADDRESS.search(window) is not None
    if header_end(window):
        has_date = DATE_SIGNAL.search(window) is not None
        starts = START.match(window) is not None
        # without a start word, the verb must come with a date or an address, and a colon at the end
        signed = (has_date or has_addr) and COLON_END.search(window) is not None
        if (starts or signed) and (ends_on_a_verb(window) or WROTE.search(window)):
            return True
        if WEAK_WROTE.search(window) and starts and (has_date or has_addr):
            return True
        if starts and has_addr and ADDRESS_END.search(window):  # "Quoting Bob <bob@x>:"
            return True
    if has_addr and ADDRESS_COLON_END.search(window) and YEAR_AND_TIME.search(window):
        # a date and an address, ending on the address and a colon, whatever their order: Mail.ru's
        # "Понедельник, 14 сентября 2015, 2:23 +03:00 от Bob <b@x>:", mutt's "* Bob <b@x> [2015-09-14 02:23]:"
        return True
    colon_end = window.rstrip()[-1:] in (":", "：")  # what NAME_WROTE ends with
    if colon_end and (m := NAME_WROTE.match(window)) and _is_name(m.group(1)):  # "Bob Smith wrote:" (no date)
        return True
    if (
        has_addr  # what BRACKETED_ADDRESS holds
        and len(window) <= MAX_GENERIC
        and BRACKETED_ADDRESS.search(window)
        and COLON_END.search(window)
        and YEAR_AND_TIME.search(window)
    ):
        # any language's "<date> <time> <name> <<address>> <verb>:" whose verb is in no table:
        # Gmail's Marathi "... <b@x> यांनी लिहिले:", Georgian "... <b@x> წერდა:". The address in
        # brackets, as clients write it: "sent to b@x on 2015-09-14 14:23:" is the sender's text.
        return True
    return has_addr and DATE_START.match(window) is not None and ADDRESS_END.search(window) is not None


# Every rule that can make a cut, with how sure a cut by it is. ``confidence`` holds when the rule
# fires on its own; ``quoted`` (headers only) when ``>``-marked lines follow the header, which
# makes even a bare "On ... wrote:" certain. "high": a client's or our own markup said so; "low":
# a heuristic that can be wrong on unusual text. Ordered from the most to the least certain.
@dataclass(frozen=True)
class Rule:
    name: str
    confidence: str
    what: str
    quoted: str = ""

    def sure(self, followed_by_quote: bool = False) -> str:
        return (self.quoted or self.confidence) if followed_by_quote else self.confidence


RULES = {
    rule.name: rule
    for rule in (
        Rule("own-reminder", "high", "our own reminder text, quoted back with or without marks"),
        Rule("html-quote-markup", "high", "a client's quote container in the HTML (Gmail, Outlook ...)"),
        Rule("reply-above-marker", "high", "an application's \"reply above this line\" marker"),
        Rule("forward", "high", "a forwarded-message marker: what follows is kept apart"),
        Rule("quote-header:original-message", "high", "a dashed \"Original Message\" banner"),
        Rule("quote-header:dashed-wrote", "high", "a dashed \"--- Bob wrote ---\" line (Android, Zoho)"),
        Rule("quote-header:field-block", "low", "a From:/Sent:/To: header block (Outlook)", "high"),
        Rule("quote-header:on-wrote", "low", "an \"On <date>, <who> wrote:\" attribution", "high"),
        Rule("quote-header:client", "low", "a client's own one-line header (Lotus Notes, sup)", "high"),
        Rule("header-first", "low", "a quote header on top, the sender's unmarked text under it (kept)"),
        Rule("gt-quoted", "high", "lines marked with >"),
        Rule("unmarked-quote", "low", "quoted lines with another marker (|, :) or a wrapped quoted line"),
        Rule("html-trailing-blockquote", "low", "the last unmarked <blockquote> at the end of the HTML"),
        Rule("signature:html-markup", "high", "a signature container in the HTML (gmail_signature ...)"),
        Rule("signature:mobile-footer", "high", "a mail app's footer (\"Sent from my iPhone\")"),
        Rule("signature:delimiter", "low", "a signature delimiter (\"-- \", \"---\", \"__\")"),
        Rule("signature:disclaimer", "low", "a legal footer paragraph"),
        Rule("signature:dash-name", "low", "a last line \"-ana\" or \"/Anna\""),
        Rule("signature:sign-off", "low", "a sign-off line (\"Thanks,\") and a short name under it"),
        Rule("signature:contact-block", "low", "a last paragraph of a name and contact details"),
    )
}  # fmt: skip
