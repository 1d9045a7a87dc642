"""The API's JSON parser, and the refusal of a body too large to read.

A module of its own that imports nothing of DRF's views: `REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]` names it,
and DRF resolves that setting while `rest_framework.views` is being imported.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is too large."


# JSON deeper than this is refused before Python's recursion limit is near (no request of the API nests more
# than a few levels).
MAX_JSON_DEPTH = 32


def _depth_exceeded(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (one pass, no recursion)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, with a nesting limit: a `[[[[…]]]]` body is a 400, not a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read()
        try:
            text = raw.decode((parser_context or {}).get("encoding") or "utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        if _depth_exceeded(text, MAX_JSON_DEPTH):
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        _refuse_unencodable(data)
        return data


def _refuse_unencodable(data: object) -> None:
    """A `\\ud800` escape decodes to a lone surrogate, which no database driver can encode: refuse it here
    (one pass over the document, no recursion) rather than as a 500 in the first query that uses it."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = [key for key in item if isinstance(key, str)]
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
            continue
        else:
            continue
        for string in strings:
            try:
                string.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ParseError(
                    "JSON parse error - a string holds a lone surrogate (\\ud800-\\udfff)"
                ) from exc
