"""Sends through the relay by API: validate a request into an outbox row, schedule it, cancel it.

A message with ``send_at`` in the future starts ``scheduled`` and the scheduler's
tick moves it to ``queued`` in bulk when it falls due (``outbox.release_due``);
until then ``cancel`` / ``cancel_batch`` can stop it. The content travels in the
row's ``context`` JSON and is rendered by ``templates/email/api.{txt,html}`` (or
the caller's chosen template), so nothing of the caller's ever becomes a header.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from app.errors import RenderError, RequestError
from app.models import MAX_ID, ApiToken, OutboundMessage, Team, bad_text, id_in_range
from app.relay import outbox, quotas
from app.relay.render import TEMPLATES, render_parts
from app.settings import Settings
from parsers.html_bounds import bound_html
from parsers.message import html_to_text

ADDRESS = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_BATCH = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_TEMPLATE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")  # a leading "_" marks a layout, not a message
# they need the check-in domain's context
INTERNAL_TEMPLATES = frozenset({"reminder", "digest", "weekly", "nudge", "mention", "blocker"})
MAX_SUBJECT = 998  # RFC 5322 line length
EARLIEST_SEND_AT = datetime(2000, 1, 1, tzinfo=UTC)  # before this a send_at is a mistake, not "now"
FIELDS = frozenset({"to", "subject", "text", "html", "template", "context", "send_at", "idempotency_key"})
FIELDS |= {"batch_id", "team_id"}


@dataclass(frozen=True)
class Accepted:
    """What POST /api/messages answers."""

    id: int
    state: str
    duplicate: bool
    send_at: datetime | None
    batch_id: str | None
    team_id: int | None = None  # whose quota it counts against (not answered)


def _string(body: dict, name: str, *, required: bool = False, limit: int = 1_000_000) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise RequestError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string")
    if len(value) > limit:
        raise RequestError(f"{name} is longer than {limit} characters")
    why = bad_text(value)
    if why:
        raise RequestError(f"{name} {why}", 422)
    return value


def _send_at(value, now: datetime, max_ahead_s: int) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError("send_at must be an ISO 8601 string, e.g. 2026-11-24T09:00:00+01:00")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise RequestError(f"send_at is not an ISO 8601 date-time: {value[:60]!r}") from None
    if when.tzinfo is None:
        raise RequestError("send_at needs a UTC offset (e.g. +01:00 or Z): a local time is ambiguous")
    try:
        when = when.astimezone(UTC)
    except OverflowError:  # year 1 at +14:00 is before the first representable instant
        raise RequestError(f"send_at is out of range: {value[:60]!r}", 422) from None
    if when < EARLIEST_SEND_AT:
        raise RequestError(f"send_at is before {EARLIEST_SEND_AT:%Y-%m-%d}: {value[:60]!r}", 422)
    if when - now > timedelta(seconds=max_ahead_s):
        raise RequestError(f"send_at is more than {max_ahead_s // 86400} days ahead")
    return when


def _content(body: dict) -> tuple[str, dict]:
    """(template, context) from text/html or template/context."""
    text, html = _string(body, "text"), _string(body, "html")
    template = _string(body, "template", limit=64)
    if template is not None:
        if text is not None or html is not None:
            raise RequestError("give either text/html or template with context, not both")
        if not _TEMPLATE.match(template) or template in INTERNAL_TEMPLATES:
            raise RequestError(f"unknown template {template!r}")
        if not all((TEMPLATES / "email" / f"{template}.{ext}").is_file() for ext in ("txt", "html")):
            raise RequestError(f"unknown template {template!r}")
        context = body.get("context", {})
        if not isinstance(context, dict):
            raise RequestError("context must be a JSON object")
        if any(not isinstance(k, str) or k.startswith("_") for k in context):
            raise RequestError("context keys must be strings not starting with '_' (reserved)")
        try:
            render_parts(template, context)  # fail now with the reason, not later in a worker
        except RenderError as e:
            raise RequestError(f"the template does not render with this context: {e}") from None
        return template, context
    if body.get("context") is not None:
        raise RequestError("context goes with template")
    if not text and not html:
        raise RequestError("give text, html, or both (or a template)")
    if html is not None:
        # CSS inlining and tracking parse it in a worker; past the budgets that parse would be
        # quadratic (or overflow css-inline's stack): refuse at the door, with the reason
        cuts = bound_html(html).notes
        if cuts:
            raise RequestError(f"html is past what donebox will parse: {'; '.join(cuts)}")
    if text is None:
        text = html_to_text(html)
    return "api", {"text": text, "html": html or ""}


def _team_id(s: Session, body: dict, token: ApiToken) -> int | None:
    team_id = body.get("team_id")
    if team_id is None:
        return token.team_id
    if not isinstance(team_id, int) or isinstance(team_id, bool):
        raise RequestError("team_id must be an integer")
    if not id_in_range(team_id):
        raise RequestError(f"team_id must be from 1 to {MAX_ID}", 422)
    if token.team_id is not None and team_id != token.team_id:
        raise RequestError("this token may only send for its own team", 403)
    if s.get(Team, team_id) is None:
        raise RequestError(f"no team {team_id}")
    return team_id


def create(s: Session, body, token: ApiToken, *, now: datetime, settings: Settings) -> Accepted:
    """Validate one send request and store it (scheduled or queued); idempotent by its key."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    to = _string(body, "to", required=True, limit=320).strip()
    if not ADDRESS.match(to):
        raise RequestError(f"to is not an email address: {to[:80]!r}")
    subject = _string(body, "subject", required=True, limit=MAX_SUBJECT)
    if "\r" in subject or "\n" in subject:
        raise RequestError("subject must be one line (no CR or LF)")
    template, context = _content(body)
    send_at = _send_at(body.get("send_at"), now, settings.api_max_schedule_s)
    key = _string(body, "idempotency_key", limit=200)
    if key is not None and not _KEY.match(key):
        raise RequestError("idempotency_key must be 1-200 printable ASCII characters without spaces")
    batch_id = _string(body, "batch_id", limit=200)
    if batch_id is not None and not _BATCH.match(batch_id):
        raise RequestError("batch_id must be 1-200 of A-Z a-z 0-9 . _ : -")
    team_id = _team_id(s, body, token)
    scope = f"t{token.team_id}" if token.team_id is not None else "all"
    later = send_at is not None and send_at > now
    mid, created = outbox.create(
        s,
        now=now,
        idempotency_key=f"api:{scope}:{key}" if key else f"api:{uuid.uuid4().hex}",
        kind="api",
        team_id=team_id,
        to_addr=to,
        subject=subject,
        template=template,
        context=json.dumps(context, sort_keys=True),
        message_id=outbox.new_message_id(settings.mail_from.rsplit("@", 1)[-1]),
        state="scheduled" if later else "queued",
        send_at=send_at,
        batch_id=batch_id,
        lease_until=None if later else now + timedelta(seconds=settings.lease_s),
    )
    row = s.get(OutboundMessage, mid)
    return Accepted(mid, row.state, not created, row.send_at, row.batch_id, row.team_id)


