"""The team's participation page (figures, a chart drawn as inline SVG) and the export download.

A member or observer sees the team's figures and their own line; an admin (or an operator) sees
every member's. The chart is the team's answer rate per day (per week past CHART_DAYS days),
drawn on the server: no script, a title and a description for screen readers, and a viewBox
that scales to the width of a phone.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from starlette.requests import Request

from app.checkins import export as exporting
from app.checkins import participation
from app.checkins.participation import DayTotal, duration
from app.checkins.participation import percent as _percent  # the email summary says them alike
from app.models import utcnow
from app.web.common import BadInput, download, parse_day
from app.web.pages.framework import Ctx, page, refused, render
from app.web.pages.team import today

CHART_DAYS = 62  # longer spans are charted by week
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 480, 200, 48, 24, 10  # the chart's viewBox and margins (its units)


class Bar(NamedTuple):
    """One bar of the chart: its box in the viewBox and what it says."""

    x: float
    y: float
    width: float
    height: float
    label: str  # "Mon 23 Nov: 2 of 3 answered (67%)"
    empty: bool  # nobody asked: drawn as a tick on the axis


class Chart(NamedTuple):
    """What the template draws: bars, their period, the axis labels and the summary in words."""

    bars: list[Bar]
    per: str  # day | week
    first_label: str
    last_label: str
    summary: str


def chart(days: list[DayTotal]) -> Chart:
    """The bars of the team's answer rate over ``days``, by day or, past CHART_DAYS, by week."""
    per = "day" if len(days) <= CHART_DAYS else "week"
    points = days if per == "day" else participation.by_week(days)
    inner_w, inner_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    slot = inner_w / max(1, len(points))
    bars = []
    for i, p in enumerate(points):
        rate = p.answer_rate
        h = 0.0 if rate is None else max(1.0, rate * inner_h)
        when = p.day.strftime("%a %d %b") if per == "day" else "week of " + p.day.strftime("%d %b")
        said = f"{p.answered} of {p.asked} answered ({_percent(rate)})" if p.asked else "nobody asked"
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.1, 2),
                y=round(TOP + inner_h - h, 2),
                width=round(max(1.0, slot * 0.8), 2),
                height=round(h, 2),
                label=f"{when}: {said}",
                empty=rate is None,
            )
        )
    counted = [p for p in points if p.asked]
    if counted:
        low = min(counted, key=lambda p: p.answer_rate)
        high = max(counted, key=lambda p: p.answer_rate)
        total = sum(p.answered for p in counted) / sum(p.asked for p in counted)
        summary = (
            f"Answer rate per {per}, {len(counted)} {per}{'' if len(counted) == 1 else 's'} with members"
            f" asked: {_percent(total)} overall,"
            f" lowest {_percent(low.answer_rate)} ({low.day.strftime('%d %b')}),"
            f" highest {_percent(high.answer_rate)} ({high.day.strftime('%d %b')})."
        )
    else:
        summary = f"Answer rate per {per}: nobody was asked in this span."
    fmt = "%d %b"
    return Chart(bars, per, days[0].day.strftime(fmt), days[-1].day.strftime(fmt), summary)


def _dates(request: Request, errors: dict[str, str]) -> tuple[date | None, date | None]:
    """The from and to of the query, each None when absent or refused (its reason in ``errors``)."""
    out = []
    for name in ("from", "to"):
        value = request.query_params.get(name) or ""
        if not value:
            out.append(None)
            continue
        try:
            out.append(parse_day(value, name))
        except BadInput as e:
            errors[name] = e.reason[0].upper() + e.reason[1:] + "."
            out.append(None)
    return out[0], out[1]


@page("observer")
def participation_page(request: Request, ctx: Ctx):
    """GET /teams/{tid}/participation?from=&to=: days asked and answered, streaks, reply times and a
    chart; a refused span is said beside its field (422) and the last 30 days shown instead."""
    errors: dict[str, str] = {}
    now_day = today(ctx)
    first, last = _dates(request, errors)
    try:
        first, last = participation.span(first, last, now_day)
    except participation.SpanError as e:
        errors[e.field] = str(e)[0].upper() + str(e)[1:] + "."
        first, last = participation.span(None, None, now_day)
    r = participation.report(ctx.s, ctx.team, first, last, now=utcnow())
    rows = (
        r.members
        if ctx.role == "admin"
        else [m for m in r.members if ctx.member and m.member.id == ctx.member.id]
    )
    data = {
        "report": r,
        "rows": rows,
        "chart": chart(r.days),
        "dims": {"width": WIDTH, "height": HEIGHT, "left": LEFT, "bottom": BOTTOM, "top": TOP},
        "duration": duration,
        "percent": _percent,
        "range_errors": errors,
        "formats": exporting.FORMATS,
        "asked_from": request.query_params.get("from", "") if "from" in errors else first.isoformat(),
        "asked_to": request.query_params.get("to", "") if "to" in errors else last.isoformat(),
    }
    return render(request, ctx, "participation.html", data, status=422 if errors else 200)


@page("observer")
def export_download(request: Request, ctx: Ctx):
    """GET /teams/{tid}/export?format=csv|json|ndjson&from=&to=: the team's entries and comments,
    streamed."""
    fmt = request.query_params.get("format") or "csv"
    if fmt not in exporting.FORMATS:
        raise refused(BadInput(400, f"format must be one of {', '.join(exporting.FORMATS)}"))
    try:
        first = parse_day(request.query_params["from"], "from") if request.query_params.get("from") else None
        last = parse_day(request.query_params["to"], "to") if request.query_params.get("to") else None
    except BadInput as e:
        raise refused(e) from None
    if first and last and first > last:
        raise refused(BadInput(422, f"from ({first}) is after to ({last})"))
    return download(
        exporting.export(ctx.team.id, first, last, fmt),
        exporting.MEDIA_TYPES[fmt],
        exporting.filename(ctx.team.id, first, last, fmt),
    )
