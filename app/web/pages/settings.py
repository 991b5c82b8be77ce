"""Settings pages: the team, its members (invite, roles, remove), one's own schedule, API tokens, chat."""

from __future__ import annotations

import uuid
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.accounts.users import normalize_email
from app.checkins import chat, questions, teams
from app.checkins.schedules import add_pause, effective, remove_pause, update_member_schedule
from app.checkins.teams import TeamError
from app.checkins.times import ScheduleError, local_date
from app.models import ROLES, ApiToken, Member, MemberPause, Suppression, Team, utcnow
from app.relay import outbox, quotas, suppressions
from app.relay.api_tokens import SCOPES, create_token
from app.relay.chat import SERVICES
from app.web.common import BadInput, parse_day
from app.web.pages.framework import Ctx, FormError, back, confirm, page, render, sentence

DAYS = (("1", "Mon"), ("2", "Tue"), ("3", "Wed"), ("4", "Thu"), ("5", "Fri"), ("6", "Sat"), ("7", "Sun"))
REFUSED = (ScheduleError, TeamError)  # the check-in domain's reasons, shown beside their field


@cache
def timezones() -> list[str]:
    """Every IANA zone name this system knows, sorted (the pickers' list)."""
    return sorted(available_timezones())


def _team_page(request: Request, ctx: Ctx):
    opts = teams.options(ctx.s, ctx.team.id)
    return render(
        request,
        ctx,
        "settings_team.html",
        {
            "opts": opts,
            "zones": timezones(),
            "days": DAYS,
            "reply_domains": request.app.state.settings.reply_domains,
            "questions": "\n".join(questions.of(opts)),
            "presets": questions.PRESETS,
            "max_questions": questions.MAX_QUESTIONS,
            "max_question_chars": questions.MAX_QUESTION_CHARS,
            "members": [m for m in _members(ctx) if m.active],
            "blocker_owner": teams.current(ctx.s, ctx.team.id)["blocker_owner"],
        },
    )


@page("admin", form=_team_page)
def team_form(request: Request, ctx: Ctx):
    """GET/POST /teams/{tid}/settings: name, default schedule, digest options (weekdays, weekly day,
    skip empty days), the admins' weekly participation summary, tracking, reply domain, questions,
    blocker owner; every field of the form is saved through update_team."""
    settings = request.app.state.settings
    if request.method == "POST":
        f = ctx.form
        weekly = f.get("weekly_day", "0").strip()
        nudge = f.get("nudge_hours", "0").strip() or "0"
        owner = f.get("blocker_owner", "").strip() or "0"
        try:
            if not (weekly.isascii() and weekly.isdigit() and len(weekly) == 1):
                raise ScheduleError("weekly_digest_day must be 0 (none) or an ISO weekday 1-7", "weekly_day")
            if not (nudge.isascii() and nudge.isdigit() and len(nudge) <= 3):
                raise teams.TeamError(
                    "nudge_hours must be a whole number of hours, 0 for no nudges", "nudge_hours"
                )
            if not (owner.isascii() and owner.isdigit() and len(owner) <= 18):
                raise teams.TeamError("blocker_owner must be one of the team's members", "blocker_owner")
            teams.update_team(
                ctx.s,
                ctx.team.id,
                now=utcnow(),
                name=f.get("name", ""),
                timezone=f.get("timezone", ""),
                reminder_time=f.get("reminder_time", ""),
                digest_time=f.get("digest_time", ""),
                workdays="".join(d for d, _ in DAYS if f.get(f"day{d}")),
                digest_workdays="".join(d for d, _ in DAYS if f.get(f"dday{d}")),
                digest_enabled=bool(f.get("digest_enabled")),
                digest_include_quiet=bool(f.get("digest_include_quiet")),
                skip_empty=bool(f.get("skip_empty")),
                weekly_day=int(weekly),
                tracking=bool(f.get("tracking")),
                participation_summary=bool(f.get("participation_summary")),
                reply_domain=f.get("reply_domain", ""),
                # a preset picked replaces the questions typed; a form without the field keeps them
                questions=f.get("preset") or (f.get("questions") if "questions" in f else None),
                nudge_hours=int(nudge),
                nudge_cutoff=f.get("nudge_cutoff") or None,  # a form without it keeps the cut-off
                # '' (or a form without the field: kept) names no owner: blockers go to the admins
                blocker_owner=int(owner) if "blocker_owner" in f else None,
                settings=settings,
            )
        except REFUSED as e:
            raise FormError.of(e, "form") from None
        return back(f"/teams/{ctx.team.id}/settings", "Team settings saved.", request)
    return _team_page(request, ctx)


