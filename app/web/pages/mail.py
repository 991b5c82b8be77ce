"""Mail operations for operators and team admins: outbound log and timelines, sending again
(app.relay.redrive), inbound log and reprocessing, the suppression list. A team admin sees only
their teams' mail; an operator sees all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as email_policy

import nh3
from sqlalchemy import func, or_, select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from app.accounts.users import normalize_email
from app.errors import RequestError
from app.inbound import corrections
from app.inbound.accept import STATES as STATES_IN
from app.inbound.corrections import CORRECTED
from app.inbound.process import QUARANTINED_NOTE, load_email, quarantined, reset_for_reprocess
from app.models import (
    Entry,
    InboundMessage,
    Member,
    OutboundMessage,
    Route,
    Sender,
    Suppression,
    Team,
    TeamRelay,
    id_in_range,
    utcnow,
)
from app.relay import composed, outbox, passthrough, quotas
from app.relay import redrive as redrives
from app.relay import suppressions as suppression_list  # the page below is named suppressions
from app.relay.admin import masked
from app.relay.chat import CHAT_KIND, Post
from app.relay.render import render_message
from app.web.common import BadInput, parse_day
from app.web.pages.framework import Ctx, FormError, back, confirm, page, refused, render
from app.web.security import SANDBOX_CSP
from parsers.html_bounds import bound_html
from parsers.message import InboundEmail
from parsers.quotes import RULES

PAGE_ROWS = 200
RAW_SHOWN = 256 * 1024
LINES_SHOWN = 2000  # lines of a reply the cut can be moved to (a longer body is mostly quote)
STATES = tuple(outbox.TRANSITIONS)
INBOUND_STATES = STATES_IN


def _day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        d = parse_day(value, "a date")
    except BadInput as e:
        raise refused(e) from None
    return datetime.combine(d + timedelta(days=1) if end else d, time(0), tzinfo=UTC)


def _team_member_ids(team_ids: list[int]):
    return select(Member.id).where(Member.team_id.in_(team_ids))


def _outbound_scope(ctx: Ctx, stmt):
    teams = ctx.admin_team_ids()
    return stmt if teams is None else stmt.where(OutboundMessage.team_id.in_(teams))


def _inbound_scope(ctx: Ctx, stmt):
    teams = ctx.admin_team_ids()
    return stmt if teams is None else stmt.where(InboundMessage.member_id.in_(_team_member_ids(teams)))


@page("mail")
def outbound_list(request: Request, ctx: Ctx):
    """GET /mail/outbound?state=&kind=&to=&since=&until=: the outbox, newest first."""
    return _outbound_list_page(request, ctx)


def _outbound_list_page(request: Request, ctx: Ctx):
    q = request.query_params
    M = OutboundMessage
    stmt = _outbound_scope(ctx, select(M))
    if q.get("state"):
        stmt = stmt.where(M.state == q["state"])
    if q.get("kind"):
        stmt = stmt.where(M.kind == q["kind"])
    if q.get("to"):
        stmt = stmt.where(func.lower(M.to_addr).contains(q["to"].strip().lower()[:320], autoescape=True))
    if since := _day(q.get("since")):
        stmt = stmt.where(M.created_at >= since)
    if until := _day(q.get("until"), end=True):
        stmt = stmt.where(M.created_at < until)
    rows = list(ctx.s.execute(stmt.order_by(M.id.desc()).limit(PAGE_ROWS)).scalars())
    kinds = ctx.s.execute(_outbound_scope(ctx, select(M.kind).distinct()).order_by(M.kind)).scalars()
    teams = ctx.admin_team_ids()
    team_rows = select(Team.id, Team.name).order_by(Team.name)
    if teams is not None:
        team_rows = team_rows.where(Team.id.in_(teams))
    return render(
        request,
        ctx,
        "mail_outbound.html",
        {
            "rows": rows,
            "q": q,
            "states": STATES,
            "kinds": list(kinds),
            "limit": PAGE_ROWS,
            "quotas": _quotas(ctx, request.app.state.settings),
            "redrivable": redrives.REDRIVABLE,
            "teams": ctx.s.execute(team_rows).all(),
            "redrive": ctx.form,  # the "Send all again" form's values, when it was refused
        },
    )


QUOTA_TEAMS = 50  # an operator sees the quotas of this many teams (those sending or with their own)


def _quotas(ctx: Ctx, settings) -> list[tuple[Team, quotas.TeamUsage]]:
    """Each team's application mail against its quotas: the admin's teams; for an operator, the
    teams that sent some in the last 24 hours or have quotas of their own."""
    now, team_ids = utcnow(), ctx.admin_team_ids()
    if team_ids is None:
        own = select(TeamRelay.team_id).where(
            or_(TeamRelay.quota_hour.is_not(None), TeamRelay.quota_day.is_not(None))
        )
        team_ids = sorted(set(quotas.teams_sending(ctx.s, now=now)) | set(ctx.s.execute(own).scalars()))
    shown = ctx.s.execute(select(Team).where(Team.id.in_(team_ids[:QUOTA_TEAMS])).order_by(Team.name))
    return [(t, quotas.team_usage(ctx.s, t.id, now=now, settings=settings)) for t in shown.scalars()]


def _scope(ctx: Ctx) -> tuple[int, ...] | None:
    teams = ctx.admin_team_ids()
    return None if teams is None else tuple(teams)


def _redrive_filter(ctx: Ctx) -> redrives.Filter:
    """The "Send all again" form's filter (refused with the reason on the list page)."""
    f = ctx.form
    state, team = f.get("state", ""), f.get("team", "")
    if state and state not in redrives.REDRIVABLE:
        raise FormError({"redrive": f"Only {', '.join(redrives.REDRIVABLE)} messages are sent again."})
    if team and not (team.isascii() and team.isdigit() and len(team) <= 9):
        raise FormError({"redrive": "That is not a team."})
    return redrives.Filter(
        team_id=int(team) if team else None,
        sender=f.get("sender", "").strip()[:64],
        states=(state,) if state else redrives.REDRIVABLE,
        domain=f.get("domain", "")[:255],
        since=_day(f.get("since")),
        until=_day(f.get("until"), end=True),
        scope=_scope(ctx),
    )


