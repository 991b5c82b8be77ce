"""Sends through the relay by API: check a request (``prepare``), store it as one outbox row per
recipient (``store``), one request or a batch of them; schedule them, cancel them.

A message with ``send_at`` in the future starts ``scheduled`` and the scheduler's
tick moves it to ``queued`` in bulk when it falls due (``outbox.release_due``);
until then ``cancel`` / ``cancel_batch`` can stop it.

A message of only to/subject/text/html/template keeps its content in the row's ``context`` JSON and
is rendered by ``templates/email/api.{txt,html}`` (or the caller's chosen template), so nothing of
the caller's ever becomes a header. One that uses from, cc, bcc, reply_to, headers or attachments
is **composed**: its parts checked and built into one message by app.relay.compose (the template
rendered into it), stored once (app.relay.composed) and named by every recipient's row
(``body_id``, ``from_addr``, ``_track`` from the team's tracking setting). Tags and metadata go in
the context either way (app.relay.labels).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import MessageError

from sqlalchemy import delete, select
from sqlmodel import Session

from app.errors import RenderError, RequestError
from app.models import (
    MAX_ID,
    ApiToken,
    MessageEvent,
    OutboundBody,
    OutboundMessage,
    Team,
    TeamSettings,
    bad_text,
    id_in_range,
)
from app.relay import compose, composed, domains, labels, outbox, quotas
from app.relay.render import TEMPLATES, render_parts
from app.settings import Settings
from parsers.html_bounds import bound_html
from parsers.message import html_to_text

ADDRESS = compose.ADDRESS
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_BATCH = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_TEMPLATE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")  # a leading "_" marks a layout, not a message
# donebox's own mail (they need the check-in domain's context, and a sign-in or invite look-alike
# with a caller's links is phishing): an API caller may not send them; tests/app/web/api check
# that every template in templates/email is either one of these or "api"
INTERNAL_TEMPLATES = frozenset(
    {"reminder", "digest", "weekly", "nudge", "mention", "blocker", "participation", "away", "comment"}
    | {"signin", "invite"}
)
MAX_SUBJECT = 998  # RFC 5322 line length
EARLIEST_SEND_AT = datetime(2000, 1, 1, tzinfo=UTC)  # before this a send_at is a mistake, not "now"
FIELDS = frozenset({"to", "subject", "text", "html", "template", "context", "send_at", "idempotency_key"})
FIELDS |= {"batch_id", "team_id", "from", "cc", "bcc", "reply_to", "model", "headers", "attachments"}
FIELDS |= {"tags", "metadata"}
# the fields that make a composed message (app.relay.compose) rather than one rendered per recipient
COMPOSED_FIELDS = ("from", "cc", "bcc", "reply_to", "headers", "attachments")
MAX_RECIPIENTS = 50  # to, cc and bcc together: one row each
MAX_BATCH = 500  # messages in one POST /api/messages/batch


@dataclass(frozen=True)
class Accepted:
    """What POST /api/messages answers: the message's rows, one per recipient (``id`` the first's)."""

    id: int
    state: str
    duplicate: bool
    send_at: datetime | None
    batch_id: str | None
    team_id: int | None = None  # whose quota it counts against (not answered)
    ids: tuple[int, ...] = ()

    def __post_init__(self):
        if not self.ids:
            object.__setattr__(self, "ids", (self.id,))


@dataclass(frozen=True)
class Prepared:
    """A send request checked, nothing stored yet: what ``store`` makes rows of."""

    team_id: int | None
    recipients: tuple[str, ...]  # the envelope: to, cc and bcc, each address once
    subject: str
    template: str  # '' for a composed message
    context: dict
    raw: bytes | None  # the composed message, or None: rendered from template/context per row
    from_addr: str
    message_id: str
    send_at: datetime | None
    key: str | None  # the row keys' stem when the client gave an idempotency_key
    batch_id: str | None


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


def _model(body: dict) -> dict | None:
    """The template's variables: ``model``, or ``context`` (its older name)."""
    if body.get("model") is not None and body.get("context") is not None:
        raise RequestError("give model or context (its older name), not both")
    name = "model" if body.get("model") is not None else "context"
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(f"{name} must be a JSON object")
    if any(not isinstance(k, str) or k.startswith("_") for k in value):
        raise RequestError(f"{name} keys must be strings not starting with '_' (reserved)")
    for reserved in labels.NAMES:
        if reserved in value:
            raise RequestError(f"{name}.{reserved} is reserved (the message's own {reserved} field)")
    return value


def _content(body: dict) -> tuple[str, dict]:
    """(template, context) from text/html or template/model."""
    text, html = _string(body, "text"), _string(body, "html")
    template = _string(body, "template", limit=64)
    model = _model(body)
    if template is not None:
        if text is not None or html is not None:
            raise RequestError("give either text/html or template with model, not both")
        if not _TEMPLATE.match(template) or template in INTERNAL_TEMPLATES:
            raise RequestError(f"unknown template {template!r}")
        if not all((TEMPLATES / "email" / f"{template}.{ext}").is_file() for ext in ("txt", "html")):
            raise RequestError(f"unknown template {template!r}")
        context = model or {}
        try:
            render_parts(template, context)  # fail now with the reason, not later in a worker
        except RenderError as e:
            raise RequestError(f"the template does not render with this model: {e}") from None
        return template, context
    if model is not None:
        raise RequestError("context goes with template" if "context" in body else "model goes with template")
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


