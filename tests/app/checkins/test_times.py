from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.checkins.times import (
    Pause,
    ScheduleError,
    check_time,
    check_timezone,
    check_weekdays,
    local_midnight_after,
    next_occurrence,
    previous_workday,
)

BERLIN = "Europe/Berlin"


def test_the_next_reminder_is_today_when_its_time_has_not_come():
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday 11:00 in Berlin
    assert next_occurrence(now, "17:00", "12345", BERLIN) == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


def test_friday_evening_moves_on_to_monday():
    now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # Friday 18:00 Berlin, after the 17:00 reminder
    assert next_occurrence(now, "17:00", "12345", BERLIN) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_a_time_in_the_spring_forward_gap_fires_at_the_first_valid_minute():
    # 2026-03-29: Berlin clocks jump from 02:00 to 03:00; 02:30 does not exist
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    when = next_occurrence(now, "02:30", "1234567", BERLIN)
    assert when == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 local, once
    assert next_occurrence(when, "02:30", "1234567", BERLIN) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_a_time_in_the_fall_back_fold_fires_once_at_its_first_occurrence():
    # 2026-10-25: Berlin clocks go from 03:00 back to 02:00; 02:30 happens twice
    now = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    first = next_occurrence(now, "02:30", "1234567", BERLIN)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert next_occurrence(first, "02:30", "1234567", BERLIN) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_the_digest_covers_the_previous_workday():
    assert previous_workday(date(2026, 11, 30), "12345") == date(2026, 11, 27)  # Monday -> Friday
    assert previous_workday(date(2026, 11, 25), "12345") == date(2026, 11, 24)


def test_a_reminder_day_ends_at_local_midnight():
    assert local_midnight_after(date(2026, 11, 23), BERLIN) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


# ---------------------------------------------------------------- more zones, pauses, weekday sets

NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"  # DST moves the clock by 30 minutes
KOLKATA = "Asia/Kolkata"  # no DST, a half-hour offset


def test_new_york_spring_forward_gap_fires_at_three_once():
    # 2026-03-08: 02:00 -> 03:00 in New York
    now = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    when = next_occurrence(now, "02:15", "1234567", NEW_YORK)
    assert when == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert next_occurrence(when, "02:15", "1234567", NEW_YORK) == datetime(2026, 3, 9, 6, 15, tzinfo=UTC)


def test_new_york_fall_back_fold_fires_once_at_the_first_one_thirty():
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice
    now = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    first = next_occurrence(now, "01:30", "1234567", NEW_YORK)
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = next_occurrence(first, "01:30", "1234567", NEW_YORK)
    assert second == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)  # not 06:30 the same day


def test_lord_howe_half_hour_gap_fires_at_the_first_valid_minute():
    # 2026-10-04: 02:00 -> 02:30 on Lord Howe Island (+10:30 -> +11)
    now = datetime(2026, 10, 3, 0, 0, tzinfo=UTC)
    when = next_occurrence(now, "02:15", "1234567", LORD_HOWE)
    assert when == datetime(2026, 10, 3, 15, 30, tzinfo=UTC)  # 02:30 local, +11
    assert next_occurrence(when, "02:15", "1234567", LORD_HOWE) == datetime(2026, 10, 4, 15, 15, tzinfo=UTC)


def test_lord_howe_half_hour_fold_fires_once():
    # 2026-04-05: 02:00 (+11) -> 01:30 (+10:30); 01:45 happens twice
    now = datetime(2026, 4, 4, 0, 0, tzinfo=UTC)
    first = next_occurrence(now, "01:45", "1234567", LORD_HOWE)
    assert first == datetime(2026, 4, 4, 14, 45, tzinfo=UTC)
    assert next_occurrence(first, "01:45", "1234567", LORD_HOWE) == datetime(2026, 4, 5, 15, 15, tzinfo=UTC)


def test_a_zone_without_dst_keeps_its_offset_all_year():
    for month in (1, 4, 7, 10):
        now = datetime(2026, month, 5, 0, 0, tzinfo=UTC)  # a Monday-ish; every day is a workday
        when = next_occurrence(now, "18:00", "1234567", KOLKATA)
        assert (when.hour, when.minute) == (12, 30)


def test_every_occurrence_over_a_year_is_distinct_and_at_the_local_time_or_after_a_gap():
    for tz in (BERLIN, NEW_YORK, LORD_HOWE, KOLKATA):
        when = datetime(2026, 1, 1, tzinfo=UTC)
        seen = []
        for _ in range(365):
            when = next_occurrence(when, "02:30", "1234567", tz)
            seen.append(when)
        assert len(set(seen)) == 365
        days = [w.astimezone(ZoneInfo(tz)).date() for w in seen]
        assert len(set(days)) == 365  # one per local day, never two, never none


def test_weekday_sets_skip_days_not_in_the_set():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday
    assert next_occurrence(now, "09:00", "135", BERLIN) == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # Wed
    assert next_occurrence(now, "09:00", "7", BERLIN) == datetime(2026, 11, 29, 8, 0, tzinfo=UTC)  # Sun


def test_a_pause_skips_its_days_and_resumes_after_it():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    vacation = [Pause(date(2026, 11, 23), date(2026, 12, 4))]
    assert next_occurrence(now, "17:00", "12345", BERLIN, vacation) == datetime(
        2026, 12, 7, 16, 0, tzinfo=UTC
    )
    two = [Pause(date(2026, 11, 24), date(2026, 11, 24)), Pause(date(2026, 11, 25), date(2026, 11, 26))]
    assert next_occurrence(now, "09:00", "12345", BERLIN, two) == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def test_a_pause_longer_than_the_search_horizon_means_no_next_time():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    forever = [Pause(date(2026, 11, 1), date(2040, 1, 1))]
    assert next_occurrence(now, "17:00", "12345", BERLIN, forever) is None


@pytest.mark.parametrize("bad", ["", "Mars/Base", "europe/berlin ", "../etc/passwd", "Europe/Berlin\n"])
def test_unknown_time_zones_are_refused_with_the_reason(bad):
    with pytest.raises(ScheduleError, match="time zone"):
        check_timezone(bad)


def test_times_and_weekdays_are_validated_and_canonical():
    assert check_timezone("Australia/Lord_Howe") == "Australia/Lord_Howe"
    assert check_time("07:05") == "07:05"
    assert check_weekdays("531") == "135"
    for bad in ("24:00", "7:5", "17:60", "noon", "17:00:00"):
        with pytest.raises(ScheduleError, match="HH:MM"):
            check_time(bad)
    for bad in ("", "0", "8", "112", "mon"):
        with pytest.raises(ScheduleError, match="weekdays"):
            check_weekdays(bad)