def _redrive(request: Request, ctx: Ctx, flt: redrives.Filter, *, dry_run: bool = False) -> redrives.Result:
    settings = request.app.state.settings
    now = utcnow()
    ids: list[int] = []
    result = redrives.redrive(
        ctx.s,
        flt,
        actor=ctx.user.email,
        now=now,
        lease_s=settings.lease_s,
        dry_run=dry_run,
        after_batch=ids.extend,
    )
    request.state.after_commit = ids  # committed batch by batch: delivered once the handler returns
    return result


@page("mail", form=_outbound_list_page)
def outbound_redrive_all(request: Request, ctx: Ctx):
    """POST /mail/outbound/redrive: send again every failed, deferred or suppressed message the
    form's filter matches (after a confirmation that says how many)."""
    flt = _redrive_filter(ctx)
    preview = _redrive(request, ctx, flt, dry_run=True)
    if not preview.redriven:
        why = (
            f" ({len(preview.skipped)} skipped: {next(iter(preview.skipped.values()))})"
            if preview.skipped
            else ""
        )
        raise FormError({"redrive": f"No message to send again matches{why}."})
    skipped = (
        f", and skip {len(preview.skipped)} (recipient still suppressed or expired)"
        if preview.skipped
        else ""
    )
    confirm(
        ctx,
        f"Send {len(preview.redriven)} messages again{skipped}? They go out as soon as a worker takes them.",
    )
    result = _redrive(request, ctx, flt)
    msg = f"{len(result.redriven)} messages are being sent again"
    if result.skipped:
        msg += f"; {len(result.skipped)} skipped (for example: {next(iter(result.skipped.values()))})"
    return back("/mail/outbound", msg + ".", request)


def _outbound(ctx: Ctx, mid: int) -> OutboundMessage:
    m = ctx.s.execute(_outbound_scope(ctx, select(OutboundMessage).where(OutboundMessage.id == mid))).scalar()
    if m is None:
        raise HTTPException(404, "No such message.")
    return m


