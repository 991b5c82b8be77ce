"""DKIM signing: dkimpy's parse, header list and folding, ``cryptography`` does the key step.

dkimpy computes RSA in pure Python (milliseconds per RSA-2048 signature, the most
expensive step of a send). ``sign_raw`` follows dkimpy's own ``DKIM.sign`` tag for
tag (same fields, same folding, same header hashing) and swaps the private key
operation for OpenSSL's; its header hash canonicalizes only the fields it signs (dkimpy
canonicalizes every field, then picks), with each name lower-cased once. Its output is
byte-identical to dkimpy's
(tests/app/relay/test_dkim.py proves it). Keys live in ``DKIM_DIR/<domain>/<selector>.pem``
(PKCS#8, RSA or Ed25519) and, for sending domains, in the database (app.relay.domains); every
key of the From domain signs, so a domain with both kinds gets both signatures (RFC 8463).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import Simple
from dkim.crypto import HASH_ALGORITHMS

CANONICALIZE = (b"relaxed", b"simple")  # dkimpy's default
CACHE_S = 60.0  # how long a domain's keys are kept in memory before the folder is read again


@dataclass(frozen=True)
class Key:
    """One signing key of a domain."""

    domain: str
    selector: str
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if isinstance(self.private, rsa.RSAPrivateKey) else b"ed25519-sha256"


def _key_step(key: Key, digest: bytes) -> bytes:
    if isinstance(key.private, rsa.RSAPrivateKey):
        return key.private.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    return key.private.sign(digest)  # RFC 8463: Ed25519 signs the SHA-256 of the header hash input


# what dkimpy's DKIM.default_sign_headers signs: RFC 6376's list, From once more (no From can be added)
_SIGNED = frozenset(dkimpy.DKIM.SHOULD) | frozenset(dkimpy.DKIM.FROZEN)
_FROZEN = frozenset(dkimpy.DKIM.FROZEN)
_UNFOLD = re.compile(rb"\r?\n")
_WSP = re.compile(rb"[\t ]+")


def _include(headers: list) -> tuple[bytes, ...]:
    """dkimpy's DKIM.default_sign_headers, lower-cased: the fields to sign, in message order."""
    names = [name.lower() for name, _ in headers if name.lower() in _SIGNED]
    return tuple(names + [n for n in names if n in _FROZEN])


def _select(headers: list, include: tuple[bytes, ...]) -> list:
    """dkimpy's select_headers (each name of ``include`` takes the last not yet taken field of that
    name, from the bottom up), with each field's name lower-cased once rather than at every look."""
    lowered = [name.lower() for name, _ in headers]
    chosen, last = [], {}
    for h in include:
        i = last.get(h, len(headers))
        while i > 0:
            i -= 1
            if lowered[i] == h:
                chosen.append(headers[i])
                break
        last[h] = i
    return chosen


def _relaxed(name: bytes, value: bytes) -> bytes:
    """``name:value`` in relaxed header canonicalization (RFC 6376 3.4.2), as dkimpy's Relaxed."""
    unfolded = value.replace(b"\r\n", b"")  # what _UNFOLD takes from a value without a lone LF
    if b"\n" in unfolded:  # a lone LF (replace leaves every one)
        unfolded = _UNFOLD.sub(b"", value)
    if b"\t" in unfolded or b"  " in unfolded:  # else every run of white space is one space already
        unfolded = _WSP.sub(b" ", unfolded)
    return name.lower().rstrip() + b":" + unfolded.strip()


def _signature(d: Parsed | dkimpy.DKIM, key: Key, include_headers: tuple[bytes, ...], now: int) -> bytes:
    """dkimpy's DKIM.sign + gen_header (relaxed/simple), with the key step from cryptography and the
    header hash (dkimpy's hash_headers) over only the fields it signs."""
    domain, selector = key.domain.encode(), key.selector.encode()
    hasher = HASH_ALGORITHMS[key.algorithm]
    bodyhash = base64.b64encode(hasher(Simple.canonicalize_body(d.body)).digest())
    fields = [
        (b"v", b"1"),
        (b"a", key.algorithm),
        (b"c", b"/".join(CANONICALIZE)),
        (b"d", domain),
        (b"i", b"@" + domain),
        (b"q", b"dns/txt"),
        (b"s", selector),
        (b"t", str(now).encode("ascii")),
        (b"h", b" : ".join(include_headers)),
        (b"bh", bodyhash),
        (b"b", b"0" * 60),
    ]
    name = b"DKIM-Signature"
    value = dkimpy.fold(b"; ".join(b"=".join(x) for x in fields), namelen=len(name), linesep=b"\r\n")
    value = dkimpy.RE_BTAG.sub(b"\\1", value)
    signed = [_relaxed(n, v) + b"\r\n" for n, v in _select(d.headers, include_headers)]
    # the signature's own field is hashed last, its b= empty and without its line end
    signed.append(_relaxed(name, dkimpy.RE_BTAG.sub(b"\\1", b" " + value)))
    digest = hasher(b"".join(signed)).digest()
    fields[-1] = (b"b", base64.b64encode(_key_step(key, digest)))
    value = b"; ".join(b"=".join(x) for x in fields) + b"\r\n"
    return name + b": " + dkimpy.fold(value, namelen=len(name), linesep=b"\r\n")


