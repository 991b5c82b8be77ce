"""What the benches read from /proc (bench/common.py) and the soaks' growth fit."""

import os
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402 - bench/ is not a package


def test_resident_sets_of_a_live_process():
    assert 0 < common.rss_mb(os.getpid()) <= common.peak_rss_mb(os.getpid())


def test_a_gone_process_reads_as_zero():
    assert common.rss_mb(2**31 - 1) == common.peak_rss_mb(2**31 - 1) == common.process_cpu_s(2**31 - 1) == 0


def test_cpu_seconds_grow_with_work():
    before = common.process_cpu_s(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert common.process_cpu_s(os.getpid()) > before


def test_a_process_group_holds_this_process():
    assert os.getpid() in common.group_pids(os.getpgid(0))


def test_growth_is_fitted_in_mb_per_minute():
    assert common.slope_mb_per_min([(t, 100 + t / 30) for t in range(0, 300, 5)]) == pytest.approx(2.0)
    assert common.slope_mb_per_min([(0, 5.0)]) == 0.0


def test_the_yardstick_is_the_cpu_time_of_its_loop():
    first = common.cpu_yardstick_s()
    t = time.process_time()
    common.cpu_yardstick_s()
    spent = time.process_time() - t  # three passes, of which it reports the best
    assert 0 < first and common.cpu_yardstick_s() <= spent


def test_a_section_is_put_in_its_place_and_apart_from_the_next(tmp_path, monkeypatch):
    path = tmp_path / "BENCHMARKS.md"
    monkeypatch.setattr(common, "BENCHMARKS", path)
    path.write_text("# Benchmarks\n\n## A\n\nold a\n\n## B\n\nb\n")
    common.put_section("## A", "## A\n\nnew a\n")  # a section that ends with one newline
    assert path.read_text() == "# Benchmarks\n\n## A\n\nnew a\n\n## B\n\nb\n"
    common.put_section("## C", "## C\n\nc\n")  # a new one goes last
    assert path.read_text() == "# Benchmarks\n\n## A\n\nnew a\n\n## B\n\nb\n\n## C\n\nc\n"
    common.put_section("## C", "## C\n\nc again\n")  # the last one, replaced
    assert path.read_text().endswith("## B\n\nb\n\n## C\n\nc again\n")
