"""Tags and metadata of an application's message: checked, kept in each row's context (``tags``,
``metadata``, beside a template's variables, which may not use these names), and read back for
GET /api/messages and the events.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from sqlalchemy import JSON, cast, func

from app.errors import RequestError
from app.models import OutboundMessage

NAMES = ("tags", "metadata")  # their keys in the row's context
MAX_TAGS, MAX_TAG = 10, 100
MAX_METADATA_KEYS, MAX_METADATA_VALUE, MAX_METADATA_CHARS = 50, 1000, 10_000
_TAG = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")  # a tag, or a metadata key


def tags(value) -> list[str] | None:
    """The request's tags, checked (RequestError naming ``tags[i]``); None when not given."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise RequestError(f"tags must be a list of at most {MAX_TAGS} strings")
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise RequestError(f"tags[{i}] must be 1-{MAX_TAG} printable characters")
    return value


def metadata(value) -> dict[str, str] | None:
    """The request's metadata, checked (RequestError naming ``metadata.key``); None when not given."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError('metadata must be a flat JSON object of "key": "string value"')
    if len(value) > MAX_METADATA_KEYS:
        raise RequestError(f"metadata has {len(value)} keys, more than {MAX_METADATA_KEYS}")
    for key, v in value.items():
        if not _TAG.match(key):
            raise RequestError(f"metadata keys must be 1-{MAX_TAG} printable characters: {key[:80]!r}")
        if not isinstance(v, str):
            raise RequestError(f"metadata.{key} must be a string (metadata is flat)")
        if len(v) > MAX_METADATA_VALUE:
            raise RequestError(f"metadata.{key} is longer than {MAX_METADATA_VALUE} characters")
    if len(json.dumps(value)) > MAX_METADATA_CHARS:
        raise RequestError(f"metadata is larger than {MAX_METADATA_CHARS} characters as JSON")
    return value


@lru_cache(maxsize=16)  # a message's shape reads its tags and then its metadata: one parse
def read(context: str) -> tuple[list[str], dict[str, str]]:
    """(tags, metadata) of a row's stored context (GET /api/messages; events read ``columns``)."""
    try:
        stored = json.loads(context or "{}")
    except ValueError:
        return [], {}
    if not isinstance(stored, dict):
        return [], {}
    tags, metadata = stored.get("tags"), stored.get("metadata")
    return (tags if isinstance(tags, list) else []), (metadata if isinstance(metadata, dict) else {})


def columns(dialect: str) -> tuple:
    """SQL expressions of a row's tags and metadata (JSON, or its text on SQLite), read out of its
    context by the database: a page of events need not fetch whole contexts (rendered ones hold
    the content)."""
    M = OutboundMessage
    if dialect == "postgresql":
        ctx = cast(M.context, JSON)
        return ctx["tags"], ctx["metadata"]
    return func.json_extract(M.context, "$.tags"), func.json_extract(M.context, "$.metadata")
