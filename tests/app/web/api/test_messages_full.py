"""The full message API: from, cc, bcc, reply_to, custom headers, attachments and inline images, tags
and metadata; a composed message stored once as a body, one row per recipient; each field's errors
name it."""

import base64
import email
import email.policy
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from app.db import session
from app.errors import RequestError
from app.models import ApiToken, OutboundBody, OutboundMessage, SendingDomain, TeamSettings, utcnow
from app.relay import composed, sends
from app.relay.api_tokens import create_token
from app.settings import get_settings
from app.web.factory import create_app
from tests.conftest import reset_caches

# a small real PDF and a 1x1 PNG: bytes that must come back identical
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
    b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n"
    b"%%EOF\n\x00\xff\xfe binary tail"
)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def token(team):
    with session() as s:
        return create_token(s, "app", now=utcnow(), team_id=team.id)


def post(client, token, path="/api/messages", **body):
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def verified(team_id, domain="app.example.org", when=True):
    with session() as s:
        s.add(SendingDomain(domain=domain, team_id=team_id, verified_at=utcnow() if when else None))


def rows(ids) -> list[OutboundMessage]:
    with session() as s:
        found = s.execute(select(OutboundMessage).where(OutboundMessage.id.in_(ids))).scalars().all()
        return sorted(found, key=lambda m: m.id)


def stored(body_id) -> email.message.EmailMessage:
    with session() as s:
        raw = composed.load(s, body_id)
    return email.message_from_bytes(raw, policy=email.policy.default)


def count(model=OutboundMessage) -> int:
    with session() as s:
        return s.execute(select(func.count()).select_from(model)).scalar()


def test_attachments_and_an_inline_image_are_stored_byte_identical_as_mixed_related_alternative(
    client, team, token
):
    verified(team.id)
    r = post(
        client,
        token,
        **{"from": {"email": "billing@app.example.org", "name": "Billing Desk"}},
        to="Ann Example <ann@example.com>",
        subject="Your invoice",
        text="See the attached invoice.",
        html='<p>See the invoice. <img src="cid:logo123"></p>',
        attachments=[
            {"filename": "invoice.pdf", "content_type": "application/pdf", "content": b64(PDF)},
            {
                "filename": "logo.png",
                "content_type": "image/png",
                "content": b64(PNG),
                "content_id": "logo123",
            },
        ],
    )
    assert r.status_code == 202, r.text
    (m,) = rows(r.json()["ids"])
    assert (
        m.body_id is not None and m.from_addr == "billing@app.example.org" and m.to_addr == "ann@example.com"
    )
    assert m.subject == "Your invoice" and m.template == "" and m.kind == "api"
    msg = stored(m.body_id)
    assert msg.get_content_type() == "multipart/mixed"
    related, pdf = msg.get_payload()
    assert related.get_content_type() == "multipart/related"
    alternative, png = related.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == ["text/plain", "text/html"]
    assert pdf.get_payload(decode=True) == PDF and pdf.get_filename() == "invoice.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert png.get_payload(decode=True) == PNG and png["Content-ID"] == "<logo123>"
    assert png.get_content_disposition() == "inline"
    assert 'src="cid:logo123"' in alternative.get_payload()[1].get_content()
    assert msg["From"] == "Billing Desk <billing@app.example.org>"
    assert msg["To"] == "Ann Example <ann@example.com>"
    assert msg["Message-ID"] is None and msg["Bcc"] is None  # the relay adds its own; bcc never
    assert m.message_id.startswith("<") and m.message_id.endswith("@mail.test>")


