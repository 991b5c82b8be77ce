"""Amazon SNS message authentication: signature versions 1 and 2, pinned certificate hosts, and
the subscription handshake; the one provider check that does I/O.

The signing certificate is fetched over HTTPS, and only from a URL whose host matches
SNS_CERT_HOSTS; a SubscriptionConfirmation is confirmed only for a pinned topic (the
provider's ``verify`` checked the pin before) and only after its signature verified. No
request ever goes to any other host.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import ssl
import threading
import urllib.request
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.settings import Settings
from parsers.providers import AuthError, Forbidden

log = logging.getLogger("donebox.inbound")

FETCH_TIMEOUT_S = 5.0
MAX_CERT_BYTES = 64 * 1024
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SUBSCRIPTION_FIELDS,
    "UnsubscribeConfirmation": _SUBSCRIPTION_FIELDS,
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_cache: dict[str, rsa.RSAPublicKey] = {}
_cache_lock = threading.Lock()


def reset() -> None:
    """Forget the fetched certificates (a key is kept per URL for the life of the process)."""
    with _cache_lock:
        _cache.clear()


def host_allowed(url: str, patterns: tuple[str, ...]) -> bool:
    """True when ``url`` is https and its host[:port] matches a pattern (``*`` = one DNS label)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or parts.username or parts.password or not parts.hostname:
        return False
    netloc = parts.hostname.lower() + (f":{port}" if port else "")
    for pattern in patterns:
        rx = re.escape(pattern.lower()).replace(r"\*", r"[a-z0-9-]+")
        if re.fullmatch(rx, netloc):
            return True
    return False


def string_to_sign(doc: dict) -> bytes:
    """The canonical "Name\\nvalue\\n" string SNS signs for this message type."""
    fields = _FIELDS.get(doc.get("Type", ""))
    if fields is None:
        raise AuthError(f"unknown SNS message type {str(doc.get('Type'))[:40]!r}")
    out = []
    for name in fields:
        value = doc.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise AuthError(f"SNS message lacks {name}")
        if not isinstance(value, str):
            raise AuthError(f"SNS field {name} is not a string")
        out.append(f"{name}\n{value}\n")
    return "".join(out).encode()


def _https(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.sns_ca_file or None)


def _get(url: str, settings: Settings, limit: int) -> bytes:
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_https(settings)), _NoRedirect())
    with opener.open(url, timeout=FETCH_TIMEOUT_S) as resp:
        return resp.read(limit + 1)[:limit]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to a host we did not allow: refuse to follow it."""

    def redirect_request(self, *args, **kwargs):
        return None


def signing_key(url: str, settings: Settings) -> rsa.RSAPublicKey:
    """The RSA public key of the certificate at ``url`` (allowed hosts only), cached per URL."""
    if not host_allowed(url, settings.sns_cert_hosts) or not urlsplit(url).path.endswith(".pem"):
        raise AuthError("SigningCertURL is not an https .pem URL on an allowed SNS host")
    with _cache_lock:
        if url in _cache:
            return _cache[url]
    try:
        pem = _get(url, settings, MAX_CERT_BYTES)
        key = x509.load_pem_x509_certificate(pem).public_key()
    except (OSError, ValueError) as e:
        raise CertUnavailable(f"cannot fetch the SNS signing certificate: {type(e).__name__}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise AuthError("the SNS signing certificate does not hold an RSA key")
    with _cache_lock:
        if len(_cache) > 100:
            _cache.clear()
        _cache[url] = key
    return key


class CertUnavailable(Exception):
    """Raised when the signing certificate cannot be fetched now (a transient fault: answer 503)."""


def verify(doc: dict, settings: Settings) -> None:
    """Check an SNS message's signature (versions 1 and 2); raises AuthError or CertUnavailable."""
    hash_cls = _HASHES.get(str(doc.get("SignatureVersion", "")))
    if hash_cls is None:
        raise AuthError("unsupported SNS SignatureVersion (1 and 2 are)")
    try:
        signature = base64.b64decode(str(doc.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("malformed SNS Signature") from None
    message = string_to_sign(doc)
    key = signing_key(str(doc.get("SigningCertURL", "")), settings)
    try:
        key.verify(signature, message, padding.PKCS1v15(), hash_cls())
    except InvalidSignature:
        raise AuthError("SNS signature does not verify") from None


def confirm_subscription(doc: dict, settings: Settings) -> None:
    """Visit the SubscribeURL of a verified confirmation for an allowed topic; raises AuthError."""
    url = str(doc.get("SubscribeURL", ""))
    if not host_allowed(url, settings.sns_cert_hosts):
        raise AuthError("SubscribeURL is not on an allowed SNS host")
    try:
        _get(url, settings, 64 * 1024)
    except OSError as e:
        raise CertUnavailable(f"confirming the subscription failed: {type(e).__name__}") from None


def preflight(doc: dict, settings: Settings, *, pinned: bool, setting: str) -> dict | None:
    """Check an SNS message's signature (unless SES_VERIFY_SIGNATURES is off) and answer the
    subscription handshake: the JSON to answer with when the message carries no notification,
    else None. ``pinned``: ``setting`` pins topics. Raises AuthError, Forbidden or CertUnavailable."""
    if settings.ses_verify_signatures:
        verify(doc, settings)
    kind = doc.get("Type")
    if kind == "SubscriptionConfirmation":
        if not (settings.ses_verify_signatures and pinned):
            raise Forbidden(f"not confirmed: confirming needs {setting} and SES_VERIFY_SIGNATURES on")
        confirm_subscription(doc, settings)
        log.info("confirmed the SNS subscription to %s", doc.get("TopicArn"))
        return {"confirmed": True}
    if kind == "UnsubscribeConfirmation":
        log.warning("SNS says %s was unsubscribed", doc.get("TopicArn"))
        return {"unsubscribed": True}
    return None
