"""The relay's kept bytes: packed as Zstandard, and rows an earlier version kept as zlib still read."""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.relay import packing


@given(st.binary(max_size=20_000))
def test_what_is_packed_unpacks_to_the_same_bytes(data):
    packed = packing.pack(data)
    assert packed.startswith(packing.ZSTD_MAGIC)
    assert packing.unpack(packed) == data


@given(st.binary(max_size=5_000), st.sampled_from([1, 6, 9]))
def test_a_zlib_stream_of_an_earlier_version_unpacks_too(data, level):
    assert packing.unpack(zlib.compress(data, level)) == data


def test_threads_packing_at_once_each_get_their_own_bytes_back():
    texts = [(f"message {i} " * 2000).encode() for i in range(8)]
    failures = []

    def run(text):
        for _ in range(200):
            if packing.unpack(packing.pack(text)) != text:
                failures.append(text[:12])

    threads = [threading.Thread(target=run, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def rss_mb() -> float:
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_what_is_packed_holds_about_its_own_size_in_memory_not_the_worst_case():
    pages = [(f"<p>digest {i} of the team</p>\n" * 400).encode() for i in range(3000)]
    before = rss_mb()
    kept = [packing.pack(page) for page in pages]
    grown = rss_mb() - before
    packed_mb = sum(map(len, kept)) / 2**20
    assert grown < 2 * packed_mb + 2, f"{grown:.1f} MB held for {packed_mb:.1f} MB packed"
