"""A stand-in for Amazon SNS's certificate host: a local HTTPS server with its own CA.

It serves the signing certificate and records every request (SubscribeURL visits), and
signs SNS messages the way SNS does (SignatureVersion 1: SHA1, 2: SHA256, RSA PKCS#1 v1.5).
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from app.inbound.sns import string_to_sign


@cache
def rsa_key(which: str) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key per role, generated once per test session (generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer: str, issuer_key, *, ca: bool, san: list | None = None):
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def tls_files(tmp: Path) -> tuple[Path, Path, Path]:
    """(certificate, key, CA) files for a TLS server called "localhost", signed by a test CA."""
    ca_key = rsa_key("ca")
    ca = _cert("donebox test CA", ca_key, "donebox test CA", ca_key, ca=True)
    key = rsa_key("tls")
    cert = _cert("localhost", key, "donebox test CA", ca_key, ca=False, san=[x509.DNSName("localhost")])
    paths = (tmp / "server.pem", tmp / "server.key", tmp / "ca.pem")
    paths[0].write_bytes(_pem(cert))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[2].write_bytes(_pem(ca))
    return paths


class FakeSNS:
    """The HTTPS server; ``url(path)`` builds URLs on it, ``requests`` lists the paths asked for."""

    def __init__(self, tmp: Path):
        ca_key = rsa_key("ca")
        ca = _cert("donebox test CA", ca_key, "donebox test CA", ca_key, ca=True)
        tls_key = rsa_key("tls")
        tls = _cert(
            "localhost", tls_key, "donebox test CA", ca_key, ca=False, san=[x509.DNSName("localhost")]
        )
        self.signing_key = rsa_key("signing")
        self.signing_cert = _pem(
            _cert("sns.amazonaws.com", self.signing_key, "donebox test CA", ca_key, ca=False)
        )
        self.ca_file = tmp / "ca.pem"
        self.ca_file.write_bytes(_pem(ca))
        (tmp / "tls.pem").write_bytes(
            _pem(tls)
            + tls_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                fake.requests.append(self.path)
                body = fake.signing_cert if self.path.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp / "tls.pem")
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.host = f"localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"

    def sign(self, doc: dict, version: str = "1", key=None) -> dict:
        """``doc`` with SignatureVersion, SigningCertURL and Signature set as SNS would."""
        doc = dict(
            doc, SignatureVersion=version, SigningCertURL=self.url("/SimpleNotificationService-test.pem")
        )
        algo = hashes.SHA1() if version == "1" else hashes.SHA256()
        sig = (key or self.signing_key).sign(string_to_sign(doc), padding.PKCS1v15(), algo)
        return dict(doc, Signature=base64.b64encode(sig).decode())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
