import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from app.relay import dkim, verp
from app.relay.render import build_message
from tests.conftest import FIXED_NOW

NOW_TS = int(FIXED_NOW.timestamp())


def message() -> bytes:
    return build_message(
        from_addr="news@example.org",
        from_name="Ünïcode Team",
        to="ada@example.com",
        subject="What Rocket got done — Grüße",
        text="one\n.\ntwo " * 50,
        html="<p>é</p>" * 30,
        message_id="<id1@example.org>",
        date=FIXED_NOW,
        headers={"Reply-To": "reply+x@reply.test"},
    )[0]


@pytest.fixture
def keys(tmp_path):
    """An RSA-2048 and an Ed25519 key for example.org, with their DNS records."""
    records = {}
    for selector, kind in (("s-rsa", "rsa"), ("s-ed", "ed25519")):
        _, txt = dkim.generate(tmp_path, "example.org", selector, kind)
        records[f"{selector}._domainkey.example.org."] = txt.encode()
    return dkim.KeyStore(tmp_path).keys("example.org"), records


def verify_all(signed: bytes, records: dict) -> list[bool]:
    d = dkimpy.DKIM(signed)
    n = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")

    def dns(name, timeout=5):
        return records.get(name.decode() if isinstance(name, bytes) else name)

    def one(i):
        try:
            return dkimpy.DKIM(signed).verify(idx=i, dnsfunc=dns)
        except dkimpy.DKIMException:
            return False

    return [one(i) for i in range(n)]


def test_the_rsa_signature_is_byte_identical_to_dkimpys_own(keys, monkeypatch):
    ks, _ = keys
    rsa_key = next(k for k in ks if k.algorithm == b"rsa-sha256")
    pem = rsa_key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    raw = message()
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS)
    theirs = dkimpy.sign(raw, b"s-rsa", b"example.org", pem)
    ours = dkim.sign_raw(raw, [rsa_key], now=NOW_TS)
    assert ours == theirs + raw


def test_the_ed25519_signature_is_byte_identical_to_dkimpys_own(keys, monkeypatch):
    ks, _ = keys
    ed = next(k for k in ks if k.algorithm == b"ed25519-sha256")
    seed = ed.private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    import base64

    raw = message()
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS)
    theirs = dkimpy.sign(
        raw, b"s-ed", b"example.org", base64.b64encode(seed), signature_algorithm=b"ed25519-sha256"
    )
    assert dkim.sign_raw(raw, [ed], now=NOW_TS) == theirs + raw


def test_a_domain_with_both_keys_gets_both_signatures_and_dkimpy_verifies_each(keys):
    ks, records = keys
    signed = dkim.sign_raw(message(), ks)
    assert signed.count(b"DKIM-Signature:") == 2
    assert b"a=ed25519-sha256" in signed and b"a=rsa-sha256" in signed
    assert verify_all(signed, records) == [True, True]


def test_a_tampered_message_fails_verification(keys):
    ks, records = keys
    signed = dkim.sign_raw(message(), ks).replace(b"two", b"TWO", 1)
    assert verify_all(signed, records) == [False, False]


def test_a_domain_without_keys_is_sent_unsigned(tmp_path):
    raw = message()
    assert dkim.sign_raw(raw, dkim.KeyStore(tmp_path).keys("example.org")) == raw


def test_a_key_read_again_once_its_cache_expired_is_parsed_only_when_it_changed(tmp_path, parsed_pems):
    """Every CACHE_S the key files are read again; parsing an RSA key is what costs, and is done
    once per key a process: a key replaced under the same name is parsed anew and signs."""
    parsed = parsed_pems  # every read below finds the cache expired
    dkim.generate(tmp_path, "example.org", "s1")
    store = dkim.KeyStore(tmp_path)
    first, again = store.keys("example.org"), store.keys("example.org")
    assert len(parsed) == 1 and again[0].private is first[0].private
    (tmp_path / "example.org" / "s1.pem").unlink()
    _, txt = dkim.generate(tmp_path, "example.org", "s1")
    replaced = store.keys("example.org")
    assert len(parsed) == 2 and replaced[0].private is not first[0].private
    signed = dkim.sign_raw(message(), replaced, now=NOW_TS)
    assert verify_all(signed, {"s1._domainkey.example.org.": txt.encode()}) == [True]


def test_keygen_refuses_to_overwrite_a_key(tmp_path):
    dkim.generate(tmp_path, "example.org", "s1")
    with pytest.raises(FileExistsError):
        dkim.generate(tmp_path, "example.org", "s1")


