"""Team pages: a day of entries, search, a member's history, writing and editing one's own entries."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse

from app.accounts.users import memberships
from app.checkins import comments, entries, goals, notices, questions
from app.checkins.asked import day_status
from app.checkins.outgoing import team_day
from app.checkins.teams import options as teams_options
from app.checkins.times import local_date
from app.inbound import corrections
from app.models import Entry, Member, Team, utcnow
from app.web.common import BadInput, parse_day
from app.web.pages.framework import Ctx, FormError, back, confirm, page, refused, render, sentence
from parsers.entries import KINDS


def today(ctx: Ctx) -> date:
    """Today in the viewer's time zone (their own, else the team's)."""
    tz = (ctx.member.timezone if ctx.member else None) or ctx.team.timezone
    return local_date(utcnow(), tz)


def _day_param(value: str | None, default: date) -> date:
    if not value:
        return default
    try:
        return parse_day(value)
    except BadInput as e:
        raise refused(e) from None


@page(need=None)
def home(request: Request, ctx: Ctx):
    """GET /: the user's teams; straight to the team when there is one."""
    mine = memberships(ctx.s, ctx.user.email)
    if len(mine) == 1 and not ctx.user.is_operator:
        return RedirectResponse(f"/teams/{mine[0][1].id}", status_code=303)
    teams = [t for _, t in mine]
    if ctx.user.is_operator:
        teams = list(ctx.s.execute(select(Team).order_by(Team.name)).scalars())
    return render(request, ctx, "teams.html", {"teams": teams})


@page("observer")
def day(request: Request, ctx: Ctx):
    """GET /teams/{tid}: the entries of a day (default today) by member, and "on this day"."""
    return _day_page(request, ctx, request.query_params.get("day"))


def _add_page(request: Request, ctx: Ctx):
    return _day_page(request, ctx, ctx.form.get("day"))


def _day_page(request: Request, ctx: Ctx, day_param: str | None):
    now_day = today(ctx)
    d = _day_param(day_param, now_day)
    chars = request.app.state.settings.max_entry_chars
    groups, quiet = team_day(ctx.s, ctx.team.id, d, chars=chars)
    status = day_status(ctx.team, d, now_day)  # "before" the team or "future": nobody was asked
    past = entries.on_this_day(ctx.s, ctx.member.id, d, chars=chars) if ctx.member else []
    carried = []  # goals set up to this day and still open, by member
    if _carries_goals(ctx):
        members = ctx.s.execute(
            select(Member).where(Member.team_id == ctx.team.id, Member.active).order_by(Member.name)
        ).scalars()
        members = list(members)
        still = goals.open_goals(ctx.s, [m.id for m in members], d + timedelta(days=1))
        carried = [(m, still[m.id]) for m in members if still.get(m.id)]
    shown = [e for _, shelf in groups for e in shelf.entries] + [e for _, _, es in past for e in es]
    return render(
        request,
        ctx,
        "team_day.html",
        {
            # where each reply was cut: its entries say "cut by a guess" when the extractor was unsure
            "cuts": corrections.cuts(ctx.s, (e.inbound_id for e in shown)),
            "day": d,
            "today": now_day,
            "prev": d - timedelta(days=1),
            "next": d + timedelta(days=1) if d < now_day else None,
            "groups": groups,
            "quiet": quiet,
            "status": status,
            "past": past,
            "kinds": KINDS,
            "comments": comments.of_day(ctx.s, ctx.team.id, d),  # replies to the day's digest
            "carried": carried,
            "blockers": notices.open_blockers(ctx.s, ctx.team.id),
            "blocker_owner": notices.owners(ctx.s, [ctx.team.id]).get(ctx.team.id),  # resolves them too
        },
    )


@page("observer")  # notices.resolve decides: its author, an admin or the blocker owner (any role)
def blocker_resolve(request: Request, ctx: Ctx):
    """POST /teams/{tid}/entries/{eid}/resolve: mark an open blocker resolved (its author, an admin or
    the team's blocker owner)."""
    try:
        e = notices.resolve(
            ctx.s,
            ctx.team.id,
            request.path_params["eid"],
            by=ctx.member.id if ctx.member else None,
            admin=ctx.role == "admin",
            now=utcnow(),
        )
    except notices.NoticeError as err:
        why = str(err)
        status = 403 if why.startswith("only") else 400 if "not a blocker" in why else 404
        raise HTTPException(status, sentence(why)) from None
    return back(f"/teams/{ctx.team.id}?day={e.day.isoformat()}", "Blocker resolved.", request)


@page("observer")
def search(request: Request, ctx: Ctx):
    """GET /teams/{tid}/search?q=&tag=&mention=: full-text search over the team's entries."""
    q = request.query_params.get("q", "")[:200]
    tag = request.query_params.get("tag", "")[:100]
    mention = request.query_params.get("mention", "")[:100]
    found = entries.search(ctx.s, ctx.team.id, q, tag=tag, mention=mention)
    names = {m.id: m for m in ctx.s.execute(select(Member).where(Member.team_id == ctx.team.id)).scalars()}
    return render(
        request, ctx, "search.html", {"q": q, "tag": tag, "mention": mention, "found": found, "names": names}
    )