def test_cc_reply_to_and_custom_headers_are_in_the_body_and_bcc_only_in_the_rows(client, team, token):
    r = post(
        client,
        token,
        to=["ann@example.com", {"email": "bob@example.com", "name": "Bob"}],
        cc="Cy <cy@example.com>",
        bcc=["secret1@example.net", "secret2@example.net"],
        reply_to="help@example.com",
        subject="Team news",
        text="hello",
        headers={
            "X-Campaign": "spring-7",
            "In-Reply-To": "<a1@example.com>",
            "Message-ID": "<own.1@app.test>",
        },
    )
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    assert r.json()["id"] == ids[0]
    made = rows(ids)
    assert [m.to_addr for m in made] == [
        "ann@example.com",
        "bob@example.com",
        "cy@example.com",
        "secret1@example.net",
        "secret2@example.net",
    ]
    assert len({m.body_id for m in made}) == 1 and count(OutboundBody) == 1
    assert {m.message_id for m in made} == {"<own.1@app.test>"}  # the application's own
    assert {m.from_addr for m in made} == {""}  # MAIL_FROM
    with session() as s:
        raw = composed.load(s, made[0].body_id)
    assert b"secret1" not in raw and b"secret2" not in raw and b"Bcc" not in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Cc"] == "Cy <cy@example.com>" and msg["Reply-To"] == "help@example.com"
    assert msg["To"] == "ann@example.com, Bob <bob@example.com>"
    assert msg["X-Campaign"] == "spring-7" and msg["In-Reply-To"] == "<a1@example.com>"
    assert msg["Message-ID"] == "<own.1@app.test>" and msg["From"] == "donebox <donebox@mail.test>"
    assert msg.get_content_type() == "multipart/alternative"  # text only: the api template's html too
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_tracking_follows_the_team_setting_and_tags_and_metadata_come_back(client, team, token):
    with session() as s:
        s.add(TeamSettings(team_id=team.id, tracking=True))
    meta = {"order": "A-17", "customer": "42"}
    r = post(
        client,
        token,
        to="ann@example.com",
        cc="bob@example.com",
        subject="S",
        html="<p>x</p>",
        tags=["invoice"],
        metadata=meta,
    )
    assert r.status_code == 202, r.text
    for m in rows(r.json()["ids"]):
        assert json.loads(m.context) == {"_track": True, "tags": ["invoice"], "metadata": meta}
    got = client.get(f"/api/messages/{r.json()['id']}", headers={"Authorization": f"Bearer {token}"}).json()
    assert got["tags"] == ["invoice"] and got["metadata"] == meta and got["from"] is None
    # the rendered path keeps tags and metadata beside its content
    plain = post(
        client, token, to="cy@example.com", subject="S", text="t", tags=["a", "b"], metadata={"k": "v"}
    )
    (m,) = rows(plain.json()["ids"])
    assert m.body_id is None and json.loads(m.context)["tags"] == ["a", "b"]
    got = client.get(f"/api/messages/{m.id}", headers={"Authorization": f"Bearer {token}"}).json()
    assert got["tags"] == ["a", "b"] and got["metadata"] == {"k": "v"}


def test_a_template_with_model_is_rendered_into_the_composed_body(client, team, token):
    r = post(
        client,
        token,
        to="ann@example.com",
        bcc="x@example.net",
        subject="S",
        template="api",
        model={"text": "Hi Ann", "html": ""},
    )
    assert r.status_code == 202, r.text
    msg = stored(rows(r.json()["ids"])[0].body_id)
    assert msg.get_body(("plain",)).get_content().strip() == "Hi Ann"
    assert "Hi Ann" in msg.get_body(("html",)).get_content()
    old = post(
        client, token, to="ann@example.com", subject="S", template="api", context={"text": "old", "html": ""}
    )
    assert old.status_code == 202  # context stays the alias of model


def test_fifty_recipients_are_taken_and_fifty_one_refused(client, team, token):
    to = [f"t{i}@example.com" for i in range(20)]
    cc = [f"c{i}@example.com" for i in range(20)]
    bcc = [f"b{i}@example.com" for i in range(10)]
    r = post(client, token, to=to, cc=cc, bcc=bcc, subject="S", text="t")
    assert r.status_code == 202 and len(r.json()["ids"]) == 50
    r = post(client, token, to=to, cc=cc, bcc=[*bcc, "one.more@example.com"], subject="S", text="t")
    assert r.status_code == 400 and "51 recipients, more than 50" in r.json()["error"]
    assert count() == 50


def test_a_repeated_idempotency_key_answers_the_rows_it_made(client, team, token):
    body = {
        "to": "ann@example.com",
        "cc": ["bob@example.com"],
        "subject": "S",
        "text": "t",
        "idempotency_key": "k-1",
    }
    first = post(client, token, **body)
    again = post(client, token, **body)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["ids"] == first.json()["ids"] and again.json()["duplicate"] is True
    assert count() == 2 and count(OutboundBody) == 1


def test_from_on_a_domain_not_verified_is_refused_in_production_naming_from(client, team, token):
    verified(team.id, "pending.example.org", when=False)
    body = {"from": "a@pending.example.org", "to": "x@example.com", "subject": "s", "text": "t"}
    with session() as s:
        api_token = s.execute(select(ApiToken).where(ApiToken.team_id == team.id)).scalars().one()
        production = replace(get_settings(), env="production")
        with pytest.raises(RequestError) as refused:
            sends.prepare(s, body, api_token, now=utcnow(), settings=production)
        assert (
            str(refused.value).startswith("from: pending.example.org is not verified")
            and refused.value.status == 422
        )
        # development sends from it (with a warning in the log)
        assert (
            sends.prepare(s, body, api_token, now=utcnow(), settings=get_settings()).from_addr
            == "a@pending.example.org"
        )
    r = post(client, token, **{"from": "a@elsewhere.example"}, to="x@example.com", subject="s", text="t")
    assert r.status_code == 422 and r.json()["error"].startswith(
        "from: elsewhere.example is not a sending domain"
    )
    r = post(client, token, **{"from": "Desk <desk@mail.test>"}, to="x@example.com", subject="s", text="t")
    assert r.status_code == 202  # MAIL_FROM's domain is always ours
    assert count() == 1


