"""Sign-in by email: ask for a link, open it, sign out; plus the error pages."""

from __future__ import annotations

import logging

from sqlalchemy import update
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

from app import logs
from app.accounts import users
from app.db import session
from app.models import User, utcnow
from app.web.common import in_thread
from app.web.pages.framework import csrf_token, posted_form, render, render_page
from jobs.enqueue import enqueue_deliveries

log = logging.getLogger("donebox.web")


def _safe_next(value) -> str:
    value = value if isinstance(value, str) else ""
    return value if value.startswith("/") and not value.startswith(("//", "/\\")) else "/"


async def signin_form(request: Request):
    """GET /signin: the email form."""
    if request.session.get("uid"):
        return RedirectResponse("/", status_code=303)
    return render(request, None, "signin.html", {"next": _safe_next(request.query_params.get("next"))})


def _request(email: str, settings) -> int | None:
    with session() as s:
        return users.request_signin(s, email, now=utcnow(), settings=settings)


async def signin_request(request: Request):
    """POST /signin: email a sign-in link (the same answer whether or not the address is known)."""
    form = await posted_form(request)
    email = users.normalize_email(form.get("email", ""))
    if not email:
        data = {
            "errors": {"email": "That is not an email address."},
            "values": form,
            "next": form.get("next"),
        }
        return render(request, None, "signin.html", data, status=422)
    request.session["next"] = _safe_next(form.get("next"))
    mid = await in_thread(_request, email, request.app.state.settings)
    if mid is not None:
        enqueue_deliveries([mid])
    per_hour = request.app.state.settings.mails_per_hour_per_recipient
    return render(request, None, "signin_sent.html", {"email": email, "per_hour": per_hour})


async def signin_link(request: Request):
    """GET /signin/{token}: a button that signs in (mail scanners open links: a GET must not use it)."""
    return render(request, None, "signin_confirm.html", {"token": request.path_params["token"]})


def _consume(token: str, settings):
    with session() as s:
        user = users.consume(s, token, now=utcnow(), settings=settings)
        return (user.id, user.session_epoch) if user else None


async def signin_consume(request: Request):
    """POST /signin/{token}: use the link once; a fresh session on success."""
    await posted_form(request)
    found = await in_thread(_consume, request.path_params["token"][:500], request.app.state.settings)
    if found is None:
        why = "This sign-in link is invalid, already used or expired. Ask for a new one."
        return render(request, None, "error.html", {"message": why, "heading": "Link not valid"}, status=400)
    nxt = request.session.get("next", "/")
    request.session.clear()  # a new session: nothing from before sign-in carries over
    request.session["uid"], request.session["epoch"] = found
    csrf_token(request)
    return RedirectResponse(_safe_next(nxt), status_code=303)


def _end_sessions(uid: int) -> None:
    with session() as s:
        s.execute(update(User).where(User.id == uid).values(session_epoch=User.session_epoch + 1))


async def signout(request: Request):
    """POST /signout: end every session of the user (a copied cookie stops working too)."""
    await posted_form(request)
    uid = request.session.get("uid")
    if uid is not None:
        await in_thread(_end_sessions, uid)
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


TITLES = {
    400: "That did not work",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    413: "Too large",
    422: "That did not work",
    429: "Too many requests",
    500: "Something went wrong",
}


async def http_error(request: Request, exc: HTTPException):
    """HTTPException -> a JSON error under /api/, an HTML page elsewhere (with the signed-in header
    when the session is a live one)."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    data = {"message": exc.detail, "status": exc.status_code, "heading": TITLES.get(exc.status_code, "Sorry")}
    response = await render_page(request, "error.html", data, status=exc.status_code)
    response.headers.update(exc.headers or {})
    return response


async def server_error(request: Request, exc: Exception):
    """An unexpected exception -> 500, as JSON under /api/ and as the app's error page elsewhere
    (Starlette logs the exception and re-raises it after this answer)."""
    message = "Something went wrong on our side; it is logged. Try again in a moment."
    if request.url.path.startswith("/api/"):
        response = JSONResponse({"error": message}, status_code=500)
    else:
        data = {"message": message, "status": 500, "heading": TITLES[500]}
        response = await render_page(request, "error.html", data, status=500)
    if rid := logs.current().get("request_id"):  # this answer leaves outside app.web.request_ids
        response.headers["x-request-id"] = rid
    return response