def test_keygen_prints_the_record_and_the_pipeline_signs_with_it(team, capsys, monkeypatch):
    import re

    from app.cli import main
    from app.relay.pipeline import deliver
    from app.relay.transports.memory import MemoryTransport
    from tests.app.relay.test_pipeline import reminder_for

    assert main(["dkim", "keygen", "mail.test"]) == 0
    assert main(["dkim", "keygen", "mail.test", "--type", "ed25519"]) == 0
    out = capsys.readouterr().out
    records = {}
    for name, quoted in re.findall(r"^(\S+) IN TXT (.+)$", out, re.M):
        records[name] = "".join(re.findall(r'"([^"]*)"', quoted)).encode()
    assert set(records) == {"donebox-rsa._domainkey.mail.test.", "donebox-ed25519._domainkey.mail.test."}
    t = MemoryTransport()
    assert deliver(reminder_for(), transport=t, now=FIXED_NOW) == "sent"
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS + 60)  # signed at the fixed clock's time
    assert verify_all(t.outgoing[0].raw, records) == [True, True]


def test_a_routed_digest_over_starttls_arrives_signed_tracked_and_verifiable(team, tmp_path, monkeypatch):
    """The whole relay at once: sender row, STARTTLS + AUTH, tracking, DKIM verified at the receiver."""
    from datetime import date

    from sqlalchemy import select

    from app.checkins.outgoing import create_digest
    from app.checkins.teams import update_team
    from app.db import session
    from app.models import Member, Sender, Team
    from app.relay.pipeline import deliver
    from app.relay.transports import close_all
    from app.relay.transports.memory import MemoryTransport
    from app.settings import get_settings
    from tests.app.relay.transports import smtp_server

    _, txt = dkim.generate(get_settings().dkim_dir, "mail.test", "sel")
    cert = smtp_server.make_cert(tmp_path)
    c = smtp_server.start(tls="starttls", cert=cert, users={"relay": "pw"})
    try:
        with session() as s:
            s.add(Sender(name="tls", url=f"smtp://relay:pw@127.0.0.1:{c.port}?tls=starttls&ca={cert[0]}"))
            ada = s.execute(select(Member).where(Member.email == "ada@example.com")).scalar_one()
            update_team(
                s, team.id, now=FIXED_NOW, tracking=True
            )  # tracking is the team's choice, off by default
            mid, _ = create_digest(
                s, ada, s.get(Team, team.id), date(2026, 11, 20), now=FIXED_NOW, settings=get_settings()
            )
        assert deliver(mid, transport=MemoryTransport(), now=FIXED_NOW) == "sent"
    finally:
        close_all()
        c.stop()
    (env,) = c.handler.envelopes
    raw = env.original_content
    assert env.mail_from == verp.address(mid, "reply.test", get_settings().secret_key)  # VERP
    assert env.rcpt_tos == ["ada@example.com"]
    assert b"/t/o/" in raw and b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS + 60)
    assert verify_all(raw, {"sel._domainkey.mail.test.": txt.encode()}) == [True]


LINES = [b"A: b", b" folded", b"\tfolded", b"", b"body.", b"x\ry", b"\n", b"\r", b"From x", b"B:", b":c"]
LINES += [b"Sub ject: d", b"X-\xc3\xa9: e", b"A:b:c", b"\x7f: f", b"C\t: g", b"D :h"]


@given(st.lists(st.sampled_from(LINES), max_size=12), st.booleans())
def test_the_quick_parse_gives_what_dkimpys_own_parse_gives(parts, fold_first):
    """Fields, folds, names dkimpy refuses or reads otherwise, "From " lines, line ends of every
    kind, a fold before the first field."""
    first = b" folded\r\n" if fold_first else b""
    raw = first + b"From: a@example.org\r\nTo: b@example.org\r\n" + b"\r\n".join(parts)
    try:
        theirs = dkimpy.DKIM(raw)
    except (dkimpy.MessageFormatError, IndexError) as e:  # IndexError: a fold before any field
        with pytest.raises(type(e)):
            dkim._parsed(raw)
        return
    ours = dkim._parsed(raw)
    assert (ours.headers, ours.body) == (theirs.headers, theirs.body)


@given(
    st.binary(max_size=4), st.lists(st.sampled_from([b" ", b"  ", b"\t", b"\r", b"\n", b"\r\n", b"a", b":"]))
)
def test_the_relaxed_field_is_dkimpys(name, pieces):
    """A field in relaxed canonicalization, as dkimpy makes it: lone CRs and LFs, CRLFs, runs of
    spaces and tabs anywhere in the value."""
    value = b"".join(pieces)
    ((lower, canonical),) = Relaxed.canonicalize_headers([(b"Name" + name, value)])
    assert dkim._relaxed(b"Name" + name, value) == lower + b":" + canonical.removesuffix(b"\r\n")


def test_a_message_with_bare_line_feeds_is_signed_as_dkimpy_signs_it(keys, monkeypatch):
    ks, _ = keys
    rsa_key = next(k for k in ks if k.algorithm == b"rsa-sha256")
    pem = rsa_key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    raw = message().replace(b"\r\n", b"\n")
    monkeypatch.setattr(dkimpy.time, "time", lambda: NOW_TS)
    assert dkim.sign_raw(raw, [rsa_key], now=NOW_TS) == dkimpy.sign(raw, b"s-rsa", b"example.org", pem) + raw
