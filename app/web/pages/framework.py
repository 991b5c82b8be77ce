"""Who is asking, and may they: sessions, CSRF, roles per team, and the ``page`` decorator.

Every HTML endpoint is wrapped in ``page(need=...)``. It sends a signed-out visitor
to /signin, checks the CSRF token of every POST, opens one database session, and
resolves the ``tid`` path parameter to a team the user belongs to (operators: any
team). A team the user is not in answers 404, as if it did not exist; a role that
is too low answers 403. The handler itself is sync and runs in the thread pool.

    need: "observer" | "member" | "admin"  (in the team of the path)
          "mail"      (operator, or admin of at least one team)
          "operator"  (instance operator)
          None        (signed in, nothing more)
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from sqlmodel import Session
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse

import app.web.pages.present  # noqa: F401 - registers the entry_html filter
from app.accounts.users import RANK, membership, memberships
from app.db import session
from app.models import Member, Team, User
from app.web.common import in_thread, templates
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


@dataclass
class Ctx:
    """What a page handler gets: the DB session, the user, and the team of the path with the role."""

    s: Session
    user: User
    form: dict = field(default_factory=dict)
    team: Team | None = None
    member: Member | None = None  # the user's own Member row in ``team`` (None for a visiting operator)
    role: str = ""  # admin | member | observer in ``team``; operators count as admin

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


def page(need: str | None = "observer"):
    """Wrap a sync ``handler(request, ctx)`` with sign-in, CSRF, team and role checks."""

    def wrap(handler):
        @functools.wraps(handler)
        async def endpoint(request: Request):
            form = {}
            if request.method == "POST":
                form = dict(await request.form())
                check_csrf(request, form.pop("csrf", None))
            uid = request.session.get("uid")
            signin = RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)
            if uid is None:
                return signin

            def run():
                with session() as s:
                    user = s.get(User, uid)
                    if user is None or user.session_epoch != request.session.get("epoch"):
                        return None  # gone, or signed out since this session began
                    ctx = Ctx(s=s, user=user, form=form)
                    tid = request.path_params.get("tid")
                    if tid is not None:
                        _resolve(ctx, tid, need or "observer")
                    elif need == "operator" and not user.is_operator:
                        raise HTTPException(403, "This needs an instance operator.")
                    elif need == "mail" and ctx.admin_team_ids() == []:
                        raise HTTPException(403, "This needs a team admin or an instance operator.")
                    return handler(request, ctx)

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
    """A page from templates/web with the navigation's context (user, teams, csrf)."""
    base = {"csrf": csrf_token(request), "user": None, "my_teams": [], "team": None, "role": ""}
    base["flash"] = request.session.pop("flash", "")
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
    base.update(data or {})
    return templates.TemplateResponse(request, name, base, status_code=status)


def back(url: str, flash: str = "", request: Request | None = None) -> RedirectResponse:
    """303 to ``url`` (after a POST), with a one-shot message shown on the next page."""
    if request is not None and flash:
        request.session["flash"] = flash
    return RedirectResponse(url, status_code=303)