def _render(ctx: Ctx, m: OutboundMessage, settings) -> tuple[str, str, str]:
    """(text, html, error) of the message as the relay would render it now."""
    try:
        _, text, html = render_message(ctx.s, m, settings)
    except Exception as e:  # noqa: BLE001 - shown to the operator, as the relay would record it
        return "", "", f"{type(e).__name__}: {e}"
    return text, html, ""


KEPT_SINCE = "0013_sent_content"  # the migration since which the bytes of sent mail are kept


@dataclass
class Content:
    """What the message page shows as the message's content, and what it is (``note``)."""

    note: str = ""
    text: str = ""
    html: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    kept: bool = False  # the bytes a transport received, not a rendering
    preview: bool = False  # rendered now, for a message not sent yet
    post: Post | None = None  # a chat post: what it says, shown as a chat shows it


def _part(msg: EmailMessage, kind: str) -> str:
    body = msg.get_body((kind,))
    return "" if body is None else body.get_content().replace("\r\n", "\n")


def _pretty(raw: bytes | str) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _chat_content(m: OutboundMessage, raw: bytes | None) -> Content:
    """A chat post: the JSON its webhook received, else the post as stored (its webhook URL, a
    secret, is never shown: the row names its destination)."""
    try:
        post = Post.from_json(m.context)
    except ValueError:
        post = None
    if raw is not None:
        when = f" at {m.sent_at:%Y-%m-%d %H:%M:%S} UTC" if m.sent_at else ""
        note = f"As POSTed to the webhook{when}: {len(raw)} bytes of JSON."
        return Content(note, _pretty(raw), kept=True, post=post)
    note = "The post as stored; it is formatted for the destination's service when sent."
    return Content(note, _pretty(m.context), preview=m.state in outbox.PRE_SEND, post=post)


def _content(ctx: Ctx, m: OutboundMessage, settings) -> Content:
    """The message as its transport received it, parsed from the kept bytes and never rendered
    again; a preview for a message not sent yet; otherwise why there is nothing to show."""
    if m.kind == "signin":
        return Content(note="Sign-in links are not shown here (nor kept).")
    raw = outbox.content(ctx.s, m.id)
    if m.kind == CHAT_KIND and m.purged_at is None:
        return _chat_content(m, raw)
    if raw is not None:
        msg = BytesParser(policy=email_policy).parsebytes(raw)
        headers = [(k, str(v)) for k, v in msg.items()]
        when = f" at {m.sent_at:%Y-%m-%d %H:%M:%S} UTC" if m.sent_at else ""
        note = f"As handed to the transport{when}: {len(raw)} bytes."
        return Content(note, _part(msg, "plain"), _part(msg, "html"), headers, kept=True)
    if m.purged_at is not None:
        return Content(note=f"The content was purged on {m.purged_at:%Y-%m-%d} (RETENTION_DAYS).")
    if m.body_id is not None:  # composed: its stored body, when no copy was kept
        return _composed(ctx, m)
    if m.state in outbox.PRE_SEND or m.state == "sending":
        text, html, err = _render(ctx, m, settings)
        note = "Preview: will be rendered when sent, with the data of that moment."
        return Content(note, text, html, error=err, preview=True)
    if m.state in ("failed", "cancelled", "suppressed"):
        return Content(
            note=f"No content kept: no transport received this message (or it was {m.state} before "
            f"donebox kept sent mail, migration {KEPT_SINCE})."
        )
    return Content(
        note=f"Content not kept: this message was sent before donebox kept the bytes of sent mail "
        f"(migration {KEPT_SINCE})."
    )


def _composed(ctx: Ctx, m: OutboundMessage) -> Content:
    """A composed message's stored body: its preview, or (a copy too large to keep per recipient)
    what was sent less the tracking and headers the relay added."""
    body = composed.load(ctx.s, m.body_id)
    if body is None:
        return Content(note="The message's stored body is gone (RETENTION_DAYS).")
    msg = BytesParser(policy=email_policy).parsebytes(body)
    headers = [(k, str(v)) for k, v in msg.items()]
    pending = m.state in outbox.PRE_SEND or m.state == "sending"
    if pending:
        note = "Preview: as the application composed it; tracking and missing headers are added when sent."
    elif m.sent_at is not None:
        note = (
            f"As the application composed it ({len(body)} bytes; copies this large are not kept per "
            "recipient): the copy sent also had the relay's tracking and headers."
        )
    else:
        note = f"Not sent ({m.state}); as the application composed it."
    return Content(note, _part(msg, "plain"), _part(msg, "html"), headers, preview=pending)


