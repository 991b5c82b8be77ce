"""The sending domains page (/mail/domains): add a domain, the DNS records it must publish and which
are missing, verify now, remove. Team admins see and add their teams' domains (and see those of every
team); operators see all and may add one for every team. Everything is app.relay.domains'.
"""

from __future__ import annotations

from sqlmodel import select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.errors import RequestError
from app.models import SendingDomain, Team, utcnow
from app.relay import domains
from app.web.pages.framework import Ctx, FormError, back, confirm, page, render


def _teams(ctx: Ctx) -> list[Team]:
    """The teams the user may add a domain for."""
    ids = ctx.admin_team_ids()
    q = select(Team).order_by(Team.name)
    return list(ctx.s.exec(q if ids is None else q.where(Team.id.in_(ids))).all())


def _listed(ctx: Ctx) -> list[SendingDomain]:
    ids = ctx.admin_team_ids()
    if ids is None:
        return domains.listed(ctx.s)
    rows = {r.id: r for tid in ids for r in domains.listed(ctx.s, tid)}
    return sorted(rows.values(), key=lambda r: r.domain)


def _own(ctx: Ctx, did: int) -> SendingDomain:
    """A domain the user may verify or remove: an operator any, a team admin their teams'."""
    row = ctx.s.get(SendingDomain, did)
    ids = ctx.admin_team_ids()
    if row is None or (ids is not None and row.team_id not in ids):
        raise HTTPException(404, "No such sending domain.")
    return row


@page("mail")
def domain_list(request: Request, ctx: Ctx):
    """GET /mail/domains: the sending domains, their records and what is missing."""
    return _page(request, ctx)


def _page(request: Request, ctx: Ctx):
    settings = request.app.state.settings
    teams = _teams(ctx)
    rows = [domains.described(ctx.s, r, settings) for r in _listed(ctx)]
    context = {
        "rows": rows,
        "teams": teams,
        "team_names": {t.id: t.name for t in ctx.s.exec(select(Team)).all()},
        "operator": ctx.user.is_operator,
        "production": settings.production,
    }
    return render(request, ctx, "mail_domains.html", context)


@page("mail", form=_page)
def domain_add(request: Request, ctx: Ctx):
    """POST /mail/domains: make a domain a sending domain of a team (operators: of every team too)."""
    choice = ctx.form.get("team", "").strip()
    allowed = {str(t.id): t.id for t in _teams(ctx)}
    if choice == "" and ctx.user.is_operator:
        team_id = None
    elif choice in allowed:
        team_id = allowed[choice]
    else:
        raise FormError({"team": "Pick one of your teams."})
    try:
        row = domains.add(
            ctx.s, ctx.form.get("domain", ""), team_id, request.app.state.settings, now=utcnow()
        )
    except RequestError as e:
        raise FormError({"domain": str(e).removeprefix("domain: ").capitalize()}) from None
    msg = f"{row.domain} added: publish its DNS records below, then press Verify."
    return back("/mail/domains", msg, request)


@page("mail")
def domain_verify(request: Request, ctx: Ctx):
    """POST /mail/domains/{did}/verify: look its records up now."""
    row = _own(ctx, request.path_params["did"])
    domains.verify(ctx.s, row, request.app.state.settings, now=utcnow())
    missing = domains.missing(row)
    msg = (
        f"{row.domain} is verified."
        if not missing
        else f"{row.domain} is not verified: {', '.join(missing)}."
    )
    return back("/mail/domains", msg, request)


@page("mail")
def domain_remove(request: Request, ctx: Ctx):
    """POST /mail/domains/{did}/remove: delete the domain and its keys."""
    row = _own(ctx, request.path_params["did"])
    name = row.domain
    confirm(ctx, f"Remove {name}? Its DKIM keys are deleted; mail From it is refused from now on.")
    domains.remove(ctx.s, row)
    return back("/mail/domains", f"{name} is no longer a sending domain.", request)