def _tracked(s: Session, team_id: int | None) -> bool:
    """The team's tracking setting now (as the check-in producers stamp it on their rows)."""
    if team_id is None:
        return False
    row = s.get(TeamSettings, team_id)
    return bool(row and row.tracking)


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


def _composed(body: dict) -> bool:
    """Whether the request needs a composed message (rather than one rendered per recipient): a
    field of COMPOSED_FIELDS, or a To header that is more than one bare address."""
    if any(body.get(name) is not None for name in COMPOSED_FIELDS):
        return True
    to = body.get("to")
    items = to if isinstance(to, list) else [to]
    return len(items) != 1 or isinstance(items[0], dict) or (isinstance(items[0], str) and "<" in items[0])


def prepare(s: Session, body, token: ApiToken, *, now: datetime, settings: Settings) -> Prepared:
    """Check one send request (RequestError naming the field); nothing is stored."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    if body.get("to") is None:
        raise RequestError("to is required")
    to = compose.mailboxes("to", body["to"], most=MAX_RECIPIENTS)
    if not to:
        raise RequestError("to needs at least one address")
    cc = compose.mailboxes("cc", body.get("cc"), most=MAX_RECIPIENTS)
    bcc = compose.mailboxes("bcc", body.get("bcc"), most=MAX_RECIPIENTS)
    envelope = list(dict.fromkeys(m.address.lower() for m in (*to, *cc, *bcc)))  # each address once
    if len(envelope) > MAX_RECIPIENTS:
        raise RequestError(f"to, cc and bcc have {len(envelope)} recipients, more than {MAX_RECIPIENTS}")
    first = {}
    for m in (*to, *cc, *bcc):
        first.setdefault(m.address.lower(), m.address)
    subject = _string(body, "subject", required=True, limit=MAX_SUBJECT)
    if "\r" in subject or "\n" in subject:
        raise RequestError("subject must be one line (no CR or LF)")
    template, context = _content(body)
    tags, metadata = labels.tags(body.get("tags")), labels.metadata(body.get("metadata"))
    send_at = _send_at(body.get("send_at"), now, settings.api_max_schedule_s)
    key = _string(body, "idempotency_key", limit=200)
    if key is not None and not _KEY.match(key):
        raise RequestError("idempotency_key must be 1-200 printable ASCII characters without spaces")
    batch_id = _string(body, "batch_id", limit=200)
    if batch_id is not None and not _BATCH.match(batch_id):
        raise RequestError("batch_id must be 1-200 of A-Z a-z 0-9 . _ : -")
    team_id = _team_id(s, body, token)
    scope = f"t{token.team_id}" if token.team_id is not None else "all"
    extra = {k: v for k, v in (("tags", tags), ("metadata", metadata)) if v is not None}
    message_id = outbox.new_message_id(settings.mail_domain)
    raw, from_addr = None, ""
    if _composed(body):
        sender = _sender(s, body, team_id, settings)
        headers = compose.headers(body.get("headers"))
        text, html = render_parts(template, context)
        budget = settings.max_message_bytes - len(text.encode()) - len(html.encode())
        if budget < 0:
            raise RequestError(
                f"text and html are larger than MAX_MESSAGE_BYTES ({settings.max_message_bytes} bytes)", 413
            )
        files = compose.attachments(body.get("attachments"), budget=budget, limit=settings.max_message_bytes)
        parts = compose.Parts(
            sender=sender,
            to=to,
            cc=cc,
            reply_to=compose.mailboxes("reply_to", body.get("reply_to"), most=MAX_RECIPIENTS),
            subject=subject,
            text=text,
            html=html,
            headers=headers,
            attachments=files,
        )
        try:
            raw = compose.build(parts)
        except (ValueError, TypeError, IndexError, MessageError) as e:  # what the email package refuses
            raise RequestError(f"the message cannot be composed: {str(e)[:200]}") from None
        from_addr = sender.address if body.get("from") is not None else ""
        given = next((v for k, v in headers.items() if k.lower() == "message-id"), None)
        message_id = given or message_id
        template, context = "", {"_track": _tracked(s, team_id)}
    return Prepared(
        team_id=team_id,
        recipients=tuple(first[a] for a in envelope),
        subject=subject,
        template=template,
        context={**context, **extra},
        raw=raw,
        from_addr=from_addr,
        message_id=message_id,
        send_at=send_at,
        key=f"api:{scope}:{key}" if key else None,
        batch_id=batch_id,
    )


def _sender(s: Session, body: dict, team_id: int | None, settings: Settings) -> compose.Mailbox:
    """The From: the request's (on a sending domain of the team), or MAIL_FROM."""
    if body.get("from") is None:  # as the rendered messages have it
        return compose.Mailbox(settings.mail_from, "donebox")
    sender = compose.mailbox("from", body["from"])
    why = domains.check_from(s, team_id, sender.address, settings)
    if why:
        raise RequestError(f"from: {why}", 422)
    return sender