@page("mail")
def outbound_one(request: Request, ctx: Ctx):
    """GET /mail/outbound/{mid}: one message, its timeline of events and its content as sent."""
    return _outbound_page(request, ctx)


def _outbound_page(request: Request, ctx: Ctx):
    m = _outbound(ctx, request.path_params["mid"])
    content = _content(ctx, m, request.app.state.settings)
    team = ctx.s.get(Team, m.team_id) if m.team_id else None
    return render(
        request,
        ctx,
        "mail_outbound_one.html",
        {
            "m": m,
            "events": outbox.events(ctx.s, m.id),
            "content": content,
            "msg_team": team,
            "redrivable": m.state in redrives.REDRIVABLE,
        },
    )


@page("mail", form=_outbound_page)
def outbound_redrive(request: Request, ctx: Ctx):
    """POST /mail/outbound/{mid}/redrive: send a failed, deferred or suppressed message again."""
    m = _outbound(ctx, request.path_params["mid"])
    confirm(ctx, f"Send this message to {m.to_addr} again? Its attempts start over.")
    result = _redrive(request, ctx, redrives.Filter(ids=(m.id,), scope=_scope(ctx)))
    if m.id in result.skipped:
        raise FormError({"redrive": f"Not sent again: {result.skipped[m.id]}."}, 409)
    return back(f"/mail/outbound/{m.id}", "Queued again: it is sent in a moment (reload to see it).", request)


# inline styles kept so mail looks like mail: layout and text properties only, and no value that
# could name a resource or a script (SANDBOX_CSP would block the load anyway)
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = _ATTRIBUTES.get("*", set()) | {"style"}
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "line-height", "text-align", "text-decoration", "text-transform", "letter-spacing", "white-space",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-radius",
    "border-collapse", "width", "max-width", "height", "display", "vertical-align",
}  # fmt: skip
_STYLE_BAD = ("url(", "expression", "javascript", "@import", "\\")


def _style_filter(element: str, attribute: str, value: str) -> str | None:
    if attribute == "style" and any(bad in "".join(value.split()).lower() for bad in _STYLE_BAD):
        return None
    return value


def sandboxed(html: str, *, dead_links: str = "") -> HTMLResponse:
    """Mail HTML for an iframe: held to the parsing budgets (nh3's tree building is quadratic in
    nesting: 100,000 nested elements took 29 s), sanitized with nh3, served under a no-script
    sandbox policy. Links and images starting with ``dead_links`` lose their target (our tracked links and
    open pixel: looking at the page must not count as the recipient's click or open)."""

    def keep(element: str, attribute: str, value: str) -> str | None:
        if dead_links and attribute in ("href", "src") and value.startswith(dead_links):
            return None
        return _style_filter(element, attribute, value)

    clean = nh3.clean(
        bound_html(html).html,
        attributes=_ATTRIBUTES,
        filter_style_properties=_STYLE_PROPERTIES,
        attribute_filter=keep,
        url_schemes={"http", "https", "mailto"},
    )
    return HTMLResponse(clean, headers={"Content-Security-Policy": SANDBOX_CSP})


@page("mail")
def outbound_html(request: Request, ctx: Ctx):
    """GET /mail/outbound/{mid}/html: the HTML part as sent (or the preview), sandboxed."""
    m = _outbound(ctx, request.path_params["mid"])
    settings = request.app.state.settings
    return sandboxed(_content(ctx, m, settings).html, dead_links=f"{settings.base_url}/t/")


