from datetime import date

from markupsafe import escape
from sqlalchemy import select, update

from app.checkins.reply_tokens import reply_address
from app.db import session
from app.models import Entry, InboundMessage, Member, OutboundMessage, Suppression, utcnow
from app.relay import render, suppressions
from app.settings import get_settings
from jobs.broker import drain
from tests.app.web.conftest import AUTH, post, sign_in
from tests.app.web.test_routes import other_team


def member_id(email):
    with session() as s:
        return s.execute(select(Member.id).where(Member.email == email)).scalar_one()


def remind_everyone():
    from app.checkins.outgoing import remind_now
    from jobs.enqueue import enqueue_deliveries

    with session() as s:
        ids = remind_now(s, now=utcnow(), settings=get_settings())
    enqueue_deliveries(ids)
    drain()
    return ids


def reply(client, email, body, subject="Re: What did you get done today?", msgid="<r1@example.com>"):
    to = reply_address(
        "test-secret-key-0123456789-abcdefXYZ", "reply.test", member_id(email), date(2026, 11, 23)
    )
    raw = (
        f"From: {email}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
    iid = client.post("/inbound/raw", content=raw, headers=AUTH).json()["id"]
    drain()
    return iid


def test_an_admin_sees_the_outbound_log_filtered_and_a_messages_timeline(client, team, sent):
    remind_everyone()
    sign_in(client, sent, "ada@example.com")
    page = client.get("/mail/outbound").text
    assert "bob@example.com" in page and "reminder" in page
    only_bob = client.get("/mail/outbound", params={"to": "bob@"}).text
    assert "bob@example.com" in only_bob and "ada@example.com</td>" not in only_bob
    assert "No messages" in client.get("/mail/outbound", params={"state": "failed"}).text
    assert "No messages" in client.get("/mail/outbound", params={"since": "2999-01-01"}).text
    assert client.get("/mail/outbound", params={"since": "yesterday"}).status_code == 400
    with session() as s:
        mid = s.execute(
            select(OutboundMessage.id).where(
                OutboundMessage.to_addr == "bob@example.com", OutboundMessage.kind == "reminder"
            )
        ).scalar()
    one = client.get(f"/mail/outbound/{mid}").text
    timeline = one.split('id="timeline"')[1]
    assert timeline.index(">queued<") < timeline.index(">sending<") < timeline.index(">sent<")
    assert "What did you get done today?" in one and "Reply to this email" in one
    html = client.get(f"/mail/outbound/{mid}/html")
    assert "sandbox" in html.headers["content-security-policy"] and "Goal:" in html.text
    assert 'style="' in html.text  # inlined CSS survives the sanitizer: mail looks like mail


def test_sign_in_links_are_never_shown_in_the_log(client, team, sent):
    from app.accounts.users import make_operator

    with session() as s:
        make_operator(s, "ada@example.com", now=utcnow())
    sign_in(client, sent, "ada@example.com")
    with session() as s:
        mid = s.execute(select(OutboundMessage.id).where(OutboundMessage.kind == "signin")).scalar()
    page = client.get(f"/mail/outbound/{mid}").text
    assert "/signin/" not in page and "not shown" in page


def test_a_member_or_observer_sees_no_mail_pages(client, team, sent):
    sign_in(client, sent, "bob@example.com")
    for url in ("/mail/outbound", "/mail/inbound", "/mail/suppressions"):
        assert client.get(url).status_code == 403


def test_an_admin_sees_only_their_teams_mail(client, team, sent):
    other_team()
    remind_everyone()
    sign_in(client, sent, "ada@example.com")
    assert "zed@other.example" not in client.get("/mail/outbound").text
    with session() as s:
        zed = s.execute(
            select(OutboundMessage.id).where(OutboundMessage.to_addr == "zed@other.example")
        ).scalar()
    assert client.get(f"/mail/outbound/{zed}").status_code == 404
    assert client.get(f"/mail/outbound/{zed}/html").status_code == 404


def test_the_inbound_log_shows_raw_extracted_and_cut_and_reprocess_works(client, team, sent):
    iid = reply(client, "bob@example.com", "Shipped the thing\n\n-- \nBob\n\nOn Mon, Ada wrote:\n> old")
    sign_in(client, sent, "ada@example.com")
    assert "Shipped the thing" not in client.get("/mail/inbound").text  # subjects only
    assert f'href="/mail/inbound/{iid}"' in client.get("/mail/inbound").text
    page = client.get(f"/mail/inbound/{iid}").text
    reply_part = page.split('id="reply">')[1].split("</pre>")[0]
    assert "Shipped the thing" in reply_part and "old" not in reply_part
    assert "Message-ID: &lt;r1@example.com&gt;" in page  # the raw message, escaped
    with session() as s:
        first = list(s.execute(select(Entry).where(Entry.inbound_id == iid)).scalars())
        first[0].text = "changed by hand"  # reprocessing rebuilds the entries from the stored message
    assert len(first) == 1
    assert post(client, f"/mail/inbound/{iid}/reprocess", {"confirm": "yes"}).status_code == 303
    drain()
    with session() as s:
        row = s.get(InboundMessage, iid)
        again = [e.text for e in s.execute(select(Entry).where(Entry.inbound_id == iid)).scalars()]
    assert row.state == "processed" and again == ["Shipped the thing"]


def test_the_inbound_page_shows_inline_parts_apart_from_attachments(client, team, sent):
    from tests.app.web.api.test_inbound_attachments import files_mail

    to = reply_address(
        "test-secret-key-0123456789-abcdefXYZ", "reply.test", member_id("ada@example.com"), date(2026, 11, 23)
    )
    iid = client.post("/inbound/raw", content=files_mail(to), headers=AUTH).json()["id"]
    drain()
    sign_in(client, sent, "ada@example.com")
    page = client.get(f"/mail/inbound/{iid}").text
    attached = page.split('<ul class="attachments">')[1].split("</ul>")[0]
    inline = page.split('<ul class="inline-parts">')[1].split("</ul>")[0]
    assert "report.pdf" in attached and "attachment.png" not in attached
    assert "attachment.png" in inline and "cid:chart.1@example.com" in inline and "report.pdf" not in inline


def test_an_admin_does_not_see_other_teams_inbound(client, team, sent):
    other_team()
    iid = reply(client, "zed@other.example", "zed's secret")
    sign_in(client, sent, "ada@example.com")
    assert client.get(f"/mail/inbound/{iid}").status_code == 404
    assert post(client, f"/mail/inbound/{iid}/reprocess").status_code == 404


def test_the_suppression_list_adds_and_removes(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    assert (
        post(client, "/mail/suppressions", {"email": "bob@example.com", "detail": "asked"}).status_code == 303
    )
    assert post(client, "/mail/suppressions", {"email": "bob@example.com"}).status_code == 422
    assert post(client, "/mail/suppressions", {"email": "nope"}).status_code == 422
    # a team admin suppresses only their members' addresses
    assert post(client, "/mail/suppressions", {"email": "someone@else.example"}).status_code == 403
    page = client.get("/mail/suppressions").text
    assert "bob@example.com" in page and "asked" in page
    with session() as s:
        sid = s.execute(select(Suppression.id)).scalar()
    asked = post(client, f"/mail/suppressions/{sid}/remove")  # a destructive action asks first
    assert asked.status_code == 200 and "Are you sure?" in asked.text and 'name="confirm"' in asked.text
    with session() as s:
        assert s.execute(select(Suppression)).first() is not None
    assert post(client, f"/mail/suppressions/{sid}/remove", {"confirm": "yes"}).status_code == 303
    with session() as s:
        assert s.execute(select(Suppression)).first() is None


def test_an_operator_suppression_replaces_an_unsubscribe_and_nothing_replaces_it(client, team, sent):
    sign_in(client, sent, "ada@example.com")
    with session() as s:
        suppressions.add(s, "bob@example.com", "unsubscribe", now=utcnow())
    assert (
        post(client, "/mail/suppressions", {"email": "Bob@example.com", "detail": "asked"}).status_code == 303
    )
    with session() as s:
        sup = suppressions.lookup(s, "bob@example.com")
        assert (sup.reason, sup.detail) == ("manual", "asked")
        assert not suppressions.add(s, "bob@example.com", "complaint", now=utcnow())
    assert post(client, "/mail/suppressions", {"email": "bob@example.com"}).status_code == 422


def test_the_log_shows_a_message_as_the_relay_renders_and_sends_it(client, team, sent):
    remind_everyone()
    sign_in(client, sent, "ada@example.com")
    with session() as s:
        m = s.execute(
            select(OutboundMessage).where(
                OutboundMessage.to_addr == "bob@example.com", OutboundMessage.kind == "reminder"
            )
        ).scalar_one()
        _, text, html = render.render_message(s, m, get_settings())
    mail = next(x for x in sent if x["To"] == "bob@example.com" and x["Subject"] == m.subject)
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")
    page = client.get(f"/mail/outbound/{m.id}").text
    assert f"<h1>{escape(m.subject)}</h1>" in page and f'<pre id="text">{escape(text)}</pre>' in page
    shown = client.get(f"/mail/outbound/{m.id}/html").text
    assert "Reply to this email" in shown and "Reply to this email" in html


def test_an_operator_sees_senders_with_secrets_masked_their_last_hour_and_routes(client, team, sent):
    from app.accounts.users import make_operator
    from app.models import OutboundMessage, Route, Sender

    sign_in(client, sent, "ada@example.com")
    ids = remind_everyone()  # delivered before any sender exists (then MAIL_TRANSPORT carries mail)
    with session() as s:
        for mid in ids:
            s.get(OutboundMessage, mid).sender = "primary"
        s.add(Sender(name="primary", url="smtp://relay:hunter2@smtp.example.com:587?tls=starttls", weight=3))
        s.add(Sender(name="backup", url="sendgrid://SG.secret-key@api.sendgrid.com"))
        s.add(Route(domain="*.gov", senders="backup"))
    assert client.get("/mail/senders").status_code == 403  # a team admin is not an operator
    with session() as s:
        make_operator(s, "ada@example.com", now=utcnow())
    page = client.get("/mail/senders").text
    assert "hunter2" not in page and "SG.secret-key" not in page
    assert "smtp://relay:***@smtp.example.com:587" in page
    assert f"sent {len(ids)}" in page and "*.gov" in page


def _state(iid):
    with session() as s:
        return s.get(InboundMessage, iid).state


def test_quarantined_messages_show_on_healthz_and_the_inbound_page_unparsed(client, team, sent):
    from app.accounts.users import make_operator
    from tests.app.inbound.test_process_batch import mail, store

    iid = store(mail(1, "team@reply.test", "- x"), "page")
    with session() as s:
        s.execute(update(InboundMessage).values(state="quarantined", attempts=3, error="quarantined after 3"))
        make_operator(s, "ada@example.com", now=utcnow())
    assert client.get("/healthz").json() == {"ok": True, "database": "ok", "inbound_quarantined": 1}
    sign_in(client, sent, "ada@example.com")
    page = client.get("/mail/inbound").text
    assert 'id="quarantined"' in page and "1 message is quarantined" in page
    assert f'href="/mail/inbound/{iid}"' in client.get("/mail/inbound?state=quarantined").text
    assert f'href="/mail/inbound/{iid}"' not in client.get("/mail/inbound?state=processed").text
    one = client.get(f"/mail/inbound/{iid}").text
    assert "not parsed: quarantined" in one and 'id="reprocess"' in one
    assert post(client, f"/mail/inbound/{iid}/reprocess", {"confirm": "yes"}).status_code == 303
    drain()
    assert _state(iid) == "unverified"
    assert client.get("/healthz").json()["inbound_quarantined"] == 0
    with session() as s:
        assert s.execute(select(Entry)).first() is None


def test_a_deeply_nested_inbound_html_part_is_shown_within_the_parsing_budgets(client, team, sent):
    # nh3 builds its tree in time quadratic in nesting (100,000 nested divs took 29 s): the page
    # holds the markup to the budgets first, so hostile HTML cannot tie up a web worker
    deep = "<div>" * 100_000 + "Shipped it" + "</div>" * 100_000
    to = reply_address(
        "test-secret-key-0123456789-abcdefXYZ", "reply.test", member_id("bob@example.com"), date(2026, 11, 23)
    )
    raw = (
        f"From: bob@example.com\r\nTo: {to}\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + deep + "\r\n"
    ).encode()
    iid = client.post("/inbound/raw", content=raw, headers=AUTH).json()["id"]
    drain()
    sign_in(client, sent, "ada@example.com")
    html = client.get(f"/mail/inbound/{iid}/html")
    assert html.status_code == 200 and "Shipped it" in html.text
    assert html.text.count("<div>") <= 1024


def test_the_senders_page_shows_pass_through_and_an_operator_switches_it(client, team, sent):
    from app.accounts.users import make_operator
    from app.relay import passthrough
    from tests.app.relay.test_passthrough import NOW, api_row, kinds, send

    sign_in(client, sent, "ada@example.com")
    client.get("/")  # the session's CSRF token
    assert post(client, "/mail/senders/pass-through", {"mode": "on"}).status_code == 403
    with session() as s:
        make_operator(s, "ada@example.com", now=utcnow())
        passthrough.evaluate(s, now=utcnow(), settings=get_settings())
    page = client.get("/mail/senders").text
    assert '<h2 id="pass-through">Pass-through</h2>' in page
    assert (
        "<tr><th>Mode</th><td>auto</td></tr>" in page
        and '<span class="state" id="pass-through-active">no</span>' in page
    )
    assert "nothing waiting" in page and "300 s, off again below 150 s" in page
    assert post(client, "/mail/senders/pass-through", {"mode": "on"}).status_code == 303
    r = client.get("/mail/senders")
    assert "Pass-through is on, active: bulk mail goes out untracked." in r.text
    assert (
        "(set by ada@example.com, " in r.text
        and 'id="pass-through-active">yes</span> <span class="muted">since ' in r.text
    )
    assert "switched on 1 time(s), 0 message(s) passed through" in r.text
    bulk = api_row("bulk", at=NOW, batch_id="nl-1")
    assert send([bulk], NOW)[0] == {bulk: "sent"}
    page = client.get(f"/mail/outbound/{bulk}").text  # the message's own page says it went untracked
    assert '<td class="state">pass_through</td>' in page and "sent without open and click tracking" in page
    r = post(client, "/mail/senders/pass-through", {"mode": "sometimes"})
    assert r.status_code == 422 and "Mode must be one of auto, on, off" in r.text
    assert "switched on 1 time(s), 1 message(s) passed through" in r.text
    assert post(client, "/mail/senders/pass-through", {"mode": "auto"}).status_code == 303
    r = client.get("/mail/senders")
    assert "Pass-through is auto, not active: mail is tracked as asked." in r.text
    later = api_row("later", at=NOW, batch_id="nl-1")
    assert send([later], NOW)[0] == {later: "sent"} and "pass_through" not in kinds(later)