def _row_keys(p: Prepared) -> list[str]:
    if p.key is None:
        return [f"api:{uuid.uuid4().hex}" for _ in p.recipients]
    return [p.key if i == 0 else f"{p.key}#{i}" for i in range(len(p.recipients))]


def store(s: Session, p: Prepared, *, now: datetime, settings: Settings) -> Accepted:
    """Store a prepared request: the composed body once, one row per recipient (scheduled or
    queued). A known idempotency_key answers the rows it made before, storing nothing."""
    keys = _row_keys(p)
    M = OutboundMessage
    if p.key is not None:
        stem = [p.key] + [f"{p.key}#{i}" for i in range(1, MAX_RECIPIENTS)]
        known = s.execute(select(M).where(M.idempotency_key.in_(stem)).order_by(M.id)).scalars().all()
        if known:
            return _accepted(known, duplicate=True)
    body_id = composed.store(s, p.raw) if p.raw is not None else None
    later = p.send_at is not None and p.send_at > now
    context = json.dumps(p.context, sort_keys=True)
    ids = []
    for key, to in zip(keys, p.recipients, strict=True):
        mid, created = outbox.create(
            s,
            now=now,
            idempotency_key=key,
            kind="api",
            team_id=p.team_id,
            to_addr=to,
            subject=p.subject,
            template=p.template,
            context=context,
            message_id=p.message_id,
            state="scheduled" if later else "queued",
            send_at=p.send_at,
            batch_id=p.batch_id,
            lease_until=None if later else now + timedelta(seconds=settings.lease_s),
            body_id=body_id,
            from_addr=p.from_addr,
        )
        if not created:  # the same key stored at this moment by a concurrent request: its rows stand
            s.execute(delete(MessageEvent).where(MessageEvent.message_id.in_(ids)))
            for made in ids:
                s.delete(s.get(M, made))
            if body_id is not None:
                s.delete(s.get(OutboundBody, body_id))
            s.flush()
            known = s.execute(select(M).where(M.idempotency_key.in_(keys)).order_by(M.id)).scalars().all()
            return _accepted(known, duplicate=True)
        ids.append(mid)
    state = "scheduled" if later else "queued"
    return Accepted(ids[0], state, False, p.send_at, p.batch_id, p.team_id, tuple(ids))


def _accepted(rows: list, *, duplicate: bool) -> Accepted:
    first = rows[0]
    ids = tuple(r.id for r in rows)
    return Accepted(first.id, first.state, duplicate, first.send_at, first.batch_id, first.team_id, ids)


def create(s: Session, body, token: ApiToken, *, now: datetime, settings: Settings) -> Accepted:
    """Validate one send request and store it (scheduled or queued); idempotent by its key."""
    return store(s, prepare(s, body, token, now=now, settings=settings), now=now, settings=settings)


def create_batch(
    s: Session, body, token: ApiToken, *, now: datetime, settings: Settings
) -> list[Accepted | RequestError]:
    """Each message of ``{"messages": [...]}`` checked on its own and the good ones stored (in the
    caller's one transaction); per message, what was stored or why not (``messages[i].field``)."""
    if not isinstance(body, dict) or set(body) != {"messages"}:
        raise RequestError('the body must be {"messages": [...]}, and nothing else')
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of messages")
    if len(messages) > MAX_BATCH:
        raise RequestError(f"messages has {len(messages)} messages, more than {MAX_BATCH}")
    out: list[Accepted | RequestError] = []
    for i, message in enumerate(messages):
        try:
            p = prepare(s, message, token, now=now, settings=settings)
        except RequestError as e:
            out.append(RequestError(_within(f"messages[{i}]", str(e)), e.status))
            continue
        out.append(store(s, p, now=now, settings=settings))
    return out


_LEADING_FIELD = re.compile(r"^([a-z_]+)((?:\[\d+\])?(?:\.[^\s:]+)?)(?=[\s:]|$)")


def _within(where: str, reason: str) -> str:
    """``reason`` about a field, named inside ``where`` (``to is ...`` -> ``messages[3].to is ...``)."""
    m = _LEADING_FIELD.match(reason)
    if m and m.group(1) in FIELDS:
        return f"{where}.{reason}"
    return f"{where}: {reason}"


def check_quotas(s: Session, accepted: list[Accepted], *, now: datetime, settings: Settings) -> None:
    """Raise QuotaExceeded when the rows just made for one submission (``accepted``, all created at
    ``now`` in this transaction) take a team past its quota; the caller's rollback undoes them all."""
    teams: dict[int | None, int] = {}
    for a in accepted:
        if not a.duplicate:
            teams[a.team_id] = teams.get(a.team_id, 0) + len(a.ids)
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