@page("mail")
def inbound_list(request: Request, ctx: Ctx):
    """GET /mail/inbound?state=&from=&since=&until=: received mail, newest first."""
    q = request.query_params
    M = InboundMessage
    stmt = _inbound_scope(
        ctx, select(M.id, M.provider, M.state, M.from_addr, M.subject, M.received_at, M.error)
    )
    if q.get("state"):
        stmt = stmt.where(M.state == q["state"])
    if q.get("from"):
        stmt = stmt.where(func.lower(M.from_addr).contains(q["from"].strip().lower()[:320], autoescape=True))
    if since := _day(q.get("since")):
        stmt = stmt.where(M.received_at >= since)
    if until := _day(q.get("until"), end=True):
        stmt = stmt.where(M.received_at < until)
    rows = ctx.s.execute(stmt.order_by(M.id.desc()).limit(PAGE_ROWS)).all()
    return render(
        request,
        ctx,
        "mail_inbound.html",
        {
            "rows": rows,
            "q": q,
            "states": INBOUND_STATES,
            "limit": PAGE_ROWS,
            "quarantined": quarantined(ctx.s) if ctx.admin_team_ids() is None else None,
        },
    )


def _inbound(ctx: Ctx, iid: int) -> InboundMessage:
    row = ctx.s.execute(_inbound_scope(ctx, select(InboundMessage).where(InboundMessage.id == iid))).scalar()
    if row is None:
        raise HTTPException(404, "No such inbound message.")
    return row


def _parsed(row: InboundMessage) -> InboundEmail:
    """The stored message parsed for display; when the parser gives up (an address-parser bomb in a
    header, say), an empty email whose note says so, and the page shows the raw text. A quarantined
    message's processing never finished: parsing it here could hang the web, so it is not parsed."""
    if row.state == "quarantined":
        return InboundEmail(notes=(QUARANTINED_NOTE,))
    try:
        return load_email(row)  # the provider's payload when stored (parsed-mode posts have no raw)
    except Exception as e:  # noqa: BLE001 - hostile bytes must not take the page down
        return InboundEmail(notes=(f"the message cannot be parsed ({type(e).__name__}): shown raw only",))


def _readable(ctx: Ctx, iid: int) -> tuple[InboundMessage, str]:
    """The inbound message and how the user may see it (app.inbound.corrections.who_may): its author,
    an admin of the author's team, an operator; another member of that team gets 403, others 404."""
    row = ctx.s.get(InboundMessage, iid) if id_in_range(iid) else None
    if row is None:
        raise HTTPException(404, "No such inbound message.")
    try:
        return row, corrections.who_may(ctx.s, row, ctx.user)
    except corrections.CutError as e:
        raise HTTPException(e.status, str(e)) from None


@page(None)  # its author too, not only the team's admins: who_may decides
def inbound_one(request: Request, ctx: Ctx):
    """GET /mail/inbound/{iid}: the raw message, what was extracted, where it was cut and by which
    rule (the line ``#cut``), the entries made; its author or an admin moves the cut here."""
    return _inbound_page(request, ctx)


def _inbound_page(request: Request, ctx: Ctx):
    row, role = _readable(ctx, request.path_params["iid"])
    made = list(ctx.s.execute(select(Entry).where(Entry.inbound_id == row.id).order_by(Entry.id)).scalars())
    raw = row.raw[:RAW_SHOWN].decode("utf-8", errors="replace")
    email = _parsed(row)
    member = ctx.s.get(Member, row.member_id) if row.member_id else None
    lines = corrections.lines_of(row)
    rule = RULES.get(row.cut_rule)
    return render(
        request,
        ctx,
        "mail_inbound_one.html",
        {
            "m": row,
            "viewer": role,  # author | admin | operator
            "lines": lines[:LINES_SHOWN],
            "lines_cut": len(lines) > LINES_SHOWN,
            "total_lines": len(lines),
            "cut_at": len(lines) if row.cut_at is None else row.cut_at,
            "rule_what": rule.what if rule else ("moved by a person" if row.cut_rule == CORRECTED else ""),
            "movable": row.state == "processed" and bool(lines),
            "reprocess": role == "operator"
            or (member is not None and member.team_id in ctx.admin_team_ids()),
            "corrections": corrections.history(ctx.s, row.id),
            "made": made,
            "raw": raw,
            "raw_cut": len(row.raw) > RAW_SHOWN,
            "has_html": bool(email.html),
            "notes": email.notes,
            "attachments": email.attached,
            "inline_parts": email.inline_parts,  # images the HTML shows by cid:, apart from attachments
            # what processing noted beyond the parse, such as entries cut (MAX_ENTRIES_PER_REPLY)
            "stored_notes": [n for n in row.notes.splitlines() if n and n not in email.notes],
            "sender": member,
        },
    )


