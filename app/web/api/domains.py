"""/api/domains: sending domains by API token: list (scope read); add, verify, remove (scope manage).

Thin endpoints over app.relay.domains. A token made in a team's settings sees its team's domains
and those of every team, adds domains for its team, and verifies or removes its team's; a domain of
another team is a 404 to it. A token of every team (``donebox api-token create``) reaches every
domain and may give ``team_id`` (left out: every team may send from it).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from app.errors import RequestError
from app.models import SendingDomain, Team, utcnow
from app.relay import domains
from app.web.api.base import ApiError, api
from app.web.api.shapes import BOOL, DATE_TIME, INT, STR, STRINGS, Field, Shape, listing, many, nullable
from app.web.common import id_in_range

RECORD = Shape(
    "DomainRecord",
    (
        Field("key", STR, description="dkim:<selector> | spf | dmarc | return_path"),
        Field("type", STR, description="TXT or CNAME"),
        Field("name", STR, description="the host name to publish it at"),
        Field("value", STR, description="the value to publish"),
        Field(
            "status", STR, description="ok | missing | wrong | error | unchecked, by the last verification"
        ),
        Field("detail", STR, description="what was wrong"),
        Field("found", STRINGS, description="what the DNS answered"),
    ),
)
DOMAIN = Shape(
    "SendingDomain",
    (
        Field("id", INT),
        Field("domain", STR, description="lower-case, IDNA"),
        Field("team_id", nullable(INT), description="the team that may send from it; null: every team"),
        Field("return_path_host", STR, description="the VERP envelope sender's host (bounces+<token>@)"),
        Field("verified", BOOL, description="every record was found as it should be at the last check"),
        Field("verified_at", nullable(DATE_TIME)),
        Field("checked_at", nullable(DATE_TIME)),
        Field("missing", STRINGS, description="the keys of the records not (yet) found as they should be"),
        Field("records", many(RECORD)),
    ),
)
DOMAIN_LIST = listing("SendingDomainList", "items", DOMAIN)
DOMAIN_ADD = Shape(
    "SendingDomainAdd",
    (
        Field("domain", STR),
        Field(
            "team_id",
            INT,
            required=False,
            description="who may send from it (all-team tokens; default: every team, or the token's team)",
        ),
    ),
)
REMOVED = Shape("SendingDomainRemoved", (Field("domain", STR),))


def _row(s, token, name: str, *, own: bool = False) -> SendingDomain:
    """The domain ``name`` in the token's reach (``own``: its team's, not every team's); ApiError 404."""
    try:
        d = domains.normalized(name)
    except RequestError as e:
        raise ApiError(404, str(e)) from None
    row = domains.named(s, d)
    reach = token.team_id is None or row is not None and row.team_id in (token.team_id, None)
    if row is None or not reach or (own and token.team_id is not None and row.team_id != token.team_id):
        raise ApiError(404, f"domain: {d} is not a sending domain in this token's reach")
    return row


@api(scope="read")
def list_domains(request, s, token, body):
    """GET /api/domains: the sending domains in the token's reach, with their records."""
    settings = request.app.state.settings
    rows = domains.listed(s, token.team_id)
    return DOMAIN_LIST.dump({"items": [domains.described(s, r, settings) for r in rows]})


@api(body=True, max_bytes=4096)
def add_domain(request, s, token, body):
    """POST /api/domains: make a domain a sending domain (its DKIM keys made); 201 with its records."""
    data, settings = DOMAIN_ADD.load(body), request.app.state.settings
    team_id = token.team_id
    if "team_id" in data:
        given = data["team_id"]
        mine = token.team_id is None or given == token.team_id
        if not (mine and id_in_range(given)) or s.get(Team, given) is None:
            raise ApiError(404, f"team_id: no team {given}")
        team_id = given
    try:
        row = domains.add(s, data["domain"], team_id, settings, now=utcnow())
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    return JSONResponse(DOMAIN.dump(domains.described(s, row, settings)), status_code=201)


@api()
def verify_domain(request, s, token, body):
    """POST /api/domains/{domain}/verify: look its records up now; the domain with the verdicts."""
    settings = request.app.state.settings
    row = _row(s, token, request.path_params["domain"])
    domains.verify(s, row, settings, now=utcnow())
    return DOMAIN.dump(domains.described(s, row, settings))


@api()
def remove_domain(request, s, token, body):
    """DELETE /api/domains/{domain}: delete the domain and its keys (the token's team's only)."""
    row = _row(s, token, request.path_params["domain"], own=True)
    name = row.domain
    domains.remove(s, row)
    return REMOVED.dump({"domain": name})
