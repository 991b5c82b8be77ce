"""Who is asking, and may they: sessions, CSRF, roles per team, the ``page`` decorator, refused
forms, confirmations and the one-shot flash message.

Every HTML endpoint is wrapped in ``page(need=...)``. It sends a signed-out visitor
to /signin before anything of a POST's body is read, reads the form with a limit
(FORM_MAX_BYTES), checks its CSRF token, opens one database session, and
resolves the ``tid`` path parameter to a team the user belongs to (operators: any
team). A team the user is not in answers 404, as if it did not exist; a role that
is too low answers 403. The handler itself is sync and runs in the thread pool.

    need: "observer" | "member" | "admin"  (in the team of the path)
          "mail"      (operator, or admin of at least one team)
          "operator"  (instance operator)
          None        (signed in, nothing more)

A handler refuses a submitted form by raising ``FormError({field: reason})``: the decorator rolls
back what the handler did and answers 422 with the page's form (``page(form=view)``) shown again,
each reason beside its field and every field holding what was typed. A destructive action is
marked by calling ``confirm(ctx, question)`` once the handler knows the action is allowed: a POST
without ``confirm=yes`` changes nothing and answers a page asking the question (the templates offer
the same step in a ``<details>`` holding the second button, with no script). After an action,
``back(url, message, request)`` redirects and the next page shows the message once (``flash``:
kept in the signed session cookie, popped by ``render``).
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import app.web.pages.present  # noqa: F401 - registers the entry_html filter
from app.accounts.users import RANK, membership, memberships
from app.db import session
from app.models import Member, Team, User
from app.web.common import BadInput, TooLarge, check_fields, check_url, in_thread, read_limited, templates
from jobs.enqueue import enqueue_deliveries, enqueue_processing

log = logging.getLogger("donebox.web")


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, given) -> None:
    """Raise 403 unless ``given`` is the session's CSRF token."""
    expected = request.session.get("csrf", "")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise HTTPException(
            403, "The form expired or did not come from this site: reload the page and retry."
        )


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FIELDS = 1000


def refused(e: BadInput) -> HTTPException:
    """The page's error for a value common.py refused: its status, its reason as a sentence."""
    return HTTPException(e.status, e.reason[0].upper() + e.reason[1:] + ".")


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """The POSTed form as text fields, its body read only up to ``limit`` bytes (HTTPException 413
    past it, 400 for a file or a malformed body, 422 naming a field holding a NUL); a body that is
    not a form is left unread and gives {}."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in FORM_TYPES:
        return {}
    try:
        body = await read_limited(request, limit)
    except TooLarge:
        raise HTTPException(413, f"The form is larger than {limit} bytes.") from None
    if ctype == FORM_TYPES[0]:
        try:
            fields = dict(
                parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
            )
        except ValueError as e:
            raise HTTPException(400, f"The form cannot be read: {e}.") from None
    else:  # parsed from the bytes already read: nothing reaches a temporary file

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(
            max_files=0, max_fields=MAX_FIELDS, max_part_size=limit
        )
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        await form.close()
    try:
        check_fields(fields)
    except BadInput as e:
        raise refused(e) from None
    return fields


async def posted_form(request: Request) -> dict[str, str]:
    """A POST's form once its CSRF token checks out; the body is read only when the session holds
    a token (a visitor who never loaded a form of ours gets 403 with nothing read)."""
    if not request.session.get("csrf"):
        check_csrf(request, None)
    form = await read_form(request, request.app.state.settings.form_max_bytes)
    check_csrf(request, form.pop("csrf", None))
    return form


class FormError(Exception):
    """Raised by a page handler when a submitted form is refused: ``errors`` maps the id of a field
    of the page to the reason (a sentence); ``status`` (422, or 429 for a quota) and ``headers``
    go on the answer, which is the page's form shown again (see ``page``)."""

    def __init__(self, errors: dict[str, str], status: int = 422, headers: dict[str, str] | None = None):
        super().__init__("; ".join(errors.values()))
        self.errors, self.status, self.headers = errors, status, headers or {}

    @classmethod
    def of(cls, e: Exception, default: str = "form", *, at: str = "", before: str = "") -> FormError:
        """A domain error (TeamError, ScheduleError, BadInput...) as a FormError on the field ``at``,
        else its own ``field``, else ``default``; its text a sentence, without the field's name in
        front, after ``before``."""
        own = getattr(e, "field", "")
        text = str(e).removeprefix(f"{own}: ") if own else str(e)
        return cls({at or own or default: sentence(before + text)})