@page(None)
def inbound_html(request: Request, ctx: Ctx):
    """GET /mail/inbound/{iid}/html: the message's HTML part, sanitized and sandboxed."""
    row, _ = _readable(ctx, request.path_params["iid"])
    return sandboxed(_parsed(row).html or "")


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


@page(None, form=_inbound_page)
def inbound_cut(request: Request, ctx: Ctx):
    """POST /mail/inbound/{iid}/cut end=N: "this was cut wrongly": the reply ends at line N. Its author
    or an admin of the team (else 403 with the reason); a line that is not one of the reply's, or keeps
    nothing, is refused beside the form (422); the entries are made again from the text above. Lines
    are numbered from 1, as the page shows them."""
    row, role = _readable(ctx, request.path_params["iid"])
    try:
        moved = corrections.move_cut(
            ctx.s,
            row,
            ctx.form.get("end", ""),
            user=ctx.user,
            role=role,
            now=utcnow(),
            settings=request.app.state.settings,
        )
    except corrections.CutError as e:
        if e.status == 422:
            raise FormError({e.field: str(e)}) from None
        raise HTTPException(e.status, str(e)) from None
    said = f"The reply now ends at line {moved.after}: {_entries(moved.made)} made from it"
    said += f" (replacing the {moved.deleted} it had made)." if moved.deleted else "."
    return back(f"/mail/inbound/{row.id}#cut", said, request)


@page("mail", form=_inbound_page)
def inbound_reprocess(request: Request, ctx: Ctx):
    """POST /mail/inbound/{iid}/reprocess: drop its entries and process the stored message again."""
    row = _inbound(ctx, request.path_params["iid"])
    confirm(
        ctx, "Reprocess this message? The entries it made are deleted and made again from the stored mail."
    )
    if not reset_for_reprocess(ctx.s, [row.id]):
        raise FormError({"reprocess": f"A message in state {row.state} cannot be reprocessed now."}, 409)
    request.state.after_commit_inbound = [row.id]
    msg = "Reprocessing: its entries were dropped and are made again in a moment (reload to see them)."
    return back(f"/mail/inbound/{row.id}", msg, request)


def _team_emails(teams: list[int]):
    return select(func.lower(Member.email)).where(Member.team_id.in_(teams))


@page("mail")
def suppressions(request: Request, ctx: Ctx):
    """GET /mail/suppressions: addresses donebox does not send to (team admins: their members')."""
    return _suppressions_page(request, ctx)


def _suppressions_page(request: Request, ctx: Ctx):
    stmt = select(Suppression).order_by(Suppression.id.desc())
    teams = ctx.admin_team_ids()
    if teams is not None:
        stmt = stmt.where(Suppression.email.in_(_team_emails(teams)))
    q = request.query_params.get("q", "").strip().lower()
    if q:
        stmt = stmt.where(Suppression.email.contains(q[:320], autoescape=True))
    rows = list(ctx.s.execute(stmt.limit(PAGE_ROWS)).scalars())
    refused = {r.id: suppression_list.refusal(r, teams) for r in rows}
    context = {"rows": rows, "q": q, "refused": refused, "now": utcnow()}
    return render(request, ctx, "mail_suppressions.html", context)


def _may_touch(ctx: Ctx, email: str) -> bool:
    teams = ctx.admin_team_ids()
    if teams is None:
        return True
    return ctx.s.execute(_team_emails(teams).where(func.lower(Member.email) == email)).first() is not None


def _owning_team(ctx: Ctx, email: str) -> int | None:
    """The team an admin's manual entry belongs to: their first team with this member; an operator's
    entry belongs to no team (instance-wide)."""
    teams = ctx.admin_team_ids()
    if teams is None:
        return None
    stmt = select(Member.team_id).where(Member.team_id.in_(teams), func.lower(Member.email) == email)
    return ctx.s.execute(stmt.order_by(Member.team_id).limit(1)).scalar()


