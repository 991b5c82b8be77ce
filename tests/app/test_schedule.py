from datetime import UTC, date, datetime

from app.schedule import local_midnight_after, next_occurrence, previous_workday

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