LIMIT = 2048
BAD = [
    ({"to": ["ann@example.com", "nope"]}, 400, "to[1] is not an email address"),
    ({"to": []}, 400, "to needs at least one address"),
    ({"to": {"name": "Ann"}}, 400, "to.email is required"),
    ({"to": {"email": "a@example.com", "nick": "A"}}, 400, "to has unknown key(s): nick"),
    ({"cc": "Evil\r\nBcc: x@example.com <a@example.com>"}, 400, "cc: the name has a control character"),
    ({"cc": 5}, 400, "cc must be a string"),
    ({"bcc": ["x@example.com", "bad@"]}, 400, "bcc[1] is not an email address"),
    ({"reply_to": "not an address"}, 400, "reply_to is not an email address"),
    ({"from": "nobody"}, 400, "from is not an email address"),
    ({"headers": ["X-A: b"]}, 400, "headers must be a JSON object"),
    ({"headers": {"X Bad": "v"}}, 400, "headers.X Bad is not a header field name"),
    ({"headers": {"X-A": "one\r\nBcc: evil@example.com"}}, 400, "headers.X-A must be one line"),
    ({"headers": {"X-A": 5}}, 400, "headers.X-A must be a string"),
    ({"headers": {"DKIM-Signature": "v=1"}}, 400, "headers.DKIM-Signature is set by donebox"),
    ({"headers": {"Return-Path": "<a@b.c>"}}, 400, "headers.Return-Path is set by donebox"),
    ({"headers": {"Received": "from x"}}, 400, "headers.Received is set by donebox"),
    ({"headers": {"list-unsubscribe": "<x>"}}, 400, "headers.list-unsubscribe is set by donebox"),
    ({"headers": {"Content-Type": "text/plain"}}, 400, "headers.Content-Type is set by donebox"),
    ({"headers": {"Bcc": "a@example.com"}}, 400, "headers.Bcc is set by donebox or by its own field"),
    ({"headers": {"Subject": "x"}}, 400, "headers.Subject is set by donebox or by its own field"),
    ({"headers": {"Message-ID": "no-brackets"}}, 400, "headers.Message-ID must be <id@domain>"),
    ({"headers": {"X-A": "1", "x-a": "2"}}, 400, "headers.x-a is given twice"),
    ({"attachments": {"filename": "a"}}, 400, "attachments must be a list"),
    ({"attachments": ["x"]}, 400, "attachments[0] must be an object"),
    ({"attachments": [{"content": "eA=="}]}, 400, "attachments[0].filename is required"),
    ({"attachments": [{"filename": "a.txt"}]}, 400, "attachments[0].content is required"),
    (
        {"attachments": [{"filename": "a", "content": "eA=="}, {"filename": "b", "content": "not base64!"}]},
        400,
        "attachments[1].content is not valid base64",
    ),
    (
        {"attachments": [{"filename": "a", "content": "eA==", "content_type": "pdf"}]},
        400,
        "attachments[0].content_type must be type/subtype",
    ),
    (
        {"attachments": [{"filename": "a", "content": "eA==", "content_type": "multipart/mixed"}]},
        400,
        "attachments[0].content_type multipart/*",
    ),
    (
        {"attachments": [{"filename": "a\r\nb", "content": "eA=="}]},
        400,
        "attachments[0].filename must be one line",
    ),
    (
        {"attachments": [{"filename": "a", "content": "eA==", "content_id": "<a b>"}]},
        400,
        "attachments[0].content_id must be",
    ),
    (
        {"attachments": [{"filename": "a", "content": "eA==", "size": 1}]},
        400,
        "attachments[0] has unknown key(s): size",
    ),
    (
        {
            "attachments": [
                {"filename": "a", "content": b64(b"x" * 1000)},
                {"filename": "b", "content": b64(b"y" * 1100)},
            ]
        },
        413,
        "attachments[1].content takes the message past MAX_MESSAGE_BYTES (2048 bytes)",
    ),
    (
        {"cc": "c@example.com", "text": "x" * 3000},
        413,
        "text and html are larger than MAX_MESSAGE_BYTES (2048 bytes)",
    ),
    ({"tags": "one"}, 400, "tags must be a list of at most 10 strings"),
    ({"tags": ["ok", ""]}, 400, "tags[1] must be 1-100 printable characters"),
    ({"tags": ["x"] * 11}, 400, "tags must be a list of at most 10"),
    ({"metadata": {"k": 1}}, 400, "metadata.k must be a string"),
    ({"metadata": {"k": {"nested": "x"}}}, 400, "metadata.k must be a string (metadata is flat)"),
    ({"metadata": {f"k{i}": "v" for i in range(51)}}, 400, "metadata has 51 keys, more than 50"),
    ({"metadata": {"k": "v" * 1001}}, 400, "metadata.k is longer than 1000 characters"),
    ({"metadata": ["k"]}, 400, "metadata must be a flat JSON object"),
    (
        {"text": None, "template": "api", "model": {"text": "a", "html": ""}, "context": {"a": 1}},
        400,
        "give model or context",
    ),
    ({"text": None, "template": "api", "model": {"tags": "x"}}, 400, "model.tags is reserved"),
    ({"model": {"a": 1}}, 400, "model goes with template"),
]


