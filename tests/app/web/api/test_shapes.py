"""The shapes and query parameters shared by the /api/ endpoints and their OpenAPI document."""

from datetime import date
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from app.relay import sends
from app.web.api.base import ApiError, ChoiceQuery, DateQuery, IntQuery
from app.web.api.openapi import SCHEMAS, document
from app.web.api.send import MESSAGE_SEND
from app.web.api.shapes import DATE_TIME, DAY, INT, STR, Field, Shape, nullable

POINT = Shape(
    "Point",
    (
        Field("x", INT),
        Field("label", STR, "name"),
        Field("when", nullable(DATE_TIME)),
        Field("note", STR, required=False),
    ),
)
ASK = Shape(
    "Ask",
    (Field("n", INT), Field("day", DAY, required=False), Field("kind", STR, required=False, default="a")),
)


def request(query: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []}
    )


def test_a_shape_dumps_its_fields_from_attributes_or_mappings_and_optional_ones_only_when_given():
    row = SimpleNamespace(x=1, name="one", when=None)
    assert POINT.dump(row) == {"x": 1, "label": "one", "when": None}
    assert POINT.dump(row, note="hi") == {"x": 1, "label": "one", "when": None, "note": "hi"}
    assert POINT.dump({"x": 2, "name": "two", "when": None})["label"] == "two"


def test_a_shapes_schema_lists_what_is_always_there_as_required():
    schema = POINT.schema()
    assert schema["required"] == ["x", "label", "when"]
    assert schema["properties"]["when"] == {"type": "string", "format": "date-time", "nullable": True}
    assert ASK.schema()["properties"]["kind"]["default"] == "a"


@pytest.mark.parametrize(
    "body,reason",
    [
        ({}, "n is required"),
        ({"n": "1"}, "n must be an integer"),
        ({"n": True}, "n must be an integer"),
        ({"n": 1, "day": "tomorrow"}, "day must be a date"),
        ({"n": 1, "day": 5}, "day must be a date"),
    ],
)
def test_loading_a_body_refuses_a_missing_or_mistyped_field_with_its_name(body, reason):
    with pytest.raises(ApiError) as e:
        ASK.load(body)
    assert e.value.status == 400 and reason in e.value.reason


def test_loading_a_body_converts_fills_defaults_and_ignores_unknown_fields():
    got = ASK.load({"n": 3, "day": "2026-11-20", "extra": 1})
    assert got == {"n": 3, "day": date(2026, 11, 20), "kind": "a"}


def test_an_int_query_has_a_default_a_range_and_maybe_a_cap():
    limit = IntQuery("limit", 100, most=500)
    assert limit.read(request("")) == 100 and limit.read(request("limit=")) == 100
    assert limit.read(request("limit=7")) == 7 and limit.read(request("limit=9000")) == 500
    for bad in ("0", "-1", "x", "1.5", "99999999999", "1" * 40, "\u0663"):
        with pytest.raises(ApiError) as e:
            limit.read(request(f"limit={bad}"))
        assert e.value.status == 400 and "limit must be an integer from 1 to" in e.value.reason
    assert IntQuery("after_id", low=0).read(request("after_id=0")) == 0
    assert IntQuery("limit", 50, high=200).parameter()["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 200,
        "default": 50,
    }


def test_choice_and_date_queries_refuse_what_they_do_not_know():
    state = ChoiceQuery("state", ("a", "b"))
    assert state.read(request("state=a")) == "a" and state.read(request("state=")) is None
    with pytest.raises(ApiError, match="state must be one of a, b"):
        state.read(request("state=c"))
    with pytest.raises(ApiError, match="YYYY-MM-DD"):
        DateQuery("day").read(request("day=soon"))
    assert state.parameter()["schema"]["enum"] == ["a", "b"]


def test_the_documented_send_request_is_the_one_the_relay_reads():
    assert set(MESSAGE_SEND.by_name) == sends.FIELDS
    assert [f.name for f in MESSAGE_SEND.fields if f.required] == ["to", "subject"]


def _refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_in_the_document_resolves_and_every_component_is_used():
    doc = document()
    used = set(_refs(doc))
    assert used <= set(SCHEMAS), used - set(SCHEMAS)
    assert set(SCHEMAS) <= used, set(SCHEMAS) - used
