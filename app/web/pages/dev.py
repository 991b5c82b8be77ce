"""The development inbox: every message the maildir transport delivered."""

from __future__ import annotations

import mailbox
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid

from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.checkins.outgoing import digest_now, remind_now
from app.db import session
from app.inbound.accept import accept_many, item
from app.models import utcnow
from app.relay.transports.maildir import MaildirTransport
from app.settings import get_settings
from app.web.common import in_thread
from app.web.pages.framework import back, posted_form, render_page
from jobs.enqueue import enqueue_deliveries, enqueue_processing
from parsers.message import raw_message_id
from parsers.providers.base import Keys

_KEY = re.compile(r"^[A-Za-z0-9._,:=-]{1,200}$")


def _box(request: Request) -> mailbox.Maildir:
    return MaildirTransport(request.app.state.settings.mail_dir)._box  # creates the folders if needed


def _parse(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


def _list(request: Request) -> list[dict]:
    box = _box(request)
    rows = []
    for key in box.iterkeys():
        try:
            data = box.get_bytes(key)
        except KeyError:
            continue
        msg = _parse(data)
        rows.append(
            {
                "key": key,
                "to": msg["To"],
                "subject": msg["Subject"],
                "date": msg["Date"],
                "kind": msg["X-Donebox-Kind"] or "",
                "time": box.get_message(key).get_date(),
            }
        )
    rows.sort(key=lambda r: r["time"], reverse=True)
    return rows


NOT_FOUND = "The development pages exist only outside production."


async def inbox(request: Request):
    """GET /dev/inbox: the maildir, newest first."""
    if request.app.state.settings.production:
        raise HTTPException(404, NOT_FOUND)
    rows = await in_thread(_list, request)
    return await render_page(request, "inbox.html", {"messages": rows})


def _one(request: Request, key: str):
    try:
        data = _box(request).get_bytes(key)
    except KeyError:
        return None
    msg = _parse(data)
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    return {
        "key": key,
        "to": msg["To"],
        "reply_to": msg["Reply-To"] or "",
        "headers": list(msg.items()),
        "text": text.get_content() if text else "",
        "html": html.get_content() if html else "",
    }


def _message_key(request: Request) -> str:
    key = request.path_params["key"]
    if request.app.state.settings.production:
        raise HTTPException(404, NOT_FOUND)
    if not _KEY.match(key):
        raise HTTPException(404, "No such message in the development inbox.")
    return key


async def message(request: Request, errors: dict | None = None, values: dict | None = None):
    """GET /dev/inbox/{key}: one message's headers, text and HTML (sandboxed)."""
    key = _message_key(request)
    data = await in_thread(_one, request, key)
    if data is None:
        raise HTTPException(404, "No such message in the development inbox.")
    status = 422 if errors else 200
    data.update(errors=errors or {}, values=values or {})
    return await render_page(request, "inbox_message.html", data, status=status)


def _reply_bytes(original: bytes, text: str) -> bytes:
    """The reply a mail client would send: new text on top, the original quoted under it."""
    msg = _parse(original)
    body = msg.get_body(("plain",))
    quoted = "\n".join("> " + line for line in (body.get_content() if body else "").splitlines())
    reply = EmailMessage()
    reply["From"] = msg["To"]
    reply["To"] = msg["Reply-To"] or msg["From"]
    reply["Subject"] = "Re: " + (msg["Subject"] or "")
    reply["In-Reply-To"] = msg["Message-ID"] or ""
    reply["Message-ID"] = make_msgid(domain="dev.localhost")
    reply.set_content(f"{text.strip()}\n\nOn {msg['Date']}, {msg['From']} wrote:\n{quoted}\n")
    return reply.as_bytes()


def _store_reply(request: Request, key: str, text: str) -> int | None:
    try:
        original = _box(request).get_bytes(key)
    except KeyError:
        return None
    raw = _reply_bytes(original, text)
    with session() as s:
        keys = Keys(message_id=raw_message_id(raw), raw_mime=raw)
        iid, _ = accept_many(s.connection(), [item("dev", keys)], now=utcnow())[0]
    return iid


REPLY_MAX_CHARS = 100_000


async def reply(request: Request):
    """POST /dev/inbox/{key}/reply: answer a delivered reminder as its recipient would; back on the
    message's page with a word (the dev inbox needs no sign-in, so no page that does)."""
    key = _message_key(request)
    form = await posted_form(request)
    text = str(form.get("text", "")).strip()
    if text.strip("- \n") == "" or len(text) > REPLY_MAX_CHARS:
        why = f"Write a reply: one thing per line, at most {REPLY_MAX_CHARS:,} characters."
        return await message(request, errors={"text": why}, values=form)
    iid = await in_thread(_store_reply, request, key, text)
    if iid is None:
        raise HTTPException(404, "No such message in the development inbox.")
    enqueue_processing(iid)
    done = f"Reply sent (inbound message {iid}): processed in a moment, its entries show on the team's page."
    return back(f"/dev/inbox/{key}", done, request)


def _send_now(what: str) -> int:
    """Make today's reminders or digests not made yet; their number."""
    make = {"remind": remind_now, "digest": digest_now}[what]
    with session() as s:
        ids = make(s, now=utcnow(), settings=get_settings())
    enqueue_deliveries(ids)
    return len(ids)


async def send_now(request: Request):
    """POST /dev/remind and /dev/digest: today's reminders or digests at once (each once a day);
    back on the inbox with how many were queued."""
    if request.app.state.settings.production:
        raise HTTPException(404, NOT_FOUND)
    await posted_form(request)
    what = request.url.path.rsplit("/", 1)[-1]
    n = await in_thread(_send_now, what)
    noun = {"remind": "reminder", "digest": "digest"}[what]
    if n:
        plural = "s" if n != 1 else ""
        done = f"Queued {n} {noun}{plural}: they show up here once delivered (reload in a moment)."
    else:
        done = f"No {noun} to send: today's were sent already, or nobody is due one today."
    return back("/dev/inbox", done, request)