class Parsed(NamedTuple):
    """What signing reads of a message: its fields as dkimpy's parse gives them ([name, value]
    lists, each value with its folds and line end) and its body."""

    headers: list
    body: bytes


_FIELD_NAME = re.compile(rb"[\x21-\x7e]+")


def _fields(block: bytes) -> list | None:
    """dkimpy's rfc822_parse fields of a header block of CRLF lines (without the blank line that
    ends it), or None for a block it would read otherwise (an empty line, a "From " line, a line
    it refuses, a fold before any field): then dkimpy's own parse runs. One ``find`` a line where
    dkimpy tries a pattern from the line's start."""
    fields: list = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += line + b"\r\n"
            continue
        colon = line.find(b":")
        if colon <= 0 or not _FIELD_NAME.fullmatch(line, 0, colon):
            return None
        fields.append([line[:colon], line[colon + 1 :] + b"\r\n"])
    return fields


def _parsed(raw: bytes) -> Parsed | dkimpy.DKIM:
    """dkimpy's parse of ``raw`` (headers and body). When every line ends in CRLF, dkimpy's line
    split of the body would give the body back as it is, and its reading of the header block is
    ``_fields``: only where that declines does dkimpy parse."""
    end = raw.find(b"\r\n\r\n")
    if end > 0 and raw.count(b"\n") == raw.count(b"\r\n"):
        fields = _fields(raw[:end])
        if fields is not None:
            return Parsed(fields, raw[end + 4 :])
        d = dkimpy.DKIM(raw[: end + 4])
        d.body = raw[end + 4 :]
        return d
    return dkimpy.DKIM(raw)


def sign_raw(raw: bytes, keys: list[Key], *, now: int | None = None) -> bytes:
    """``raw`` (CRLF) with one DKIM-Signature per key prepended; unchanged when ``keys`` is empty."""
    if not keys:
        return raw
    d = _parsed(raw)
    include = _include(d.headers)
    now = int(time.time()) if now is None else now
    # Ed25519 last so it ends up on top: receivers that know it see it first
    ordered = sorted(keys, key=lambda k: k.algorithm == b"ed25519-sha256")
    return b"".join(_signature(d, k, include, now) for k in reversed(ordered)) + raw


# ---------------------------------------------------------------- keys on disk


@lru_cache(maxsize=256)
def private_key(pem: bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """The private key of ``pem`` (PKCS#8), parsed once per process. ``cryptography`` checks an
    RSA key as it loads it, which takes far longer than a signature, and the caches of keys
    (``KeyStore``, app.relay.domains) read the files and rows again every CACHE_S: each of a
    worker's threads that found them expired parsed every key of the domain again. A key that
    changed is new bytes, so it is parsed. ValueError for a key that is neither RSA nor Ed25519."""
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("DKIM keys are RSA or Ed25519")
    return private


def load_key(path: Path, domain: str) -> Key:
    """The key in ``path`` (PKCS#8 PEM); its selector is the file name."""
    try:
        private = private_key(path.read_bytes())
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
    return Key(domain=domain, selector=path.stem, private=private)


class KeyStore:
    """Per-domain keys from ``DKIM_DIR``, cached in memory for CACHE_S seconds."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._cache: dict[str, tuple[float, list[Key]]] = {}
        self._lock = threading.Lock()

    def keys(self, domain: str) -> list[Key]:
        """Every key of ``domain`` (lower-case, IDNA); empty when it has none."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(domain)
            if hit and now - hit[0] < CACHE_S:
                return hit[1]
        folder = self.folder / domain
        found = [load_key(p, domain) for p in sorted(folder.glob("*.pem"))] if folder.is_dir() else []
        with self._lock:
            self._cache[domain] = (now, found)
        return found


_STORES: dict[Path, KeyStore] = {}


def key_store(folder: Path) -> KeyStore:
    """The process's KeyStore for ``folder``."""
    folder = Path(folder)
    if folder not in _STORES:
        _STORES[folder] = KeyStore(folder)
    return _STORES[folder]


def generate(folder: Path, domain: str, selector: str, kind: str = "rsa") -> tuple[Path, str]:
    """Write a new key to ``folder/<domain>/<selector>.pem``; returns (path, DNS TXT record value)."""
    private = new_private_key(kind)
    path = Path(folder) / domain / f"{selector}.pem"
    if path.exists():
        raise FileExistsError(f"{path} exists: pick another selector")
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return path, txt_record(private)


def new_private_key(kind: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """A new signing key: ``rsa`` (2048 bits) or ``ed25519``; ValueError for another kind."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key type must be rsa or ed25519, not {kind!r}")


def txt_record(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The ``v=DKIM1; k=...; p=...`` value to publish at ``<selector>._domainkey.<domain>``."""
    if isinstance(private, rsa.RSAPrivateKey):
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
