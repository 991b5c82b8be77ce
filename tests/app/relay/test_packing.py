"""The relay's kept bytes: packed as Zstandard, and rows an earlier version kept as zlib still read."""

from __future__ import annotations

import threading
import zlib

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