@page("mail", form=_suppressions_page)
def suppression_add(request: Request, ctx: Ctx):
    """POST /mail/suppressions: stop sending to an address."""
    email = normalize_email(ctx.form.get("email", ""))
    if not email:
        raise FormError({"email": "That is not an email address."})
    if not _may_touch(ctx, email):
        raise FormError({"email": "Team admins suppress only their members' addresses."}, 403)
    detail = ctx.form.get("detail", "") or f"added by {ctx.user.email}"
    team_id = _owning_team(ctx, email)
    if not suppression_list.add(ctx.s, email, "manual", detail=detail, team_id=team_id, now=utcnow()):
        raise FormError({"email": f"{email} is already suppressed."})
    return back("/mail/suppressions", f"{email} is suppressed.", request)


@page("mail")
def suppression_remove(request: Request, ctx: Ctx):
    """POST /mail/suppressions/{sid}/remove: send to the address again."""
    sup = ctx.s.get(Suppression, request.path_params["sid"])
    if sup is None or not _may_touch(ctx, sup.email):
        raise HTTPException(404, "No such suppression.")
    why = suppression_list.refusal(sup, ctx.admin_team_ids())
    if why:
        raise HTTPException(403, f"Not removed: {why}.")
    confirm(ctx, f"Remove {sup.email} from the suppression list? donebox sends to the address again.")
    suppression_list.remove(ctx.s, sup.email)
    return back("/mail/suppressions", f"{sup.email} is no longer suppressed.", request)


@page("operator")
def senders(request: Request, ctx: Ctx):
    """GET /mail/senders: pass-through, senders (secrets masked), their last hour from the outbox,
    routes, team relays."""
    return _senders_page(request, ctx)


def _senders_page(request: Request, ctx: Ctx):
    since = utcnow() - timedelta(hours=1)
    outcomes: dict[str, dict[str, int]] = {}
    for name, state, n in ctx.s.execute(
        select(OutboundMessage.sender, OutboundMessage.state, func.count())
        .where(OutboundMessage.sender != "", OutboundMessage.updated_at >= since)
        .group_by(OutboundMessage.sender, OutboundMessage.state)
    ).all():
        outcomes.setdefault(name, {})[state] = n
    last_errors = dict(
        ctx.s.execute(
            select(OutboundMessage.sender, func.max(OutboundMessage.error))
            .where(
                OutboundMessage.sender != "", OutboundMessage.updated_at >= since, OutboundMessage.error != ""
            )
            .group_by(OutboundMessage.sender)
        ).all()
    )
    rows = [
        {
            "sender": snd,
            "url": masked(snd.url),
            "outcomes": outcomes.get(snd.name, {}),
            "error": last_errors.get(snd.name, ""),
        }
        for snd in ctx.s.execute(select(Sender).order_by(Sender.name)).scalars()
    ]
    teams = {t.id: t.name for t in ctx.s.execute(select(Team)).scalars()}
    state = passthrough.current(ctx.s)
    threshold = passthrough.threshold_of(state, request.app.state.settings)
    return render(
        request,
        ctx,
        "mail_senders.html",
        {
            "rows": rows,
            "routes": list(ctx.s.execute(select(Route).order_by(Route.domain)).scalars()),
            "relays": list(ctx.s.execute(select(TeamRelay)).scalars()),
            "team_names": teams,
            "pt": state,
            "pt_threshold": threshold,
            "pt_off_below": int(threshold * passthrough.OFF_FRACTION),
            "pt_modes": passthrough.MODES,
        },
    )


@page("operator", form=_senders_page)
def pass_through(request: Request, ctx: Ctx):
    """POST /mail/senders/pass-through: the operator sets pass-through's mode (auto, on, off)."""
    try:
        row = passthrough.set_mode(
            ctx.s,
            ctx.form.get("mode", ""),
            by=ctx.user.email,
            now=utcnow(),
            settings=request.app.state.settings,
        )
    except RequestError as e:
        raise FormError.of(e, at="mode") from None
    said = "active: bulk mail goes out untracked" if row.active else "not active: mail is tracked as asked"
    return back("/mail/senders", f"Pass-through is {row.mode}, {said}.", request)
