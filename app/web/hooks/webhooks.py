"""What every provider webhook does around the provider's own code: find it by name, refuse or
warn when its secret is unset, verify, pass Amazon SNS's checks, and map every failure to a
status the provider handles right.

Status codes follow the providers' retry rules (docs/inbound.md): a request that is not
proven is 401 (so a misconfiguration is retried rather than dropped), a body that is not
the provider's format 400, anything that is our transient fault 503, which every provider
retries. This module names no provider: what differs is said by the provider's class.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.inbound import sns
from app.inbound.accept import Replayed
from app.models import utcnow
from app.web.common import TooLarge, error, in_thread, read_limited
from parsers.providers import PROVIDERS, AuthError, EventError, NoWebhook, Payload, PayloadError, Provider

log = logging.getLogger("donebox.webhooks")


class Refused(Exception):
    """Raised to answer a client error: ``status`` and the reason."""

    def __init__(self, status: int, reason: str, headers: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers


def provider_for(name: str, *, events: bool = False) -> Provider:
    """The provider posting to /inbound/{name} (or /events/{name}); Refused 404 naming the known ones."""
    known = [p.name for p in PROVIDERS.values() if (p.event_setting if events else p.webhook)]
    if name not in known:
        what = "event" if events else "inbound"
        raise Refused(404, f"no {what} provider called {name[:40]!r} (known: {', '.join(known)})")
    return PROVIDERS[name]


def unconfigured(provider: Provider, setting: str, what: str, settings, logger: logging.Logger) -> None:
    """A webhook whose ``setting`` is unset: Refused 404 in production (and for providers never
    open); in development a loud warning, and the request goes on unauthenticated."""
    if settings.production or not provider.open_in_development:
        raise Refused(404, f"the {provider.name} {what} endpoint is not configured ({setting})")
    logger.warning(
        "!!! %s %s webhook has no %s: accepting UNAUTHENTICATED requests (development only; "
        "production refuses them with 404) !!!",
        provider.name,
        what,
        setting,
    )


def authenticate(provider: Provider, check, request: Request, body: bytes, secret, max_age_s: int) -> None:
    """Run ``check`` (the provider's verify or verify_events); an AuthError becomes Refused with
    its status and the provider's challenge."""
    try:
        check(request.headers, body, secret, now=utcnow(), max_age_s=max_age_s)
    except AuthError as e:
        challenge = {"WWW-Authenticate": provider.challenge} if provider.challenge else None
        raise Refused(e.status, str(e), challenge) from None


async def read_body(request: Request, settings, what: str) -> bytes:
    """The request body, at most MAX_INBOUND_BYTES; Refused 413 past it."""
    try:
        return await read_limited(request, settings.max_inbound_bytes)
    except TooLarge:
        raise Refused(413, f"{what} larger than {settings.max_inbound_bytes} bytes") from None


async def sns_preflight(payload: Payload, settings, *, pinned: bool, setting: str) -> JSONResponse | None:
    """SNS signature and subscription handshake (app.inbound.sns.preflight) off the event loop; a
    response when the request carries no notification."""
    early = await in_thread(sns.preflight, payload.json, settings, pinned=pinned, setting=setting)
    return None if early is None else JSONResponse(early)


async def answer(work, what: str) -> JSONResponse:
    """Await a webhook's handler, mapping every failure to a status its provider handles right:
    4xx with the reason for what it should not send again, 503 (retried) for our faults."""
    try:
        return await work
    except Refused as e:
        return JSONResponse({"error": e.reason}, status_code=e.status, headers=e.headers)
    except Replayed:
        return error(401, "this webhook token was already used (replay)")
    except AuthError as e:
        return error(e.status, str(e))
    except NoWebhook as e:
        return error(404, str(e))
    except (PayloadError, EventError) as e:
        return error(400, str(e))
    except sns.CertUnavailable as e:
        return error(503, f"{e}; retry later")
    except Exception:  # noqa: BLE001 - our fault, maybe transient: 503 makes every provider retry
        log.exception("%s failed; answered 503 so the provider retries", what)
        return error(503, "temporary failure: nothing was stored, retry later")
