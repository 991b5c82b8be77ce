"""What every /api/ endpoint shares: the bearer token, the bounded JSON body, query parameters, errors.

An endpoint is a sync ``handler(request, s, token, body)`` wrapped by ``api``: it runs in the
thread pool inside one database session (committed when it returns, rolled back when it
raises) and answers a dict (200 JSON), a Response, or raises ApiError. A token made in a
team's settings reaches that team only; one made with ``donebox api-token create`` (no
--team) reaches every team. Anything outside the token's reach is a 404, as if it did not exist.
Each endpoint names the scope it needs (``api(scope=...)``, by default ``manage``, the most a
token can be given: an endpoint that forgets to say is closed to the narrower tokens); a token
without it is a 403 naming the scope, before the body is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.checkins import participation
from app.db import session
from app.models import ApiToken
from app.relay.api_tokens import SCOPES, bearer, check_token, has_scope, missing_scope
from app.settings import Settings
from app.web.common import (
    MAX_ID,
    BadInput,
    TooLarge,
    api_token,
    check_url,
    error,
    in_thread,
    load_json,
    no_api_token,
    parse_day,
    read_limited,
)


class ApiError(Exception):
    """Raised by an endpoint to answer ``status`` with the JSON error ``{"error": reason}`` (and
    ``headers``, e.g. a 429's Retry-After)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def unauthorized() -> JSONResponse:
    """The 401 of every /api/ endpoint: common.no_api_token's text, with the scheme to use."""
    response = no_api_token()
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def json_body(request: Request, max_bytes: int) -> dict:
    """The request's JSON object, read up to ``max_bytes``: ApiError 415, 413 or 400 with the reason,
    422 naming a field whose text cannot be stored (common.load_json)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    try:
        raw = await read_limited(request, max_bytes)
    except TooLarge:
        raise ApiError(413, f"body larger than {max_bytes} bytes") from None
    try:
        data = load_json(raw)
    except BadInput as e:
        raise ApiError(e.status, e.reason) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


async def raw_body(request: Request, media_type: str, max_bytes: int) -> bytes:
    """The request's body of ``media_type``, read up to ``max_bytes``: ApiError 415 or 413."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != media_type:
        raise ApiError(415, f"Content-Type must be {media_type}")
    try:
        return await read_limited(request, max_bytes)
    except TooLarge:
        raise ApiError(413, f"body larger than {max_bytes} bytes") from None


def api(
    *,
    scope: str = "manage",
    body: bool = False,
    max_bytes: int | Callable[[Settings], int] | None = None,
    media_type: str = "application/json",
):
    """Wrap a sync ``handler(request, s, token, body)`` as an /api/ endpoint (see the module docstring).

    The token must carry ``scope`` (send, read or manage). With ``body``, the token is checked
    before the body is read (at most ``max_bytes``, a number or a function of the settings, by default
    the API_MAX_BYTES setting): a JSON
    object, or the bytes of another ``media_type``. Without it ``body`` is ``{}`` and the token is
    checked in the handler's own session.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def wrap(handler):
        async def endpoint(request: Request) -> Response:
            raw_token = bearer(request.headers.get("authorization", ""))
            if not raw_token:
                return unauthorized()
            token, data = None, {}
            try:
                check_url(request)
                if body:
                    token = await in_thread(api_token, request)
                    if token is None:
                        return unauthorized()
                    if not has_scope(token, scope):
                        return error(403, missing_scope(scope))
                    settings = request.app.state.settings
                    limit = (
                        max_bytes(settings) if callable(max_bytes) else max_bytes
                    ) or settings.api_max_bytes
                    if media_type == "application/json":
                        data = await json_body(request, limit)
                    else:
                        data = await raw_body(request, media_type, limit)
                result = await in_thread(_in_session, handler, request, token or raw_token, data, scope)
            except ApiError as e:
                response = error(e.status, e.reason)
                response.headers.update(e.headers)
                return response
            except BadInput as e:
                return error(e.status, e.reason)
            if result is _NO_TOKEN:
                return unauthorized()
            return result if isinstance(result, Response) else JSONResponse(result)

        endpoint.scope = scope  # the OpenAPI document says it (app.web.api.openapi)
        endpoint.__doc__ = handler.__doc__
        endpoint.__name__ = handler.__name__
        endpoint.__qualname__ = handler.__qualname__
        return endpoint

    return wrap


_NO_TOKEN = object()


def _in_session(handler, request: Request, token: ApiToken | str, body: dict | bytes, scope: str):
    """The handler's answer inside one session; _NO_TOKEN when ``token`` is a raw token that is not
    live; ApiError 403 when it lacks ``scope``."""
    with session() as s:
        if isinstance(token, str):
            token = check_token(s, token)
            if token is None:
                return _NO_TOKEN
            if not has_scope(token, scope):
                raise ApiError(403, missing_scope(scope))
        return handler(request, s, token, body)


@dataclass(frozen=True)
class IntQuery:
    """An integer query parameter: absent or empty gives ``default``; outside [low, high] a 400.

    ``most`` caps the value instead of refusing it (a limit asked too large gets the most we give).
    """

    name: str
    default: int | None = None
    low: int = 1
    high: int = MAX_ID
    most: int | None = None
    description: str = ""

    def read(self, request: Request) -> int | None:
        """The value of this parameter in ``request`` (ApiError 400 with the range when it is wrong)."""
        value = request.query_params.get(self.name)
        if not value:
            return self.default
        if not (value.isascii() and value.isdigit() and len(value) <= 18) or not (
            self.low <= int(value) <= self.high
        ):
            raise ApiError(400, f"{self.name} must be an integer from {self.low} to {self.high}")
        return min(int(value), self.most) if self.most else int(value)

    def parameter(self) -> dict:
        """The OpenAPI parameter object."""
        schema = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            schema["default"] = self.default
        return _parameter(self.name, schema, self.description)


@dataclass(frozen=True)
class ChoiceQuery:
    """A query parameter taking one of ``choices``; absent or empty gives None, anything else a 400."""

    name: str
    choices: tuple[str, ...]
    description: str = ""

    def read(self, request: Request) -> str | None:
        """The value of this parameter in ``request`` (ApiError 400 listing the choices)."""
        value = request.query_params.get(self.name) or None
        if value is not None and value not in self.choices:
            raise ApiError(400, f"{self.name} must be one of {', '.join(self.choices)}")
        return value

    def parameter(self) -> dict:
        """The OpenAPI parameter object."""
        return _parameter(self.name, {"type": "string", "enum": list(self.choices)}, self.description)


@dataclass(frozen=True)
class DateQuery:
    """A YYYY-MM-DD query parameter; absent gives None, anything else a 400."""

    name: str
    description: str = ""

    def read(self, request: Request) -> date | None:
        """The value of this parameter in ``request``."""
        value = request.query_params.get(self.name)
        if value is None:
            return None
        try:
            return parse_day(value, self.name)
        except BadInput as e:
            raise ApiError(e.status, e.reason) from None

    def parameter(self) -> dict:
        """The OpenAPI parameter object."""
        return _parameter(self.name, {"type": "string", "format": "date"}, self.description)


@dataclass(frozen=True)
class TextQuery:
    """A free-text query parameter, cut to ``max_chars``; absent gives ''."""

    name: str
    max_chars: int
    description: str = ""

    def read(self, request: Request) -> str:
        """The value of this parameter in ``request``."""
        return request.query_params.get(self.name, "")[: self.max_chars]

    def parameter(self) -> dict:
        """The OpenAPI parameter object."""
        return _parameter(self.name, {"type": "string"}, self.description)


def _parameter(name: str, schema: dict, description: str) -> dict:
    out = {"name": name, "in": "query", "required": False, "schema": schema}
    return {**out, "description": description} if description else out


BEFORE_Q = IntQuery("before", description="only ids below this (the previous page's next_before)")
# a span of days with open ends (the export's, the comments'): either bound may be left out
OPEN_FROM_Q = DateQuery("from", "the first day, YYYY-MM-DD (default: no bound)")
OPEN_TO_Q = DateQuery("to", "the last day, YYYY-MM-DD (default: no bound)")


def open_span(request: Request) -> tuple[date | None, date | None]:
    """The request's open-ended ``from``/``to`` (the export's, the comments'): a 400 for a malformed
    day, a 422 with participation.span's reason when from is after to."""
    first, last = OPEN_FROM_Q.read(request), OPEN_TO_Q.read(request)
    if first is not None and last is not None:
        try:
            participation.span(first, last, last, most=None)
        except participation.SpanError as e:
            raise ApiError(422, str(e)) from None
    return first, last
