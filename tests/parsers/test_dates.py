"""parsers.message.parse_date: the usual form read on its own, as the email package reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.message import _plain_date, parse_date


def general_reading(value: str) -> tuple[datetime | None, list[str]]:
    """What parse_date gave before it read the usual form itself: the email package's parse."""
    try:
        d = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None, ["unparseable Date header"]
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UTC), []


WEEKDAYS = ["", "Mon, ", "Sun, ", "Fri, ", "mon, ", "Mon ", "Xyz, "]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split() + ["jan", "NOV", "Foo"]


@settings(max_examples=2000, deadline=None)
@given(
    weekday=st.sampled_from(WEEKDAYS),
    day=st.integers(0, 32),
    month=st.sampled_from(MONTHS),
    year=st.sampled_from(["2026", "1999", "0099", "99", "3000", "1000", "2026x"]),
    hms=st.tuples(st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)),
    sign=st.sampled_from("+-"),
    tz=st.tuples(st.integers(0, 25), st.integers(0, 99)),
    tail=st.sampled_from(["", " (UTC)", " ", "x"]),
    lead=st.sampled_from(["", " "]),
)
def test_a_date_reads_as_the_email_package_reads_it(weekday, day, month, year, hms, sign, tz, tail, lead):
    clock = "{:02d}:{:02d}:{:02d}".format(*hms)
    value = f"{lead}{weekday}{day:02d} {month} {year} {clock} {sign}{tz[0]:02d}{tz[1]:02d}{tail}"
    notes: list[str] = []
    got = parse_date(value, notes)
    expected, expected_notes = general_reading(value)
    assert (got, notes) == (expected, expected_notes)
    if got is not None:
        assert got.utcoffset() == timedelta(0)


def test_the_usual_form_is_read_without_the_general_parse():
    assert _plain_date("Mon, 23 Nov 2026 16:53:05 +0530") == datetime(
        2026, 11, 23, 16, 53, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))
    )
    assert _plain_date("23 Nov 2026 16:53:05 -0000") is None  # no zone known: the general parse says
    assert _plain_date("Mon, 31 Feb 2026 16:53:05 +0000") is None  # out of range: refused there
    assert parse_date("Mon, 23 Nov 2026 16:53:05 -0000", []) == datetime(2026, 11, 23, 16, 53, 5, tzinfo=UTC)
    notes: list[str] = []
    assert parse_date("Mon, 31 Feb 2026 16:53:05 +0000", notes) is None
    assert notes == ["unparseable Date header"]