class Unconfirmed(Exception):
    """Raised by ``confirm`` when a destructive POST came without ``confirm=yes``; the ``page``
    decorator answers a page asking the question, whose button posts the form again, confirmed."""


def confirm(ctx: Ctx, question: str) -> None:
    """Go on only if the POST confirmed the destructive action (``confirm=yes``); otherwise
    nothing is changed and the question is asked (raises Unconfirmed)."""
    if ctx.form.get("confirm") != "yes":
        raise Unconfirmed(question)


def sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def flash(request: Request, message: str) -> None:
    """Show ``message`` once, on the next page rendered for this session (a success, said after
    an action; kept in the signed session cookie)."""
    request.session["flash"] = message


def _session_user(s: Session, request: Request) -> User | None:
    """The user this session signed in, or None: nobody, gone, or signed out since it began."""
    uid = request.session.get("uid")
    user = s.get(User, uid) if isinstance(uid, int) else None
    return user if user is not None and user.session_epoch == request.session.get("epoch") else None


def _live_user(request: Request) -> bool:
    with session() as s:
        return _session_user(s, request) is not None


@dataclass
class Ctx:
    """What a page handler gets: the DB session, the user, and the team of the path with the role."""

    s: Session
    user: User
    form: dict = field(default_factory=dict)
    team: Team | None = None
    member: Member | None = None  # the user's own Member row in ``team`` (None for a visiting operator)
    role: str = ""  # admin | member | observer in ``team``; operators count as admin
    errors: dict = field(default_factory=dict)  # field id -> reason, when a FormError is shown
    posted: str = ""  # the name of the handler whose form was refused (a page with several forms)

    def admin_team_ids(self) -> list[int] | None:
        """Teams whose mail this user may see: None means every team (operator)."""
        if self.user.is_operator:
            return None
        return [t.id for m, t in memberships(self.s, self.user.email) if m.role == "admin"]


def _resolve(ctx: Ctx, tid: int, need: str) -> None:
    team = ctx.s.get(Team, tid)
    member = membership(ctx.s, ctx.user.email, tid) if team else None
    if team is None or (member is None and not ctx.user.is_operator):
        raise HTTPException(404, "No such team.")
    ctx.team, ctx.member = team, member
    ctx.role = "admin" if ctx.user.is_operator else member.role
    if RANK.get(ctx.role, -1) < RANK[need]:
        raise HTTPException(403, f"This needs the {need} role in {team.name}.")


def _confirm_page(request: Request, ctx: Ctx, question: str) -> Response:
    fields = {k: v for k, v in ctx.form.items() if k != "confirm"}
    referer = request.headers.get("referer", "")
    home = str(request.base_url)
    data = {"question": question, "action": request.url.path, "fields": fields}
    data["back"] = "/" + referer.removeprefix(home) if referer.startswith(home) else "/"
    return render(request, ctx, "confirm.html", data)


def _refused(request: Request, ctx: Ctx, e: FormError, handler, form: Callable | None) -> Response:
    """The page of ``form`` shown again with the reasons and the submitted values."""
    ctx.s.rollback()  # nothing the refused handler did is kept
    if form is None:
        raise HTTPException(e.status, " ".join(e.errors.values()), headers=e.headers or None)
    ctx.errors, ctx.posted = e.errors, handler.__name__
    response = form(request, ctx)
    response.status_code = e.status
    response.headers.update(e.headers)
    return response


