"""A real aiosmtpd server on loopback for the transport tests: plain, STARTTLS or implicit TLS, AUTH."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# recipient local part -> the reply RCPT gets
RCPT_REPLIES = {
    "later": "451 4.3.0 try again later",
    "nouser": "550 5.1.1 no such user",
    "blocked": "550 5.7.1 your sender is blocked",
    "greylist": "450 4.7.1 greylisted",
}


class Recorder:
    """The handler: keeps every accepted envelope and the sessions it saw."""

    def __init__(self):
        self.envelopes = []
        self.sessions = set()
        self.data_reply = "250 2.0.0 Ok: queued as ABC123"
        self.blocked_domains: set[str] = set()
        self.pipelining = False  # say PIPELINING at EHLO (aiosmtpd reads pipelined commands in turn)
        self.data_delay_s = 0.0  # how late the reply to each message's content comes (a remote server)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd does itself for a handler without this hook
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.sessions.add(id(session))
        if address.rpartition("@")[2] in self.blocked_domains:
            return "550 5.7.1 mail from your IP is blocked for this domain"
        reply = RCPT_REPLIES.get(address.split("@")[0])
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
        return self.data_reply


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def authenticator(users: dict[str, str]):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    return check


def free_port(hostname: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((hostname, 0))
        return s.getsockname()[1]


def start(
    *,
    tls: str = "none",
    cert: tuple[Path, Path] | None = None,
    users: dict | None = None,
    port=0,
    handler=None,
    smtputf8: bool = True,
    hostname: str = "127.0.0.1",
    pipelining: bool = False,
):
    """A started Controller on ``hostname`` (a free port unless given); ``.handler`` is the Recorder,
    saying PIPELINING at EHLO when ``pipelining`` (a ``handler`` given keeps its own setting)."""
    if handler is None:
        handler = Recorder()
        handler.pipelining = pipelining
    kwargs = {}
    context = None
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, cert))
    if tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if users is not None:
        kwargs.update(
            authenticator=authenticator(users), auth_required=True, auth_require_tls=tls == "starttls"
        )
    controller = Controller(
        handler,
        hostname=hostname,
        port=port or free_port(hostname),
        ssl_context=context if tls == "implicit" else None,
        enable_SMTPUTF8=smtputf8,
        **kwargs,
    )
    controller.start()
    return controller
