"""The JSON shapes of /api/, each written once as a table of fields.

A Shape writes rows as JSON for the endpoints (``dump``), reads and type-checks request
bodies (``load``) and is the component schema of the OpenAPI document (``schema``), so
the document cannot drift from what the endpoints return and accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from operator import attrgetter
from typing import Any

from app.web.api.base import ApiError
from app.web.common import BadInput, parse_day


def _same(value):
    return value


def _integer(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError
    return value


def _string(value) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _object(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError
    return value


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Type:
    """A JSON value: its OpenAPI schema, how it is written (``dump``) and how a request's is read (``load``).

    ``load`` raises TypeError or ValueError for a value that is not ``what`` it should be.
    """

    schema: dict
    dump: Callable[[Any], Any] = _same
    load: Callable[[Any], Any] = _same
    what: str = "a value"


INT = Type({"type": "integer"}, load=_integer, what="an integer")
STR = Type({"type": "string"}, load=_string, what="a string")
BOOL = Type({"type": "boolean"})
NUMBER = Type({"type": "number"}, dump=float)
OBJECT = Type({"type": "object"}, load=_object, what="a JSON object")
DAY = Type(
    {"type": "string", "format": "date"},
    dump=date.isoformat,
    load=lambda v: parse_day(_string(v), "the date"),
    what="a date, YYYY-MM-DD",
)
DATE_TIME = Type({"type": "string", "format": "date-time"}, dump=_iso, load=_string, what="a date-time")


def _strings(value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("not a list of strings")
    return value


STRINGS = Type(
    {"type": "array", "items": {"type": "string"}}, dump=list, load=_strings, what="a list of strings"
)
WORDS = Type({"type": "array", "items": {"type": "string"}}, dump=str.split)  # a space-separated column
BLANK_IS_NULL = Type({"type": "string", "nullable": True}, dump=lambda v: v or None)  # '' columns


def nullable(t: Type) -> Type:
    """``t`` or null."""
    return replace(t, schema={**t.schema, "nullable": True}, dump=lambda v: None if v is None else t.dump(v))


def one_of(t: Type, values) -> Type:
    """``t`` restricted to ``values`` in the document (the domain checks them, with its own reason)."""
    return replace(t, schema={**t.schema, "enum": list(values)})


def ref(name: str) -> dict:
    """A reference to components/schemas/``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Field:
    """One field of a shape: its name, Type, where its value comes from and whether it is always there.

    ``src`` is an attribute path of the object (default: ``name``) or a function of it.
    ``default`` is the value a request gets when the field is left out (shown in the document).
    """

    name: str
    type: Type
    src: str | Callable[[Any], Any] | None = None
    required: bool = True
    description: str = ""
    default: Any = None

    def value(self, obj) -> Any:
        """This field's JSON value for ``obj`` (a row, a dataclass or a mapping)."""
        if callable(self.src):
            raw = self.src(obj)
        elif isinstance(obj, Mapping):
            raw = obj[self.src or self.name]
        else:
            raw = attrgetter(self.src or self.name)(obj)
        return self.type.dump(raw)


@dataclass(frozen=True)
class Shape:
    """A JSON object written once: ``dump`` for answers, ``load`` for requests, ``schema`` for the doc."""

    name: str
    fields: tuple[Field, ...]
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def dump(self, obj, **given) -> dict:
        """``obj`` as this shape's JSON; optional fields are written only when ``given``."""
        out = {}
        for f in self.fields:
            if f.name in given:
                out[f.name] = f.type.dump(given[f.name])
            elif f.required:
                out[f.name] = f.value(obj)
        return out

    def load(self, body: dict) -> dict:
        """The fields of a request ``body``, type-checked, defaults filled; ApiError 400 with the reason."""
        out = {}
        for f in self.fields:
            if f.name not in body:
                if f.required:
                    raise ApiError(400, f"{f.name} is required")
                if f.default is not None:
                    out[f.name] = f.default
                continue
            try:
                out[f.name] = f.type.load(body[f.name])
            except BadInput as e:  # 422: the value's form is right, its range is not
                reason = f"{f.name}: {e.reason}" if e.status == 422 else f"{f.name} must be {f.type.what}"
                raise ApiError(e.status, reason) from None
            except (TypeError, ValueError):
                raise ApiError(400, f"{f.name} must be {f.type.what}") from None
        return out

    def schema(self) -> dict:
        """The OpenAPI schema object of this shape."""
        properties = {}
        for f in self.fields:
            prop = dict(f.type.schema)
            if f.description:
                prop["description"] = f.description
            if f.default is not None:
                prop["default"] = f.default
            properties[f.name] = prop
        return {
            "type": "object",
            "required": [f.name for f in self.fields if f.required],
            "properties": properties,
        }


def many(shape: Shape) -> Type:
    """An array of ``shape`` objects (by reference in the document)."""
    return Type({"type": "array", "items": ref(shape.name)}, dump=lambda rows: [shape.dump(r) for r in rows])


def nested(shape: Shape) -> Type:
    """One ``shape`` object inside another (by reference in the document)."""
    return Type(ref(shape.name), dump=shape.dump)


def listing(name: str, key: str, shape: Shape) -> Shape:
    """``{key: [shape, ...]}``: what a list endpoint without pages answers."""
    return Shape(name, (Field(key, many(shape)),))


def paged(name: str, key: str, shape: Shape) -> Shape:
    """``{key: [shape, ...], next_before}``: one page of a list, newest first, paged by id."""
    next_before = Field(
        "next_before", nullable(INT), description="the next page's before=; null on the last page"
    )
    return Shape(name, (Field(key, many(shape)), next_before))


def next_before(rows: list, limit: int) -> int | None:
    """The ``before=`` of the page after ``rows`` (a full page of ``limit``), or None on the last."""
    return rows[-1].id if len(rows) == limit else None


ERROR = Shape("Error", (Field("error", STR, description="the reason, for a person to act on"),))