def page(need: str | None = "observer", *, form: Callable | None = None):
    """Wrap a sync ``handler(request, ctx)`` with sign-in, CSRF, team and role checks.

    ``form``: the sync ``view(request, ctx)`` that renders the page holding the handler's form,
    shown again (422) when the handler raises FormError. A handler that calls ``confirm`` without
    the confirmation gets the question asked instead, its work rolled back."""

    def wrap(handler):
        @functools.wraps(handler)
        async def endpoint(request: Request):
            uid = request.session.get("uid")
            signin = RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)
            if uid is None:
                return signin
            try:
                check_url(request)
            except BadInput as e:
                raise refused(e) from None
            form_data = {}
            if request.method == "POST":  # the session is proven before a byte of the body is read
                if not await in_thread(_live_user, request):
                    request.session.clear()
                    return signin
                form_data = await posted_form(request)

            def run():
                with session() as s:
                    user = _session_user(s, request)
                    if user is None:
                        return None  # gone, or signed out since this session began
                    ctx = Ctx(s=s, user=user, form=form_data)
                    tid = request.path_params.get("tid")
                    if tid is not None:
                        _resolve(ctx, tid, need or "observer")
                    elif need == "operator" and not user.is_operator:
                        raise HTTPException(403, "This needs an instance operator.")
                    elif need == "mail" and ctx.admin_team_ids() == []:
                        raise HTTPException(403, "This needs a team admin or an instance operator.")
                    try:
                        return handler(request, ctx)
                    except FormError as e:
                        return _refused(request, ctx, e, handler, form)
                    except Unconfirmed as e:
                        ctx.s.rollback()
                        return _confirm_page(request, ctx, str(e))

            response = await in_thread(run)
            if response is None:
                request.session.clear()
                return signin
            queued = getattr(request.state, "after_commit", None)
            if queued:  # outbox rows the handler made, committed now: deliver them
                enqueue_deliveries(queued)
            inbound = list(getattr(request.state, "after_commit_inbound", ()))
            if inbound:
                enqueue_processing(inbound)
            return response

        endpoint.need = need  # read by the access-control tests
        return endpoint

    return wrap


def render(request: Request, ctx: Ctx | None, name: str, data: dict | None = None, status: int = 200):
    """A page from templates/web with the navigation's context (user, teams, csrf), the flash
    message (once), and a refused form's ``errors`` and submitted ``values`` (see FormError)."""
    base = {"csrf": csrf_token(request), "user": None, "my_teams": [], "team": None, "role": ""}
    base["flash"] = request.session.pop("flash", "")
    base["errors"], base["values"], base["posted"] = {}, {}, ""
    base["dev"] = not request.app.state.settings.production
    if ctx is not None:
        base.update(
            user=ctx.user,
            my_teams=[t for _, t in memberships(ctx.s, ctx.user.email)],
            team=ctx.team,
            role=ctx.role,
            me=ctx.member,
            can_mail=ctx.user.is_operator or ctx.admin_team_ids() != [],
        )
        if ctx.errors:
            base.update(errors=ctx.errors, values=ctx.form, posted=ctx.posted)
    base.update(data or {})
    return templates.TemplateResponse(request, name, base, status_code=status)


def back(url: str, message: str = "", request: Request | None = None) -> RedirectResponse:
    """303 to ``url`` (after a POST), with a one-shot message shown on the next page."""
    if request is not None and message:
        flash(request, message)
    return RedirectResponse(url, status_code=303)


def _signed_in_ctx(request: Request, s: Session) -> Ctx | None:
    user = _session_user(s, request)
    return None if user is None else Ctx(s=s, user=user)


def render_for_session(request: Request, name: str, data: dict | None = None, status: int = 200) -> Response:
    """``render`` for a page outside ``page`` (errors, the dev inbox, sign-in): with the signed-in
    header when the session is a live one, the signed-out header otherwise (sync: run in a thread)."""
    try:
        with session() as s:
            return render(request, _signed_in_ctx(request, s), name, data, status)
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 - an error page must not fail for want of the database
        log.exception("the header of %s could not be read: shown signed out", request.url.path)
        return render(request, None, name, data, status)


async def render_page(request: Request, name: str, data: dict | None = None, status: int = 200) -> Response:
    """``render_for_session`` off the event loop."""
    return await in_thread(render_for_session, request, name, data, status)