@pytest.mark.parametrize("extra,status,reason", BAD, ids=[r for _, _, r in BAD])
def test_each_field_is_checked_and_its_error_names_it(client, team, token, env, extra, status, reason):
    env.setenv("MAX_MESSAGE_BYTES", str(LIMIT))
    reset_caches()

    body = {"to": "ann@example.com", "subject": "s", "text": "t", **extra}
    body = {k: v for k, v in body.items() if v is not None}
    with TestClient(create_app()) as c:
        r = post(c, token, **body)
    assert r.status_code == status and reason in r.json()["error"], r.text
    assert count() == 0 and count(OutboundBody) == 0


def test_a_message_past_the_size_limit_is_413_naming_the_limit(client, team, token):
    big = b64(b"z" * (10 * 1024 * 1024 + 1))  # one byte past the default 10 MiB
    r = post(
        client,
        token,
        to="ann@example.com",
        subject="s",
        text="t",
        attachments=[{"filename": "z.bin", "content": big}],
    )
    assert (
        r.status_code == 413
        and "attachments[0].content takes the message past MAX_MESSAGE_BYTES (10485760 bytes)"
        in r.json()["error"]
    )
    ok = b64(b"z" * (9 * 1024 * 1024))  # 12 MiB of base64: more than API_MAX_BYTES, within the route's limit
    r = post(
        client,
        token,
        to="ann@example.com",
        subject="s",
        text="t",
        attachments=[{"filename": "z.bin", "content": ok}],
    )
    assert r.status_code == 202, r.text[:300]
    msg = stored(rows(r.json()["ids"])[0].body_id)
    (part,) = [p for p in msg.iter_attachments()]
    assert part.get_payload(decode=True) == b"z" * (9 * 1024 * 1024)


def test_a_scheduled_composed_message_waits_with_all_its_rows(client, team, token):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    r = post(
        client,
        token,
        to="ann@example.com",
        bcc="b@example.com",
        subject="s",
        text="t",
        send_at=later,
        batch_id="w1",
    )
    assert r.status_code == 202 and r.json()["state"] == "scheduled"
    assert {(m.state, m.batch_id) for m in rows(r.json()["ids"])} == {("scheduled", "w1")}


def test_the_openapi_document_lists_the_new_fields_and_the_batch_route(client):
    doc = client.get("/api/openapi.json").json()
    send = doc["components"]["schemas"]["MessageSend"]["properties"]
    for name in (
        "from",
        "to",
        "cc",
        "bcc",
        "reply_to",
        "model",
        "headers",
        "attachments",
        "tags",
        "metadata",
    ):
        assert name in send, name
    assert send["attachments"]["items"] == {"$ref": "#/components/schemas/AttachmentUpload"}
    upload = doc["components"]["schemas"]["AttachmentUpload"]["properties"]
    assert set(upload) == {"filename", "content_type", "content", "content_id"}
    assert {"tags", "metadata", "from"} <= set(doc["components"]["schemas"]["Message"]["properties"])
    assert "ids" in doc["components"]["schemas"]["SendAccepted"]["properties"]
    post = doc["paths"]["/api/messages/batch"]["post"]
    assert post["x-scopes"] == ["send"] and {"200", "202", "429"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MessageBatch"
    }


def test_events_carry_the_message_tags_and_metadata(client, team, token):
    meta = {"order": "A-17"}
    composed_one = post(
        client,
        token,
        to="ann@example.com",
        bcc="b@example.com",
        subject="S",
        text="t",
        tags=["x"],
        metadata=meta,
    )
    rendered_one = post(client, token, to="cy@example.com", subject="S", text="t" * 5000, metadata={"k": "v"})
    plain = post(client, token, to="dee@example.com", subject="S", text="t")
    auth = {"Authorization": f"Bearer {token}"}
    events = client.get("/api/events", headers=auth).json()["events"]
    by_message = {e["message_id"]: (e["tags"], e["metadata"]) for e in events}
    for mid in composed_one.json()["ids"]:
        assert by_message[mid] == (["x"], meta)
    assert by_message[rendered_one.json()["id"]] == ([], {"k": "v"})
    assert by_message[plain.json()["id"]] == ([], {})
