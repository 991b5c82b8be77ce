"""/api/relay/pass-through: the relay's pass-through mode, read and switched (app.relay.passthrough).

The mode is the instance's, not a team's: a token with the read scope reads it (every GET of /api/
needs read), and changing it needs the manage scope on a token of every team (``donebox api-token
create``); a team's token gets 403.
"""

from __future__ import annotations

from app.errors import RequestError
from app.models import utcnow
from app.relay import passthrough
from app.web.api.base import ApiError, api
from app.web.api.shapes import BLANK_IS_NULL, BOOL, DATE_TIME, INT, STR, Field, Shape, nullable, one_of

MODE = one_of(STR, passthrough.MODES)
PASS_THROUGH = Shape(
    "PassThrough",
    (
        Field("mode", MODE, description="auto: by the oldest waiting message; on, off: the operator's"),
        Field(
            "active", BOOL, description="bulk mail (reminders, digests, API batches) goes out untracked now"
        ),
        Field("since", nullable(DATE_TIME), "changed_at", description="when active last changed"),
        Field(
            "oldest_waiting_s",
            nullable(INT),
            "oldest_wait_s",
            description="the oldest due message's wait at the last evaluation; null: none waited",
        ),
        Field("evaluated_at", nullable(DATE_TIME), description="the last scheduler tick that measured it"),
        Field(
            "threshold_s", INT, description="PASS_THROUGH_AFTER_S: auto switches on at this wait; 0: never"
        ),
        Field("off_below_s", INT, description="auto switches off again below this wait"),
        Field("switched_on", INT, description="times it switched on"),
        Field("passed_through", INT, "passed", description="messages sent untracked because of it"),
        Field("mode_by", BLANK_IS_NULL, description="who set the mode; null: nobody yet"),
        Field("mode_at", nullable(DATE_TIME), description="when"),
    ),
)
PASS_THROUGH_SET = Shape("PassThroughSet", (Field("mode", MODE),))


def _dump(request, row) -> dict:
    threshold = passthrough.threshold_of(row, request.app.state.settings)
    return PASS_THROUGH.dump(
        row,
        threshold_s=threshold,
        off_below_s=int(threshold * passthrough.OFF_FRACTION),
    )


@api(scope="read")
def get_pass_through(request, s, token, body):
    """GET /api/relay/pass-through: the mode, whether it is active, the queue's wait and the counts."""
    return _dump(request, passthrough.current(s))


@api(body=True)
def put_pass_through(request, s, token, body):
    """PUT /api/relay/pass-through {"mode": "on" | "off" | "auto"}: applied at once; the state it gives."""
    if token.team_id is not None:
        raise ApiError(403, "pass-through is the instance's: it needs a token of every team")
    mode = PASS_THROUGH_SET.load(body)["mode"]
    try:
        row = passthrough.set_mode(
            s, mode, by=f"API token {token.name!r}", now=utcnow(), settings=request.app.state.settings
        )
    except RequestError as e:
        raise ApiError(e.status, str(e)) from None
    return _dump(request, row)