def check_quotas(s: Session, accepted: list[Accepted], *, now: datetime, settings: Settings) -> None:
    """Raise QuotaExceeded when the rows just made for one submission (``accepted``, all created at
    ``now`` in this transaction) take a team past its quota; the caller's rollback undoes them all."""
    teams: dict[int | None, int] = {}
    for a in accepted:
        if not a.duplicate:
            teams[a.team_id] = teams.get(a.team_id, 0) + 1
    for team_id, new in teams.items():
        quotas.check_team(s, team_id, new, now=now, settings=settings)


def _visible(token: ApiToken):
    cond = OutboundMessage.kind == "api"
    if token.team_id is not None:
        cond = cond & (OutboundMessage.team_id == token.team_id)
    return cond


def cancel(s: Session, message_id: int, token: ApiToken, *, now: datetime) -> str:
    """Cancel one API message that is still scheduled; its state after. RequestError 404/409."""
    state = s.execute(
        select(OutboundMessage.state).where(OutboundMessage.id == message_id, _visible(token))
    ).scalar()
    if state is None:
        raise RequestError(f"no message {message_id}", 404)
    if state == "cancelled":
        return state
    if outbox.transition(
        s, message_id, "cancelled", expected="scheduled", now=now, detail="cancelled by API"
    ):
        return "cancelled"
    state = s.execute(select(OutboundMessage.state).where(OutboundMessage.id == message_id)).scalar()
    raise RequestError(
        f"message {message_id} is already {state}: only scheduled messages can be cancelled", 409
    )


def cancel_batch(s: Session, batch_id: str, token: ApiToken, *, now: datetime) -> dict:
    """Cancel every still-scheduled message of a batch; counts. RequestError 404 for an unknown batch."""
    if not _BATCH.match(batch_id):
        raise RequestError("batch_id must be 1-200 of A-Z a-z 0-9 . _ : -")
    cond = _visible(token) & (OutboundMessage.batch_id == batch_id)
    cancelled = outbox.cancel_many(s, cond, now=now, detail=f"batch {batch_id} cancelled by API")
    states = list(s.execute(select(OutboundMessage.state).where(cond)).scalars())
    if not states:
        raise RequestError(f"no batch {batch_id}", 404)
    return {
        "batch_id": batch_id,
        "cancelled": len(cancelled),
        "already_cancelled": states.count("cancelled") - len(cancelled),
        "not_cancelled": sum(1 for st in states if st != "cancelled"),
    }