def _member(ctx: Ctx, mid: int) -> Member:
    m = ctx.s.get(Member, mid)
    if m is None or m.team_id != ctx.team.id:
        raise HTTPException(404, "No such member in this team.")
    return m


@page("observer")
def member_history(request: Request, ctx: Ctx):
    """GET /teams/{tid}/members/{mid}: everything a member wrote, newest first."""
    m = _member(ctx, request.path_params["mid"])
    rows = entries.search(ctx.s, ctx.team.id, member_id=m.id, limit=500)
    days: dict[date, list[Entry]] = {}
    for e in rows:
        days.setdefault(e.day, []).append(e)
    still = goals.open_goals(ctx.s, [m.id], today(ctx) + timedelta(days=1)) if _carries_goals(ctx) else {}
    cuts = corrections.cuts(ctx.s, (e.inbound_id for e in rows))
    return render(
        request,
        ctx,
        "member_history.html",
        {"subject": m, "days": days, "goals": still.get(m.id, []), "cuts": cuts},
    )


def _carries_goals(ctx: Ctx) -> bool:
    return questions.goal_question(questions.of(teams_options(ctx.s, ctx.team.id))) is not None


@page("member")
def goal_close(request: Request, ctx: Ctx):
    """POST /teams/{tid}/goals/{eid}/close how=done|carried: close a goal (its author or an admin);
    carried makes it a goal of today again. No confirmation: closing a goal loses nothing."""
    e = ctx.s.get(Entry, request.path_params["eid"])
    if e is None or e.team_id != ctx.team.id:
        raise HTTPException(404, "No such goal.")
    if ctx.role != "admin" and (ctx.member is None or e.member_id != ctx.member.id):
        raise HTTPException(403, "Only the goal's author or an admin closes it.")
    how = ctx.form.get("how", "")
    if how not in entries.GOAL_CLOSED:
        raise HTTPException(400, f"how must be one of {', '.join(entries.GOAL_CLOSED)}")
    tz = ctx.s.get(Member, e.member_id).timezone or ctx.team.timezone
    try:
        entries.close_goal(ctx.s, e, how, day=local_date(utcnow(), tz), now=utcnow())
    except entries.EntryError as err:
        raise HTTPException(400, str(err)) from None
    target = ctx.form.get("back", "")
    if not target.startswith(f"/teams/{ctx.team.id}") or "//" in target:
        target = f"/teams/{ctx.team.id}/members/{e.member_id}"
    said = "Goal closed." if how == "done" else "Goal carried to today."
    return back(target, said, request)


@page("member", form=_add_page)
def entry_add(request: Request, ctx: Ctx):
    """POST /teams/{tid}/entries: add entries (one per line) for oneself."""
    if ctx.member is None:
        raise HTTPException(403, "Only members of the team write entries in it.")
    d = _day_param(ctx.form.get("day"), today(ctx))
    if d > today(ctx):
        raise FormError({"text": "Entries are for today or a past day."})
    try:
        made = entries.add(
            ctx.s,
            ctx.member,
            d,
            ctx.form.get("text", ""),
            ctx.form.get("kind", "done"),
            now=utcnow(),
            settings=request.app.state.settings,
            questions=questions.of(teams_options(ctx.s, ctx.team.id)),
        )
    except entries.EntryError as e:
        raise FormError.of(e, "text", before="not saved: ") from None
    added = f"Added {len(made)} entries." if len(made) != 1 else "Added 1 entry."
    return back(f"/teams/{ctx.team.id}?day={d.isoformat()}", added, request)


def _own_entry(ctx: Ctx, eid: int) -> Entry:
    e = ctx.s.get(Entry, eid)
    if e is None or e.team_id != ctx.team.id:
        raise HTTPException(404, "No such entry.")
    if ctx.member is None or e.member_id != ctx.member.id:
        raise HTTPException(403, "You can only change your own entries.")
    return e


def _edit_page(request: Request, ctx: Ctx):
    e = _own_entry(ctx, request.path_params["eid"])
    return render(request, ctx, "entry_edit.html", {"e": e, "kinds": KINDS})


@page("member", form=_edit_page)
def entry_edit(request: Request, ctx: Ctx):
    """GET/POST /teams/{tid}/entries/{eid}/edit: change one's own entry."""
    if request.method != "POST":
        return _edit_page(request, ctx)
    e = _own_entry(ctx, request.path_params["eid"])
    try:
        entries.update(ctx.s, e, ctx.form.get("text", ""), ctx.form.get("kind", e.kind))
    except entries.EntryError as err:
        raise FormError.of(err, "text", before="not saved: ") from None
    return back(f"/teams/{ctx.team.id}?day={e.day.isoformat()}", "Entry saved.", request)


@page("member")
def entry_delete(request: Request, ctx: Ctx):
    """POST /teams/{tid}/entries/{eid}/delete: delete one's own entry (once confirmed)."""
    e = _own_entry(ctx, request.path_params["eid"])
    confirm(ctx, f"Delete the entry {e.text[:80]!r} of {e.day.isoformat()}? It cannot be undone.")
    ctx.s.delete(e)
    return back(f"/teams/{ctx.team.id}?day={e.day.isoformat()}", "Entry deleted.", request)
