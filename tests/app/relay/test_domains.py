"""Sending domains: keys made and stored, DNS records verified against a local DNS server, check_from."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select

from app.db import session
from app.errors import RequestError
from app.models import DkimKey, SendingDomain, Team
from app.relay import domains
from app.settings import get_settings, load
from tests.conftest import FIXED_NOW, TEST_ENV


def add(domain: str = "example.org", team_id: int | None = None) -> int:
    with session() as s:
        return domains.add(s, domain, team_id, get_settings(), now=FIXED_NOW).id


def records(domain_id: int) -> list[domains.Record]:
    with session() as s:
        return domains.records(s, s.get(SendingDomain, domain_id), get_settings())


def publish(dns, domain_id: int, *, skip: tuple[str, ...] = ()) -> None:
    """Serve the domain's records from ``dns`` (all but ``skip``), and the inbound path's MX."""
    for r in records(domain_id):
        if r.key not in skip:
            dns.records[(r.name, r.type)] = [r.value]
    dns.records[("reply.test", "MX")] = ["10 mx.reply.test"]


def verify(domain_id: int) -> SendingDomain:
    with session() as s:
        row = s.get(SendingDomain, domain_id)
        domains.verify(s, row, get_settings(), now=FIXED_NOW)
    with session() as s:
        return s.get(SendingDomain, domain_id)


def statuses(row: SendingDomain) -> dict[str, str]:
    return {k: v["status"] for k, v in json.loads(row.checks).items()}


def test_adding_a_domain_stores_an_rsa_and_an_ed25519_key_and_names_every_record(db):
    did = add("Example.ORG")
    with session() as s:
        rows = s.execute(select(DkimKey).where(DkimKey.domain == "example.org")).scalars()
        stored = {k.selector: k.private_pem for k in rows}
    assert set(stored) == {"donebox-rsa", "donebox-ed25519"}
    assert all(pem.startswith("-----BEGIN PRIVATE KEY-----") for pem in stored.values())
    by_key = {r.key: r for r in records(did)}
    assert set(by_key) == {"dkim:donebox-ed25519", "dkim:donebox-rsa", "spf", "dmarc", "return_path"}
    assert by_key["dkim:donebox-rsa"].name == "donebox-rsa._domainkey.example.org"
    assert by_key["dkim:donebox-rsa"].value.startswith("v=DKIM1; k=rsa; p=")
    assert by_key["dkim:donebox-ed25519"].value.startswith("v=DKIM1; k=ed25519; p=")
    assert by_key["spf"].value == "v=spf1 include:_spf.mail.test ~all"
    assert by_key["dmarc"].name == "_dmarc.example.org"
    assert (by_key["return_path"].type, by_key["return_path"].name, by_key["return_path"].value) == (
        "CNAME",
        "bounces.example.org",
        "reply.test",
    )
    signing = domains.signing.get("example.org", get_settings())
    assert sorted(k.algorithm for k in signing.keys) == [b"ed25519-sha256", b"rsa-sha256"]
    assert signing.return_path_host == "bounces.example.org"


def test_a_domains_stored_keys_read_again_once_the_cache_expired_are_not_parsed_again(db, parsed_pems):
    add()
    parsed = parsed_pems  # every get reads the rows again
    first = domains.signing.get("example.org", get_settings())
    again = domains.signing.get("example.org", get_settings())
    assert len(parsed) == 2 and len(set(parsed)) == 2  # each stored key once
    assert [k.private for k in again.keys] == [k.private for k in first.keys]
    assert sorted(k.algorithm for k in again.keys) == [b"ed25519-sha256", b"rsa-sha256"]


def test_a_domain_with_every_record_published_is_verified(db, local_dns):
    did = add()
    publish(local_dns, did)
    row = verify(did)
    assert set(statuses(row).values()) == {"ok"}
    assert row.verified_at == FIXED_NOW and row.checked_at == FIXED_NOW
    assert domains.missing(row) == []
    assert ("donebox-rsa._domainkey.example.org", "TXT") in local_dns.resolver.questions  # it asked ours


def test_a_missing_dkim_record_is_named_and_the_domain_stays_unverified(db, local_dns):
    did = add()
    publish(local_dns, did, skip=("dkim:donebox-ed25519",))
    row = verify(did)
    assert row.verified_at is None
    assert domains.missing(row) == ["dkim:donebox-ed25519"]
    assert json.loads(row.checks)["dkim:donebox-ed25519"]["detail"] == "no DKIM record"


def test_a_record_with_the_wrong_value_is_not_verified(db, local_dns):
    did = add()
    other = add("other.example")
    publish(local_dns, did)
    rsa_name = "donebox-rsa._domainkey.example.org"
    local_dns.records[(rsa_name, "TXT")] = [
        next(r.value for r in records(other) if r.key == "dkim:donebox-rsa")  # another domain's key
    ]
    local_dns.records[("example.org", "TXT")] = ["v=spf1 include:_spf.elsewhere.example ~all"]
    local_dns.records[("bounces.example.org", "CNAME")] = ["bounces.elsewhere.example"]
    row = verify(did)
    assert row.verified_at is None
    assert statuses(row) == {
        "dkim:donebox-ed25519": "ok",
        "dkim:donebox-rsa": "wrong",
        "spf": "wrong",
        "dmarc": "ok",
        "return_path": "wrong",
    }
    checks = json.loads(row.checks)
    assert checks["spf"]["detail"] == "the SPF record does not include:_spf.mail.test"
    assert checks["return_path"]["found"] == ["bounces.elsewhere.example"]


def test_a_verified_domain_that_loses_a_record_is_unverified_at_the_next_check(db, local_dns):
    did = add()
    publish(local_dns, did)
    assert verify(did).verified_at is not None
    del local_dns.records[("_dmarc.example.org", "TXT")]
    row = verify(did)
    assert row.verified_at is None and domains.missing(row) == ["dmarc"]


def test_an_mx_of_the_inbound_path_serves_as_the_return_path(db, local_dns):
    did = add()
    publish(local_dns, did, skip=("return_path",))
    local_dns.records[("bounces.example.org", "MX")] = ["10 mx.reply.test"]
    assert statuses(verify(did))["return_path"] == "ok"


def test_a_dns_server_failing_is_an_error_verdict_not_an_exception(db, local_dns):
    did = add()
    publish(local_dns, did)
    local_dns.resolver.failing.add("_dmarc.example.org")
    row = verify(did)
    assert row.verified_at is None
    verdict = json.loads(row.checks)["dmarc"]
    assert verdict["status"] == "error" and verdict["detail"].startswith(
        "TXT _dmarc.example.org: NoNameservers"
    )
    assert statuses(row)["spf"] == "ok"


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("not a domain", "domain: "),
        ("localhost", "is not a domain name"),
        ("mail.test", "MAIL_FROM's domain"),
    ],
)
def test_a_domain_that_cannot_be_added_is_refused_naming_the_field(db, domain, reason):
    with pytest.raises(RequestError, match=reason) as e, session() as s:
        domains.add(s, domain, None, get_settings(), now=FIXED_NOW)
    assert str(e.value).startswith("domain: ")


def test_a_domain_is_added_once(db):
    add()
    with pytest.raises(RequestError, match="is a sending domain already") as e, session() as s:
        domains.add(s, "EXAMPLE.org", None, get_settings(), now=FIXED_NOW)
    assert e.value.status == 409


def test_removing_a_domain_removes_its_keys(db):
    did = add()
    with session() as s:
        domains.remove(s, s.get(SendingDomain, did))
    with session() as s:
        assert s.execute(select(DkimKey)).first() is None
    assert domains.signing.get("example.org", get_settings()).keys == []


# ---------------------------------------------------------------- check_from


def two_teams() -> tuple[int, int]:
    with session() as s:
        a, b = Team(name="A", timezone="UTC"), Team(name="B", timezone="UTC")
        s.add_all([a, b])
        s.flush()
        return a.id, b.id


def production():
    return load({**TEST_ENV, "DONEBOX_ENV": "production", "VAR_DIR": str(get_settings().var_dir)})


def test_production_refuses_an_unverified_domain_with_the_reason(db):
    a, _ = two_teams()
    add("example.org", a)
    with session() as s:
        why = domains.check_from(s, a, "app@example.org", production())
    assert (
        why
        == "example.org is not verified yet (publish its records, then: donebox domain verify example.org)"
    )


def test_development_lets_an_unverified_domain_send_with_a_warning(db, caplog):
    a, _ = two_teams()
    add("example.org", a)
    with caplog.at_level(logging.WARNING, logger="donebox.domains"), session() as s:
        assert domains.check_from(s, a, "App <app@example.org>", get_settings()) is None
    assert "sending from unverified domain example.org" in caplog.text


def test_another_teams_domain_is_refused_and_a_verified_one_of_every_team_allowed(db, local_dns):
    a, b = two_teams()
    add("example.org", a)
    shared = add("shared.example")
    publish(local_dns, shared)
    verify(shared)
    with session() as s:
        assert domains.check_from(s, b, "app@example.org", production()) == (
            "example.org is not a sending domain of this team (add it: donebox domain add example.org)"
        )
        assert domains.check_from(s, b, "app@shared.example", production()) is None
        assert domains.check_from(s, b, "donebox@mail.test", production()) is None  # MAIL_FROM's own


# ---------------------------------------------------------------- donebox domain


def test_the_cli_adds_prints_the_records_verifies_and_lists(db, local_dns, capsys):
    from app.cli import main

    a, _ = two_teams()
    assert main(["domain", "add", "example.org", "--team", str(a)]) == 0
    out = capsys.readouterr().out
    assert "publish these DNS records, then: donebox domain verify example.org" in out
    for line in (
        'donebox-rsa._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; p=',
        'donebox-ed25519._domainkey.example.org. IN TXT "v=DKIM1; k=ed25519; p=',
        'example.org. IN TXT "v=spf1 include:_spf.mail.test ~all"',
        '_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@reply.test"',
        "bounces.example.org. IN CNAME reply.test.",
    ):
        assert line in out
    with session() as s:
        did = s.execute(select(SendingDomain.id)).scalar_one()
    publish(local_dns, did, skip=("dmarc",))
    assert main(["domain", "verify", "example.org"]) == 1
    out = capsys.readouterr().out
    assert "dmarc [missing: no v=DMARC1 record]" in out and out.endswith("example.org: not verified: dmarc\n")
    assert main(["domain", "list"]) == 0
    assert capsys.readouterr().out == f"example.org (team {a}): not verified; missing: dmarc\n"
    publish(local_dns, did)
    assert main(["domain", "verify", "example.org"]) == 0
    assert capsys.readouterr().out.endswith("example.org: verified\n")
    assert main(["domain", "list", "--team", str(a)]) == 0
    assert capsys.readouterr().out == f"example.org (team {a}): verified 2026-12-04\n".replace(
        "2026-12-04", f"{_verified_at(did):%Y-%m-%d}"
    )
    assert main(["domain", "remove", "example.org"]) == 0
    assert main(["domain", "list"]) == 0
    assert "removed, with its keys" in capsys.readouterr().out


def _verified_at(domain_id: int):
    with session() as s:
        return s.get(SendingDomain, domain_id).verified_at


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["domain", "add", "example.org", "--team", "999"], "donebox: domain add: --team: no team 999"),
        (["domain", "add", "exa mple.org"], "donebox: domain add: domain: "),
        (["domain", "verify", "nowhere.example"], "domain: nowhere.example is not a sending domain"),
        (["domain", "remove", "x-.example"], "domain: 'x-.example' is not a domain name"),
    ],
)
def test_the_cli_names_the_field_it_refuses(db, capsys, argv, message):
    from app.cli import main

    assert main(argv) == 1
    assert message in capsys.readouterr().err
