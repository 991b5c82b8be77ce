"""The team's webhooks page (admins): endpoints (add, with the secret shown once; remove), the recent
deliveries with every attempt, and Replay. Thin over app.relay.webhooks."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.errors import RequestError
from app.models import WebhookDelivery, WebhookEndpoint, utcnow
from app.relay import webhooks
from app.web.pages.framework import Ctx, FormError, back, confirm, page, render

RECENT = 30  # deliveries the page shows

# what each kind means, as the page says it
KIND_WORDS = {
    "sent": "a message was handed to the receiving server",
    "delivered": "the provider says it was delivered",
    "deferred": "an attempt failed for now; it is retried",
    "bounced": "the recipient's server refused it",
    "complained": "the recipient marked it as spam",
    "opened": "the open pixel was loaded",
    "clicked": "a tracked link was followed",
    "unsubscribed": "the recipient unsubscribed",
    "inbound_received": "a member's reply was processed",
    "entry_created": "an entry was stored",
}


def _url(ctx: Ctx) -> str:
    return f"/teams/{ctx.team.id}/settings/webhooks"


def _page(request: Request, ctx: Ctx, new: WebhookEndpoint | None = None):
    rows = webhooks.deliveries(ctx.s, ctx.team.id, limit=RECENT)
    endpoints = webhooks.endpoints(ctx.s, ctx.team.id)
    data = {
        "endpoints": endpoints,
        "urls": {e.id: e.url for e in endpoints},
        "deliveries": rows,
        "attempts": webhooks.attempts(ctx.s, [d.id for d in rows]),
        "kinds": KIND_WORDS,
        "new": new,
        "retry_hours": request.app.state.settings.webhook_retry_hours,
    }
    return render(request, ctx, "settings_webhooks.html", data)


@page("admin", form=_page)
def endpoints(request: Request, ctx: Ctx):
    """GET/POST /teams/{tid}/settings/webhooks: the page; POST adds an endpoint and shows its secret
    once (on this answer, not after a redirect: the secret never goes into the session cookie)."""
    if request.method != "POST":
        return _page(request, ctx)
    kinds = [k for k in webhooks.KINDS if ctx.form.get(f"kind_{k}")]
    if not kinds:
        raise FormError({"kinds": "Tick at least one kind of event to send."})
    try:
        new = webhooks.add(
            ctx.s,
            ctx.team.id,
            ctx.form.get("url", ""),
            kinds,
            now=utcnow(),
            settings=request.app.state.settings,
            description=" ".join(ctx.form.get("description", "").split())[:200],
        )
    except RequestError as e:
        field = "url" if str(e).startswith("url") else "kinds" if str(e).startswith("kinds") else "url"
        raise FormError({field: str(e)[0].upper() + str(e)[1:] + "."}) from None
    return _page(request, ctx, new)


@page("admin")
def endpoint_remove(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/webhooks/{webhook_id}/remove: no more POSTs to it (asks first)."""
    e = ctx.s.get(WebhookEndpoint, request.path_params["webhook_id"])
    if e is None or e.team_id != ctx.team.id:
        raise HTTPException(404, "No such webhook endpoint.")
    confirm(ctx, f"Remove the endpoint {e.url}? Its deliveries not made yet are given up.")
    webhooks.remove(ctx.s, ctx.team.id, e.id, now=utcnow())
    return back(_url(ctx), f"Endpoint {e.url} removed.", request)


@page("admin")
def delivery_replay(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/webhooks/deliveries/{delivery_id}/replay: queue the delivery again."""
    d = ctx.s.get(WebhookDelivery, request.path_params["delivery_id"])
    if d is None or d.team_id != ctx.team.id:
        raise HTTPException(404, "No such webhook delivery.")
    if ctx.s.get(WebhookEndpoint, d.endpoint_id) is None:
        raise HTTPException(409, "Its endpoint was removed: there is nowhere to send it.")
    webhooks.replay(ctx.s, ctx.team.id, d.id, now=utcnow(), settings=request.app.state.settings)
    return back(_url(ctx), f"Delivery {d.id} ({d.kind}) queued again: it is sent within moments.", request)
