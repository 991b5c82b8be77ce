"""The return date an out-of-office reply states (parsers/away.py), per language."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.away import MAX_AHEAD_DAYS, return_date

DEC_4 = date(2026, 12, 4)  # a Friday
DEC_28 = date(2026, 12, 28)  # a Monday, days before the year ends

CASES = [
    # English
    ("en", "I am out of the office and back on 12 December.", DEC_4, date(2026, 12, 12)),
    (
        "en",
        "Thanks for your mail. Returning Monday 14/12, with limited access to email.",
        DEC_4,
        date(2026, 12, 14),
    ),
    ("en", "I'm on vacation until December 14, 2026.", DEC_4, date(2026, 12, 15)),
    ("en", "I am away until Monday.", DEC_4, date(2026, 12, 7)),
    ("en", "I will return on 4th January and reply then.", DEC_28, date(2027, 1, 4)),
    ("en", "Back on 2 Jan", DEC_28, date(2027, 1, 2)),
    ("en", "Out of office until 3 January 2027", DEC_28, date(2027, 1, 4)),
    ("en", "I will be back tomorrow.", DEC_4, date(2026, 12, 5)),
    ("en", "Back 2026-12-20", DEC_4, date(2026, 12, 20)),
    # German
    ("de", "Ich bin zurück am 14.12.2026 und beantworte Ihre Nachricht dann.", DEC_4, date(2026, 12, 14)),
    ("de", "Ich bin bis zum 13.12. nicht im Büro.", DEC_4, date(2026, 12, 14)),
    (
        "de",
        "Vielen Dank. Ab dem 5. Januar bin ich wieder im Büro.",
        DEC_28,
        None,
    ),  # "ab" also starts absences: not read
    ("de", "Ich bin wieder am 5. Januar erreichbar.", DEC_28, date(2027, 1, 5)),
    ("de", "Ich bin bis einschließlich 3.1.2027 im Urlaub.", DEC_28, date(2027, 1, 4)),
    # French
    ("fr", "Je serai de retour le 14 décembre.", DEC_4, date(2026, 12, 14)),
    ("fr", "Absent jusqu’au 3 janvier inclus.", DEC_28, date(2027, 1, 4)),
    ("fr", "De retour lundi.", DEC_4, date(2026, 12, 7)),
    # Spanish
    ("es", "Estoy fuera de la oficina hasta el 14 de diciembre.", DEC_4, date(2026, 12, 15)),
    ("es", "Estaré de vuelta el 4 de enero de 2027.", DEC_28, date(2027, 1, 4)),
    # Dutch
    ("nl", "Ik ben terug op 14 december.", DEC_4, date(2026, 12, 14)),
    ("nl", "Ik ben afwezig tot en met 3 januari.", DEC_28, date(2027, 1, 4)),
    # Portuguese
    ("pt", "Estarei de volta em 14 de dezembro.", DEC_4, date(2026, 12, 14)),
    ("pt", "Estou ausente até 3 de janeiro.", DEC_28, date(2027, 1, 4)),
    # Italian
    ("it", "Sono fuori ufficio, rientro il 14 dicembre.", DEC_4, date(2026, 12, 14)),
    # no date, or none that can be a return
    ("en", "I am out of the office with limited access to email.", DEC_4, None),
    ("en", "I will get back to you soon.", DEC_4, None),
    ("en", "I was back on 1 December.", DEC_4, None),  # just gone: a stale reply
    ("de", "Ich bin nicht im Büro.", DEC_4, None),
]


@pytest.mark.parametrize(("lang", "text", "received", "expected"), CASES)
def test_the_return_date_of_each_language(lang, text, received, expected):
    assert return_date(text, received) == expected, lang


def test_a_stated_year_in_the_past_is_no_return():
    assert return_date("Back on 12 December 2025", DEC_4) is None


def test_month_first_only_where_the_hints_say_so():
    assert return_date("Back on 12/11", date(2026, 11, 1)) == date(2026, 11, 12)
    assert return_date("Back on 11/12", date(2026, 11, 1), ("en-US",)) == date(2026, 11, 12)
    assert return_date("Back on 12/14", date(2026, 12, 1)) == date(2026, 12, 14)  # only one reading


def test_impossible_dates_are_no_answer():
    assert return_date("Back on 31.02.2027", DEC_4) is None
    assert return_date("Back on 30 February", DEC_4) is None


WORDS = st.sampled_from(
    [
        "back on",
        "until",
        "bis",
        "jusqu'au",
        "hasta el",
        "tot",
        "até",
        "zurück am",
        "de retour le",
        "14",
        "12",
        "31",
        "2026",
        "/",
        ".",
        "-",
        "december",
        "Dezember",
        "de",
        "Monday",
        "tomorrow",
        "29.02.",
        "0/0",
        "99/99/9999",
        "\u00a0",
        "’",
        " ",
        "\n",
        "ß",
        "ǅ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=200), st.lists(WORDS, max_size=30).map(" ".join)),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    st.lists(st.text(max_size=8), max_size=3).map(tuple),
)
def test_it_never_raises_and_answers_a_day_ahead(text, received, hints):
    found = return_date(text, received, hints)
    if found is not None:
        assert received < found <= date.fromordinal(min(received.toordinal() + MAX_AHEAD_DAYS, 3652059))


def test_non_text_is_no_answer():
    assert return_date(None, DEC_4) is None  # type: ignore[arg-type]
