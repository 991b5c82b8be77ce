"""Bytes the relay keeps compressed: the log's copy of each message sent, a composed message's
body, a shared render's HTML and tracking plan while a worker holds them.

``pack`` writes a Zstandard frame (level 1): over 400 messages of the realistic mix it took 26.8
us a message where zlib at level 1 took 89.3, and made them 5.18 times smaller where zlib did 5.13
(``codec_*`` of ``bench/outbound.py --steps 2000``). ``unpack`` reads those, and the zlib
streams that rows written before it still hold (a Zstandard frame begins with its magic number,
a zlib stream never does).

Zstandard's contexts serve one thread at a time: each thread has its own.
"""

from __future__ import annotations

import threading
import zlib

import zstandard

LEVEL = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # RFC 8878 3.1.1: every Zstandard frame begins with 0xFD2FB528
_contexts = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    found = getattr(_contexts, "compressor", None)
    if found is None:
        found = _contexts.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found = getattr(_contexts, "decompressor", None)
    if found is None:
        found = _contexts.decompressor = zstandard.ZstdDecompressor()
    return found


def pack(data: bytes) -> bytes:
    """``data`` as one Zstandard frame (its size written in the header), in bytes of its own size.

    ``compress`` makes its bytes as large as the worst case and shrinks them, and the memory stays
    with them (tests/app/relay/test_packing.py): a worker keeps hundreds of packed renders, and
    its RSS over ``bench/outbound.py --soak 150`` rose to 170.0 MB where zlib's reached 139.9."""
    return bytes(memoryview(_compressor().compress(data)))


def unpack(packed: bytes) -> bytes:
    """What ``pack`` packed, or what zlib compressed (rows kept before Zstandard)."""
    if packed[:4] == ZSTD_MAGIC:
        return _decompressor().decompress(packed)
    return zlib.decompress(packed)
