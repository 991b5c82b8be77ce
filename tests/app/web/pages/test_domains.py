"""The sending domains page: add, the records to publish, which are missing after a verification
against the local DNS server, the development warning, remove; team admins see only theirs."""

import re

from sqlalchemy import select

from app.db import session
from app.models import SendingDomain
from app.relay import domains
from app.settings import get_settings
from tests.app.web.conftest import post, sign_in
from tests.app.web.test_routes import other_team
from tests.conftest import FIXED_NOW


def publish_all_but(local_dns, skip: str) -> None:
    with session() as s:
        row = s.execute(select(SendingDomain)).scalar_one()
        for r in domains.records(s, row, get_settings()):
            if r.key != skip:
                local_dns.records[(r.name, r.type)] = [r.value]
    local_dns.records[("reply.test", "MX")] = ["10 mx.reply.test"]


def status_of(page: str, key: str) -> str:
    """The status cell of the record ``key`` on the page."""
    m = re.search(rf'data-record="{re.escape(key)}">(.*?)</td>', page, re.S)
    assert m, key
    return re.sub(r"<[^>]+>", "", m.group(1))


def test_an_admin_adds_a_domain_sees_what_is_missing_verifies_and_removes_it(local_dns, client, team, sent):
    sign_in(client, sent, "ada@example.com")
    assert post(client, "/mail/domains", {"domain": "example.org", "team": str(team.id)}).status_code == 303
    page = client.get("/mail/domains").text
    assert "example.org" in page and "Not verified: never checked" in page
    assert "donebox-rsa._domainkey.example.org" in page and "v=DKIM1; k=ed25519; p=" in page
    assert "In development it may send anyway, with a warning in the log" in page
    publish_all_but(local_dns, "dkim:donebox-ed25519")
    with session() as s:
        did = s.execute(select(SendingDomain.id)).scalar_one()
    r = post(client, f"/mail/domains/{did}/verify")
    assert r.status_code == 303
    page = client.get("/mail/domains").text
    assert "example.org is not verified: dkim:donebox-ed25519." in page  # the flash
    assert "Not verified: missing dkim:donebox-ed25519" in page
    assert status_of(page, "dkim:donebox-ed25519") == "missing: no DKIM record"
    assert status_of(page, "dkim:donebox-rsa") == "found"
    assert status_of(page, "return_path") == "found"
    publish_all_but(local_dns, "")
    post(client, f"/mail/domains/{did}/verify")
    page = client.get("/mail/domains").text
    assert "example.org is verified." in page and "Not verified" not in page
    asked = post(client, f"/mail/domains/{did}/remove")
    assert asked.status_code == 200 and 'name="confirm"' in asked.text
    assert post(client, f"/mail/domains/{did}/remove", {"confirm": "yes"}).status_code == 303
    assert "No sending domains yet" in client.get("/mail/domains").text


def test_a_refused_domain_is_shown_again_with_the_reason(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    r = post(client, "/mail/domains", {"domain": "not a domain", "team": str(team.id)})
    assert r.status_code == 422 and 'id="domain-error"' in r.text and "not a domain" in r.text
    r = post(client, "/mail/domains", {"domain": "example.org", "team": ""})  # every team: operators only
    assert r.status_code == 422 and "Pick one of your teams." in r.text


def test_an_admin_sees_and_touches_only_their_teams_domains(client, team, sent):
    other = other_team()
    with session() as s:
        theirs = domains.add(s, "other.example", other, get_settings(), now=FIXED_NOW).id
    sign_in(client, sent, "ada@example.com")
    assert "other.example" not in client.get("/mail/domains").text
    assert post(client, f"/mail/domains/{theirs}/verify").status_code == 404
    assert post(client, f"/mail/domains/{theirs}/remove", {"confirm": "yes"}).status_code == 404
    r = post(client, "/mail/domains", {"domain": "mine.example", "team": str(other)})
    assert r.status_code == 422 and "Pick one of your teams." in r.text


def test_a_member_sees_no_domains_page(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    assert client.get("/mail/domains").status_code == 403