def _members(ctx: Ctx) -> list[Member]:
    stmt = select(Member).where(Member.team_id == ctx.team.id).order_by(Member.active.desc(), Member.name)
    return list(ctx.s.execute(stmt).scalars())


def _members_page(request: Request, ctx: Ctx):
    rows = _members(ctx)
    emails = [m.email.lower() for m in rows]
    suppressed = dict(
        ctx.s.execute(
            select(Suppression.email, Suppression.reason).where(Suppression.email.in_(emails))
        ).all()
    )
    return render(
        request, ctx, "settings_members.html", {"members": rows, "roles": ROLES, "suppressed": suppressed}
    )


@page("admin")
def members(request: Request, ctx: Ctx):
    """GET /teams/{tid}/settings/members: who is in the team, with roles and mail state."""
    return _members_page(request, ctx)


@page("admin", form=_members_page)
def invite(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/members: add a member by email and send them an invitation."""
    f, settings = ctx.form, request.app.state.settings
    email = normalize_email(f.get("email", ""))
    if not email:
        raise FormError({"email": "That is not an email address."})
    now = utcnow()
    why = quotas.refusal(ctx.s, "invite", email, actor=ctx.user.email, now=now, settings=settings)
    if why:
        raise FormError({"email": f"Not invited: {why}."}, 429, {"Retry-After": "3600"})
    try:
        name = " ".join(f.get("name", "").split())[:200]
        m = teams.add_member(ctx.s, ctx.team, email, name=name, role=f.get("role", "member"), now=now)
    except REFUSED as e:
        raise FormError.of(e, "email") from None
    mid, _ = outbox.create(
        ctx.s,
        now=now,
        idempotency_key=f"invite:{m.id}:{uuid.uuid4().hex}",
        kind="invite",
        actor=ctx.user.email,
        team_id=ctx.team.id,
        member_id=m.id,
        to_addr=email,
        subject=f"You joined {ctx.team.name} on donebox",
        template="invite",
        context={
            "team_name": ctx.team.name,
            "inviter": ctx.user.email,
            "name": m.name,
            "link": f"{settings.base_url}/signin",
        },
        message_id=outbox.new_message_id(settings.mail_domain),
    )
    request.state.after_commit = [mid]
    return back(f"/teams/{ctx.team.id}/settings/members", f"Invited {email}.", request)


def _team_member(ctx: Ctx, mid: int) -> Member:
    m = ctx.s.get(Member, mid)
    if m is None or m.team_id != ctx.team.id:
        raise HTTPException(404, "No such member in this team.")
    return m


@page("admin", form=_members_page)
def member_role(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/members/{mid}/role: change a member's role (a team keeps one admin)."""
    m = _team_member(ctx, request.path_params["mid"])
    role = ctx.form.get("role", "")
    try:
        teams.set_role(ctx.s, m.id, role, now=utcnow())
    except REFUSED as e:
        raise FormError.of(e, at=f"role-{m.id}") from None
    return back(f"/teams/{ctx.team.id}/settings/members", f"{m.email} is now {role}.", request)


@page("admin", form=_members_page)
def member_remove(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/members/{mid}/remove: remove from the team (their entries stay)."""
    m = _team_member(ctx, request.path_params["mid"])
    try:
        teams.remove_member(ctx.s, m.id)
    except REFUSED as e:
        raise FormError.of(e, at=f"remove-{m.id}", before="not removed: ") from None
    # asked after the refusals (the last admin is refused at once); unconfirmed, this is rolled back
    confirm(ctx, f"Remove {m.email} from {ctx.team.name}? Their entries stay.")
    return back(f"/teams/{ctx.team.id}/settings/members", f"Removed {m.email}.", request)


def _schedule_page(request: Request, ctx: Ctx):
    if ctx.member is None:
        raise HTTPException(403, "Only members of the team have a schedule in it.")
    m, now = ctx.member, utcnow()
    sup = ctx.s.execute(select(Suppression).where(Suppression.email == m.email.lower())).scalar()
    pauses = ctx.s.execute(
        select(MemberPause)
        .where(
            MemberPause.member_id == m.id, MemberPause.last_day >= local_date(now, effective(m, ctx.team).tz)
        )
        .order_by(MemberPause.first_day)
    ).scalars()
    return render(
        request,
        ctx,
        "settings_me.html",
        {
            "zones": timezones(),
            "suppression": sup,
            "days": dict(DAYS),
            "opts": teams.options(ctx.s, ctx.team.id),
            "eff": effective(m, ctx.team),
            "pauses": list(pauses),
        },
    )


def _pause(ctx: Ctx, now) -> str:
    f, first, last = ctx.form, None, None
    errors = {}
    for name, label in (("first_day", "first day"), ("last_day", "last day")):
        try:
            day = parse_day(f.get(name, ""), label)
        except BadInput as e:
            errors[name] = sentence(e.reason)
            continue
        first, last = (day, last) if name == "first_day" else (first, day)
    if errors:
        raise FormError(errors)
    try:
        add_pause(ctx.s, ctx.member.id, first, last, now=now)
    except ScheduleError as e:
        raise FormError.of(e, "last_day") from None
    return f"You are paused from {first} to {last}."


def _save_schedule(ctx: Ctx, now) -> str:
    f = ctx.form
    # no day ticked means the team's days; an empty time means the team's time
    days = {k: "".join(d for d in "1234567" if f.get(f"{k}_{d}")) or None for k in ("rday", "dday")}
    try:
        update_member_schedule(
            ctx.s,
            ctx.member.id,
            now=now,
            timezone=f.get("timezone") or None,
            reminder_time=f.get("reminder_time") or None,
            reminder_days=days["rday"],
            digest_time=f.get("digest_time") or None,
            digest_days=days["dday"],
        )
    except ScheduleError as e:
        raise FormError.of(e, "schedule", at=SCHEDULE_IDS.get(getattr(e, "field", ""), "")) from None
    return "Your schedule is saved."


SCHEDULE_IDS = {"reminder_days": "rday", "digest_days": "dday"}  # field -> the id the page shows it under


@page("observer", form=_schedule_page)
def my_schedule(request: Request, ctx: Ctx):
    """GET/POST /teams/{tid}/settings/me: one's own schedule (blank = the team's), pauses, mail state."""
    if request.method != "POST":
        return _schedule_page(request, ctx)
    if ctx.member is None:
        raise HTTPException(403, "Only members of the team have a schedule in it.")
    if ctx.form.get("action") == "pause":
        msg = _pause(ctx, utcnow())
    elif ctx.form.get("action") == "unpause":
        raise HTTPException(400, "Remove a pause with its own button.")
    else:
        msg = _save_schedule(ctx, utcnow())
    return back(f"/teams/{ctx.team.id}/settings/me", msg, request)


@page("observer")
def unpause(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/me/pauses/{pause_id}/remove: end a pause (reminders come again)."""
    pause = ctx.s.get(MemberPause, request.path_params["pause_id"])
    owner = ctx.s.get(Member, pause.member_id) if pause else None
    if owner is None or owner.team_id != ctx.team.id:
        raise HTTPException(404, "No such pause.")
    if ctx.member is None:
        raise HTTPException(403, "Only members of the team have a schedule in it.")
    if owner.id != ctx.member.id:
        raise HTTPException(404, "No such pause.")
    confirm(
        ctx,
        f"Remove the pause from {pause.first_day} to {pause.last_day}? You are asked on those days again.",
    )
    remove_pause(ctx.s, pause.id, now=utcnow())
    return back(f"/teams/{ctx.team.id}/settings/me", "The pause is removed.", request)


@page("observer", form=_schedule_page)
def my_subscription(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/me/mail: unsubscribe from (or back to) donebox's emails."""
    if ctx.member is None:
        raise HTTPException(403, "Only members of the team have a subscription in it.")
    email = ctx.member.email
    if ctx.form.get("action") == "unsubscribe":
        confirm(ctx, f"Stop every donebox email to {email}?")
        detail = "from the settings page"
        suppressions.add(ctx.s, email, "unsubscribe", detail=detail, team_id=ctx.team.id, now=utcnow())
        msg = "You will get no more email from donebox."
    else:
        sup = suppressions.lookup(ctx.s, email)
        if sup is not None and not suppressions.recipient_may_lift(sup.reason):
            raise FormError(
                {"mail": f"Your address is suppressed because of a {sup.reason}: ask an operator."}
            )
        if sup is not None:
            suppressions.remove(ctx.s, email)
        msg = "You will get donebox's emails again."
    return back(f"/teams/{ctx.team.id}/settings/me", msg, request)


def _tokens_page(request: Request, ctx: Ctx, new: str = ""):
    rows = ctx.s.execute(
        select(ApiToken).where(ApiToken.team_id == ctx.team.id).order_by(ApiToken.id.desc())
    ).scalars()
    return render(
        request,
        ctx,
        "settings_tokens.html",
        {"tokens": list(rows), "new": new, "scopes": SCOPE_WORDS, "ticked": NEW_TOKEN_SCOPES},
    )


# what each scope lets a token do, as the tokens page says it
SCOPE_WORDS = {
    "send": "send mail (POST /api/messages, cancelling, SMTP submission)",
    "read": "read the team's data and mail (every GET)",
    "manage": "change settings and entries",
}
NEW_TOKEN_SCOPES = ("send", "read")  # ticked on a fresh form: manage only when asked for


@page("admin", form=_tokens_page)
def tokens(request: Request, ctx: Ctx):
    """GET/POST /teams/{tid}/settings/tokens: the team's API tokens; POST creates one, shown once
    (on this answer, not after a redirect: the secret never goes into the session cookie)."""
    if request.method != "POST":
        return _tokens_page(request, ctx)
    name = " ".join(ctx.form.get("name", "").split())[:200]
    if not name:
        raise FormError({"name": "Give the token a name (what it is for)."})
    scopes = tuple(scope for scope in SCOPES if ctx.form.get(f"scope_{scope}"))
    if not scopes:
        raise FormError({"scope": "Tick at least one scope: what the token may do."})
    new = create_token(ctx.s, name, now=utcnow(), team_id=ctx.team.id, scopes=scopes)
    return _tokens_page(request, ctx, new)


@page("admin")
def token_revoke(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/tokens/{token_id}/revoke: the token stops working at once."""
    t = ctx.s.get(ApiToken, request.path_params["token_id"])
    if t is None or t.team_id != ctx.team.id:
        raise HTTPException(404, "No such token.")
    confirm(ctx, f"Revoke the token {t.name!r}? Applications using it stop working at once.")
    if t.revoked_at is None:
        t.revoked_at = utcnow()
        ctx.s.add(t)
    return back(f"/teams/{ctx.team.id}/settings/tokens", f"Token {t.name!r} revoked.", request)


def _chat_page(request: Request, ctx: Ctx):
    rows = [chat.describe(d) for d in chat.destinations(ctx.s, ctx.team.id)]
    return render(request, ctx, "settings_chat.html", {"destinations": rows, "services": SERVICES})


@page("admin", form=_chat_page)
def chat_destinations(request: Request, ctx: Ctx):
    """GET/POST /teams/{tid}/settings/chat: where the team's digest is posted (incoming webhooks of
    Slack, Teams, Google Chat, Mattermost, Discord); POST adds one (app.checkins.chat)."""
    if request.method != "POST":
        return _chat_page(request, ctx)
    f = ctx.form
    try:
        dest = chat.add_destination(
            ctx.s,
            ctx.team.id,
            f.get("service", ""),
            f.get("url", ""),
            label=f.get("label", ""),
            blockers=bool(f.get("blockers")),
            now=utcnow(),
            settings=request.app.state.settings,
        )
    except TeamError as e:
        raise FormError.of(e, "url") from None
    name = SERVICES[dest.service].label
    return back(
        f"/teams/{ctx.team.id}/settings/chat", f"{name} added: the next digest is posted there too.", request
    )


@page("admin")
def chat_remove(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/chat/{dest_id}/remove: no more posts there (unsent ones fail)."""
    dest_id = request.path_params["dest_id"]
    found = next((d for d in chat.destinations(ctx.s, ctx.team.id) if d.id == dest_id), None)
    if found is None:
        raise HTTPException(404, "No such chat destination.")
    shown = chat.describe(found)
    where = f"{shown['service_label']} {shown['label'] or shown['url']}"
    confirm(ctx, f"Remove {where}? The digest is no longer posted there.")
    chat.remove_destination(ctx.s, ctx.team.id, dest_id)
    return back(f"/teams/{ctx.team.id}/settings/chat", f"{shown['service_label']} removed.", request)


@page("admin")
def chat_test(request: Request, ctx: Ctx):
    """POST /teams/{tid}/settings/chat/{dest_id}/test: a test post through the outbox, at once; its
    outcome shows on the message's page."""
    try:
        mid = chat.send_test_post(
            ctx.s, ctx.team, request.path_params["dest_id"], now=utcnow(), settings=request.app.state.settings
        )
    except TeamError:
        raise HTTPException(404, "No such chat destination.") from None
    request.state.after_commit = [mid]  # delivered once the handler's transaction commits
    return back(f"/mail/outbound/{mid}", "Test post queued: its outcome shows below.", request)


def _teams_page(request: Request, ctx: Ctx):
    rows = ctx.s.execute(select(Team).order_by(Team.name)).scalars()
    return render(request, ctx, "teams.html", {"teams": list(rows)})


@page("operator", form=_teams_page)
def team_create(request: Request, ctx: Ctx):
    """POST /teams: an operator creates a team and becomes its admin."""
    try:
        t = teams.create_team(
            ctx.s,
            ctx.form.get("name", ""),
            ctx.form.get("timezone", "UTC") or "UTC",
            admin_email=ctx.user.email,
            now=utcnow(),
        )
    except REFUSED as e:
        raise FormError.of(e, "name") from None
    return back(f"/teams/{t.id}/settings/members", f"Created {t.name}: invite its members.", request)
