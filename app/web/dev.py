"""The development inbox: every message the maildir transport delivered."""

from __future__ import annotations

import mailbox
import re
from email import policy
from email.parser import BytesParser

from starlette.requests import Request
from starlette.responses import HTMLResponse

from app.web.auth import render
from app.web.common import in_thread

_KEY = re.compile(r"^[A-Za-z0-9._,:=-]{1,200}$")


def _box(request: Request) -> mailbox.Maildir:
    from app.relay.transports import MaildirTransport

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


async def inbox(request: Request):
    """GET /dev/inbox: the maildir, newest first."""
    if request.app.state.settings.production:
        return HTMLResponse("Not found", status_code=404)
    rows = await in_thread(_list, request)
    return render(request, None, "inbox.html", {"messages": rows})


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
        "headers": list(msg.items()),
        "text": text.get_content() if text else "",
        "html": html.get_content() if html else "",
    }


async def message(request: Request):
    """GET /dev/inbox/{key}: one message's headers, text and HTML (sandboxed)."""
    key = request.path_params["key"]
    if request.app.state.settings.production or not _KEY.match(key):
        return HTMLResponse("Not found", status_code=404)
    data = await in_thread(_one, request, key)
    if data is None:
        return HTMLResponse("No such message", status_code=404)
    return render(request, None, "inbox_message.html", data)
