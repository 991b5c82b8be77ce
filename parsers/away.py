"""The return date an out-of-office reply states, if it states one: pure, no clock, never raises.

``return_date(text, received)`` reads the auto-reply's subject and text for a phrase that says
when its writer is back ("back on 12 December", "returning Monday 14/12", "zurück am 14.12.2026",
"de retour le 14 décembre", "hasta el 14 de diciembre", "terug op 14 december", "de volta em
14 de dezembro") and answers the first day the writer is back, or None. Two families of phrase:

- *back* phrases name the first day back ("back on", "returning", "zurück am", "de retour le",
  "de vuelta el", "terug op", "de volta em"): that day is the answer;
- *until* phrases name the last day away ("until", "bis", "jusqu'au", "hasta el", "tot en met",
  "até"): the day after is the answer.

A date without a year is the next such day on or after ``received`` (so a reply received on
28 December saying "back on 4 January" means next year's), unless it lies at most PAST_DAYS
behind (an old reply left switched on: no answer); a weekday alone ("back on Monday")
is the next such weekday after ``received``. Dates are day first ("14/12") unless the hints
name a month-first locale (``en-US``). A day not after ``received``, or more than MAX_AHEAD_DAYS
after it, is no answer. The languages are the reply parser's (parsers/quotes.py) that Latin
script writes: English, German, French, Spanish, Dutch, Portuguese, Italian.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta

MAX_AHEAD_DAYS = 366  # a longer absence is no vacation (app.checkins.schedules.MAX_PAUSE_DAYS)
MAX_TEXT = 20_000  # an auto-reply states its date near the top; the rest is not read
PAST_DAYS = 60  # a date without a year this far behind the received day is stale, not next year's
WINDOW = 48  # characters after a phrase in which its date must start

MONTHS = {
    1: "january jan januar janner janvier janv enero ene januari janeiro gennaio gen",
    2: "february feb februar fevrier fevr febrero februari fevereiro fev febbraio",
    3: "march mar marz maerz mrz mars marzo maart mrt marco",
    4: "april apr avril avr abril aprile",
    5: "may mai mayo mei maio maggio mag",
    6: "june jun juni juin junio junho giugno giu",
    7: "july jul juli juillet juil julio julho luglio lug",
    8: "august aug aout agosto ago augustus",
    9: "september sep sept septembre septiembre setiembre setembro set settembre",
    10: "october oct oktober okt octobre octubre outubro out ottobre ott",
    11: "november nov novembre noviembre novembro",
    12: "december dec dezember dez decembre diciembre dic dezembro dicembre",
}
MONTH = {name: n for n, names in MONTHS.items() for name in names.split()}
WEEKDAYS = {
    0: "monday mon montag mo lundi lunes maandag segunda lunedi",
    1: "tuesday tue tues dienstag di mardi martes dinsdag terca martedi",
    2: "wednesday wed mittwoch mi mercredi miercoles woensdag quarta mercoledi",
    3: "thursday thu thurs donnerstag do jeudi jueves donderdag quinta giovedi",
    4: "friday fri freitag fr vendredi viernes vrijdag sexta venerdi",
    5: "saturday sat samstag sonnabend sa samedi sabado zaterdag sabato",
    6: "sunday sun sonntag so dimanche domingo zondag domenica",
}
WEEKDAY = {name: n for n, names in WEEKDAYS.items() for name in names.split()}
TOMORROW = ("tomorrow", "morgen", "demain", "manana", "amanha", "domani")

# phrases after accents are folded and text lower-cased; longest first within a family
_BACK = (
    r"back (?:in the office |at work |at my desk )?(?:on|from|by)",
    r"back",
    r"returning(?: to the office)?(?: on)?",
    r"(?:i will |i'll |i )?return(?: to the office)?(?: on)?",
    r"(?:available|reachable|in the office) (?:again )?(?:on|from)",
    r"zuruck (?:am|ab)",
    r"zuruck",
    r"(?:ab|am) (?=\S+ wieder)",
    r"wieder (?:im buro |erreichbar |da )?(?:am|ab)",
    r"de retour (?:le|au bureau le|a partir du)",
    r"de retour",
    r"je serai de retour(?: le)?",
    r"retour (?:le|prevu le)",
    r"de vuelta (?:el|a partir del)",
    r"de vuelta",
    r"regreso el",
    r"(?:volvere|regresare|vuelvo) el",
    r"terug (?:op|vanaf)",
    r"terug",
    r"weer aanwezig (?:op|vanaf)",
    r"de volta (?:em|a|no dia|dia)",
    r"de volta",
    r"(?:volto|regresso|retorno) (?:em|a|no dia|dia)",
    r"(?:rientro|di ritorno|tornero)(?: il)?",
)
_UNTIL = (
    r"(?:away|out(?: of (?:the )?office)?|on (?:vacation|holiday|leave)|off) (?:until|till|through|thru)",
    r"until(?: and including)?",
    r"till",
    r"through",
    r"bis(?: einschliesslich| zum| einschl\.)?",
    r"jusqu'(?:au|a|le)",
    r"hasta(?: el)?(?: dia)?",
    r"tot en met",
    r"t/m",
    r"tot",
    r"ate(?: o dia| dia| ao dia)?",
    r"fino al?",
)
_PHRASE = re.compile(
    r"(?<![\w'])(?:(?P<back>" + "|".join(_BACK) + r")|(?P<until>" + "|".join(_UNTIL) + r"))(?![\w'])"
)

_NUM = re.compile(
    r"(?<!\d)(\d{1,4})([./-])(\d{1,2})(?:\2(\d{2,4}))?(?!\d)|(?<!\d)(\d{1,2})[./](\d{1,2})\.?(?!\d)"
)
_DAY_MONTH = re.compile(
    r"(?<!\d)(\d{1,2})(?:st|nd|rd|th|er|e|º|o)?\.?\s*(?:de\s+|of\s+)?([a-z]{3,10})\.?(?:\s*(?:de\s+)?,?\s*(\d{4}))?"
)
_MONTH_DAY = re.compile(r"\b([a-z]{3,10})\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?!\d)(?:,?\s+(\d{4}))?")
_WORD = re.compile(r"[a-z]+")


def fold(text: str) -> str:
    """Lower case without accents, typographic apostrophes made plain."""
    text = text[:MAX_TEXT].replace("\u2019", "'").replace("\u00a0", " ").lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _make(year: int | None, month: int, day: int, received: date) -> date | None:
    """The date, its year the given one (two digits: 20xx) or the next on or after ``received``."""
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        found = date(received.year, month, day)
        if found >= received:
            return found
        # a day just gone is an old reply's date, not next year's
        return None if (received - found).days <= PAST_DAYS else date(received.year + 1, month, day)
    except ValueError:
        return None


def _numeric(m: re.Match, received: date, month_first: bool) -> date | None:
    if m.group(5):  # "14.12." or "14/12"
        a, b, year = int(m.group(5)), int(m.group(6)), None
    else:
        a, b = int(m.group(1)), int(m.group(3))
        year = int(m.group(4)) if m.group(4) else None
        if len(m.group(1)) == 4:  # ISO 2026-12-14
            return _make(a, b, int(m.group(4)), received) if m.group(4) and m.group(2) == "-" else None
    day, month = (b, a) if month_first else (a, b)
    if month > 12 and day <= 12:  # 12/14 can only be month first
        day, month = month, day
    return _make(year, month, day, received)


def _first_date(window: str, received: date, month_first: bool) -> tuple[date, bool] | None:
    """The date the window starts with (after a few filler words), and whether it was a whole
    date (not a weekday or "tomorrow", which name the day back whatever the phrase), or None."""
    found: list[tuple[int, date]] = []
    for m in _NUM.finditer(window):
        d = _numeric(m, received, month_first)
        if d:
            found.append((m.start(), d))
            break
    for m in _DAY_MONTH.finditer(window):
        if m.group(2) in MONTH:
            d = _make(int(m.group(3)) if m.group(3) else None, MONTH[m.group(2)], int(m.group(1)), received)
            if d:
                found.append((m.start(), d))
                break
    for m in _MONTH_DAY.finditer(window):
        if m.group(1) in MONTH:
            d = _make(int(m.group(3)) if m.group(3) else None, MONTH[m.group(1)], int(m.group(2)), received)
            if d:
                found.append((m.start(), d))
                break
    if found:
        return min(found, key=lambda f: f[0])[1], True
    for w in _WORD.finditer(window[:24]):
        if w.group() in TOMORROW:
            return received + timedelta(days=1), False
        if w.group() in WEEKDAY and len(w.group()) > 2:  # "Mo", "Di": too like other words alone
            ahead = (WEEKDAY[w.group()] - received.weekday()) % 7 or 7
            return received + timedelta(days=ahead), False
    return None


def return_date(text: str, received: date, hints: tuple[str, ...] = ()) -> date | None:
    """The first day the writer of the out-of-office ``text`` is back, read from its first
    phrase that states one, or None; ``received``: the day the reply arrived (the writer's local
    day); ``hints``: locale names (Content-Language, ``en-US``) that decide day or month first."""
    try:
        return _return_date(text, received, hints)
    except Exception:  # noqa: BLE001 - a parser answers None, never an error, whatever the text
        return None


def _return_date(text: str, received: date, hints: tuple[str, ...]) -> date | None:
    if not isinstance(text, str) or not text:
        return None
    month_first = any(h.strip().lower().replace("_", "-") in ("en-us", "en-ca") for h in hints)
    folded = fold(text)
    last = received + timedelta(days=MAX_AHEAD_DAYS)
    for m in _PHRASE.finditer(folded):
        window = folded[m.end() : m.end() + WINDOW]
        found = _first_date(window, received, month_first)
        if found is None:
            continue
        day, whole = found
        back = day + timedelta(days=1) if m.group("until") and whole else day
        if received < back <= last:
            return back
    return None
