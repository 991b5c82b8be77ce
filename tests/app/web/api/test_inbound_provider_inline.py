"""Inline images in providers' parsed payloads, end to end: POST /inbound/{provider}, then
GET /api/inbound/{id} lists the image under ``inline`` with its Content-ID and
GET /api/inbound/{id}/attachments/{index} serves it."""

from __future__ import annotations

import base64

import pytest

from jobs.broker import drain
from tests.app.web.api.test_inbound import client, token, two_teams  # noqa: F401 - fixture
from tests.app.web.hooks.test_inbound_providers import (  # noqa: F401 - fixture
    MG_KEY,
    PM_AUTH,
    SG_AUTH,
    basic,
    configure,
    mailgun_signed,
)
from tests.parsers.test_providers import TO, payload

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# provider, fixture, how it is authenticated, the image's name and Content-ID
CASES = [
    ("sendgrid", "sendgrid/parsed_inline.multipart", basic(SG_AUTH), "image.png", "ii_139db99fdb6b5e5a"),
    ("mailgun", "mailgun/parsed_inline.multipart", {}, "chart.png", "ii_mg4f2c1d0"),
    ("postmark", "postmark/inline.json", basic(PM_AUTH), "image001.png", "image001.png@01DB3C4A.5E6F7080"),
]


def post(client, provider: str, path: str, auth: dict, to: str) -> int:  # noqa: F811
    """The fixture from Ada to her reply address, signed as its provider signs it; its id once processed."""
    p = payload(path)
    body = mailgun_signed(path, key=MG_KEY) if provider == "mailgun" else p.body
    body = body.replace(TO.encode(), to.encode()).replace(b"bob@example.com", b"ada@example.com")
    r = client.post(f"/inbound/{provider}", content=body, headers={"Content-Type": p.content_type, **auth})
    assert r.status_code == 200, r.text
    drain()
    return r.json()["id"]


@pytest.mark.parametrize(("provider", "path", "auth", "name", "cid"), CASES, ids=[c[0] for c in CASES])
def test_a_providers_inline_image_is_listed_under_inline_with_its_content_id_and_downloadable(
    client,  # noqa: F811
    provider,
    path,
    auth,
    name,
    cid,
):
    team_a, _, ada, addr = two_teams()
    iid = post(client, provider, path, auth, addr)
    doc = client.get(f"/api/inbound/{iid}", headers=token(team_a)).json()
    assert doc["state"] == "processed" and doc["member_id"] == ada and doc["provider"] == provider
    assert doc["inline"] == [
        {
            "index": 0,
            "content_id": cid,
            "filename": name,
            "raw_filename": name,
            "content_type": "image/png",
            "size": len(PNG),
        }
    ]
    # the PDF beside it has a Content-ID too, which the HTML does not show: an attachment
    assert [(a["index"], a["filename"]) for a in doc["attachments"]] == [(1, "report.pdf")]
    image = client.get(f"/api/inbound/{iid}/attachments/0", headers=token(team_a))
    assert image.status_code == 200 and image.content == PNG and image.headers["content-type"] == "image/png"
    pdf = client.get(f"/api/inbound/{iid}/attachments/1", headers=token(team_a))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("provider", "path", "auth", "note"),
    [
        ("sendgrid", "sendgrid/parsed_inline_bad_content_ids.multipart", basic(SG_AUTH), "content-ids"),
        ("mailgun", "mailgun/parsed_inline_bad_content_id_map.multipart", {}, "content-id-map"),
    ],
    ids=["sendgrid", "mailgun"],
)
def test_a_malformed_content_id_map_is_a_note_and_the_image_an_attachment(client, provider, path, auth, note):  # noqa: F811
    team_a, _, _, addr = two_teams()
    iid = post(client, provider, path, auth, addr)
    doc = client.get(f"/api/inbound/{iid}", headers=token(team_a)).json()
    assert doc["state"] == "processed" and doc["inline"] == []
    assert [a["content_type"] for a in doc["attachments"]] == ["image/png", "application/pdf"]
    assert f"{note} is not a JSON object: ignored" in doc["notes"]
