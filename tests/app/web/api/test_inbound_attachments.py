"""GET /api/inbound/{id}/attachments/{index}: a received file's bytes, served so it cannot run in our origin.

Attachments and inline parts are listed apart and share one index space (MIME order).
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, unquote

import pytest

from app.web.security import ascii_filename, served_type
from jobs.broker import drain
from tests.app.web.api.test_inbound import client, token, two_teams  # noqa: F401 - fixture
from tests.app.web.conftest import AUTH
from tests.app.web.hooks.test_inbound_providers import configure  # noqa: F401 - fixture

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n\x00\xff\xfe binary tail\n%%EOF\n"
HTML = b"<html><body><script>fetch('/api/inbound').then(r => r.text()).then(alert)</script></body></html>"
# a sender's name with path components, quotes, a CR/LF header injection, non-ASCII and 500 characters
HOSTILE = '../../etc/\\evil "quoted"\r\nX-Injected: 1; Bericht für Jürgen ' + "a" * 500 + ".html"


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def files_mail(to: str) -> bytes:
    """An HTML reply showing an inline image by cid:, with a PDF and a hostile HTML file attached.

    MIME order: the inline PNG (index 0), report.pdf (1), the HTML file (2).
    """
    return (
        "From: Ada <ada@example.com>\r\n"
        f"To: {to}\r\n"
        "Subject: Re: What did you get done today?\r\n"
        "Message-ID: <files-1@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="outer"\r\n'
        "\r\n"
        "--outer\r\n"
        'Content-Type: multipart/related; boundary="rel"\r\n'
        "\r\n"
        "--rel\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        '<p>Drew the chart <img src="cid:chart.1@example.com"></p>\r\n'
        "--rel\r\n"
        "Content-Type: image/png\r\n"
        "Content-ID: <chart.1@example.com>\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{b64(PNG)}\r\n"
        "--rel--\r\n"
        "--outer\r\n"
        'Content-Type: application/pdf; name="report.pdf"\r\n'
        'Content-Disposition: attachment; filename="report.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{b64(PDF)}\r\n"
        "--outer\r\n"
        "Content-Type: text/html\r\n"
        f"Content-Disposition: attachment; filename*=UTF-8''{quote(HOSTILE, safe='')}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{b64(HTML)}\r\n"
        "--outer--\r\n"
    ).encode()


@pytest.fixture
def mail(client):  # noqa: F811
    """(inbound id, team of its writer, another team)."""
    team_a, team_b, _, addr = two_teams()
    r = client.post("/inbound/raw", content=files_mail(addr), headers=AUTH)
    assert r.status_code == 202, r.text
    drain()
    return r.json()["id"], team_a, team_b


def test_inline_parts_are_listed_apart_with_their_content_id_and_never_as_attachments(client, mail):  # noqa: F811
    iid, team_a, _ = mail
    doc = client.get(f"/api/inbound/{iid}", headers=token(team_a)).json()
    assert doc["inline"] == [
        {
            "index": 0,
            "content_id": "chart.1@example.com",
            "filename": "attachment.png",
            "raw_filename": "",
            "content_type": "image/png",
            "size": len(PNG),
        }
    ]
    assert [(a["index"], a["content_type"]) for a in doc["attachments"]] == [
        (1, "application/pdf"),
        (2, "text/html"),
    ]
    assert (
        doc["attachments"][0]["filename"] == "report.pdf" and doc["attachments"][1]["raw_filename"] == HOSTILE
    )


def test_an_attachment_comes_back_byte_for_byte_with_its_type_as_a_download(client, mail):  # noqa: F811
    iid, team_a, _ = mail
    r = client.get(f"/api/inbound/{iid}/attachments/1", headers=token(team_a))
    assert r.status_code == 200 and r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"].split("; ")


def test_an_inline_image_is_downloadable_by_its_index(client, mail):  # noqa: F811
    iid, team_a, _ = mail
    r = client.get(f"/api/inbound/{iid}/attachments/0", headers=token(team_a))
    assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith('attachment; filename="attachment.png"')


def test_an_html_attachment_with_a_hostile_name_is_served_as_octet_stream_under_a_safe_name(client, mail):  # noqa: F811
    iid, team_a, _ = mail
    listed = client.get(f"/api/inbound/{iid}", headers=token(team_a)).json()["attachments"][1]
    r = client.get(f"/api/inbound/{iid}/attachments/2", headers=token(team_a))
    assert r.status_code == 200 and r.content == HTML
    assert r.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in r.headers["content-security-policy"].split("; ")
    assert r.headers["x-content-type-options"] == "nosniff"
    disposition = r.headers["content-disposition"]
    m = re.fullmatch(
        r"attachment; filename=\"([ !#$&-:<-\[\]-~]+)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)", disposition
    )
    assert m, disposition
    fallback, encoded = m.groups()
    assert unquote(encoded) == listed["filename"]  # the safe name, never the raw one
    for name in (fallback, unquote(encoded)):
        assert not {"/", "\\", '"', "\r", "\n"} & set(name) and not name.startswith(".")
        assert len(name.encode()) <= 255 and name.endswith(".html")
    assert "Bericht fur Jurgen" in fallback and "Bericht für Jürgen" in unquote(encoded)


def test_a_token_of_another_team_gets_404_as_for_a_message_that_does_not_exist(client, mail):  # noqa: F811
    iid, _, team_b = mail
    r = client.get(f"/api/inbound/{iid}/attachments/1", headers=token(team_b))
    assert r.status_code == 404 and r.json() == {"error": "no such inbound message"}
    missing = client.get("/api/inbound/999999/attachments/1", headers=token(team_b))
    assert missing.status_code == 404 and missing.json() == r.json()


@pytest.mark.parametrize("auth", [None, "Bearer dbx_not-a-token"])
def test_no_or_a_wrong_token_is_401(client, mail, auth):  # noqa: F811
    iid, _, _ = mail
    headers = {"Authorization": auth} if auth else {}
    r = client.get(f"/api/inbound/{iid}/attachments/0", headers=headers)
    assert r.status_code == 401 and r.content != PNG


@pytest.mark.parametrize("index", ["3", "1000", "-1", "abc", "1.0", "²", "9" * 5000])
def test_an_index_out_of_range_or_not_a_number_is_404_with_the_reason(client, mail, index):  # noqa: F811
    iid, team_a, _ = mail
    r = client.get(f"/api/inbound/{iid}/attachments/{quote(index)}", headers=token(team_a))
    assert r.status_code == 404 and r.json()["error"].startswith("no such attachment")


def test_the_reason_says_how_many_files_the_message_has(client, mail):  # noqa: F811
    iid, team_a, _ = mail
    r = client.get(f"/api/inbound/{iid}/attachments/3", headers=token(team_a))
    assert r.json() == {"error": "no such attachment: the message has 3 file part(s), numbered from 0"}


@pytest.mark.parametrize(
    "declared",
    ["text/html", "TEXT/HTML; charset=utf-8", "image/svg+xml", "application/xhtml+xml", "text/xml",
     "application/xml", "application/javascript", "text/javascript", "message/rfc822", "multipart/related",
     "application/x-unknown", "", "junk"],
)  # fmt: skip
def test_script_capable_or_unknown_types_are_served_as_octet_stream(declared):
    assert served_type(declared) == "application/octet-stream"


def test_a_harmless_type_is_served_as_declared_without_the_senders_parameters():
    assert served_type('image/PNG; name="x"') == "image/png"


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("Bericht für Jürgen.pdf", "Bericht fur Jurgen.pdf"),
        ("\uff0e\uff0e\uff0fpasswd", "passwd"),  # full-width dots and solidus fold to ../
        ("отчёт.pdf", "_____.pdf"),
        ('a; filename="evil.exe', "a_ filename=_evil.exe"),  # no second parameter for a naive parser
        ("100%20off.pdf", "100_20off.pdf"),
    ],
)
def test_the_ascii_fallback_name_is_itself_a_safe_name(name, fallback):
    assert ascii_filename(name) == fallback
