"""What the payload parsers share: field types, event-type dispatch, error translation.

`m3.py` and `aisha.py` each describe their sender's payload as pydantic models; this
module holds the pieces both need so the rules read the same everywhere:

- `require_object` and `select_model` run before the schema: a body that is not a JSON
  object is `invalid_payload` at loc `[]`; a `type` that is a string but not a known one
  is `unsupported_event_type` (a missing or non-string `type` is left to the schema).
- `validate` turns pydantic's `ValidationError` into `InvalidPayload`, keeping only
  `loc` and `msg`. pydantic's `input` (and `ctx`) are dropped because they may hold care
  data; every message used here is a fixed sentence that never repeats the input.
- `Identifier`, `Label`, `IsoDateTime`: strict string and timestamp types.

Timestamps must be ISO 8601 date-times as strings (`2026-01-07T10:12:00Z`); a date alone
or a Unix number is refused. A timestamp without an offset is taken as UTC (senders
that omit the offset are, in practice, writing UTC), and every timestamp is normalised
to UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from relay.errors import InvalidPayloadError, UnsupportedEventTypeError

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Longest accepted id (event ids, actor ids, entity ids, nonces).
MAX_ID_CHARS = 200
#: Longest accepted short label (group names, targets, scope entries, codes, states).
MAX_LABEL_CHARS = 100
_MAX_TS_CHARS = 64
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?")


#: No storage keeps these in text: NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: Control characters (C0, DEL, C1) besides: an id or a label is one line of printable text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def storable(value: str) -> str:
    """Refuse text no database can keep (an `AfterValidator` for free-text fields)."""
    if _UNSTORABLE.search(value):
        raise PydanticCustomError("unstorable_text", "String should not contain NUL characters or lone surrogates")
    return value


def printable(value: str) -> str:
    """Refuse control characters in ids and labels (an `AfterValidator`)."""
    if _CONTROL.search(value):
        raise PydanticCustomError("control_character", "String should not contain control characters")
    return value


def not_blank(value: str) -> str:
    """Refuse a string made only of whitespace (an `AfterValidator` for str fields)."""
    if not value.strip():
        raise PydanticCustomError("blank_string", "String should not be blank")
    return value


def _iso_datetime_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date-time string")
    if len(value) > _MAX_TS_CHARS or not _ISO_DATETIME.fullmatch(value):
        raise PydanticCustomError(
            "datetime_format", "Input should be an ISO 8601 date-time such as 2026-01-07T10:12:00Z"
        )
    return value


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "Date-time is out of range") from None


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


#: A non-blank string of at most `MAX_ID_CHARS` characters; numbers are not coerced.
Identifier = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_ID_CHARS),
    AfterValidator(not_blank),
    AfterValidator(printable),
]


def _not_dot_segment(value: str) -> str:
    # "." and ".." cannot be a path segment (clients and servers collapse them), so such an
    # id would have no status URL.
    if value in (".", ".."):
        raise PydanticCustomError("dot_segment", "An event id cannot be '.' or '..'")
    return value


#: An `Identifier` that also works as a URL path segment: event ids end up in status URLs.
EventId = Annotated[Identifier, AfterValidator(_not_dot_segment)]

#: A non-blank string of at most `MAX_LABEL_CHARS` characters.
Label = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_LABEL_CHARS),
    AfterValidator(not_blank),
    AfterValidator(printable),
]
#: An ISO 8601 date-time string, returned as an aware UTC `datetime`.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime_string), AfterValidator(_as_utc)]
#: Wrap a list type with this so that JSON `null` reads as "absent" (an empty list).
NoneAsEmpty = BeforeValidator(_none_as_empty)


def require_object(payload: Any) -> dict[str, Any]:
    """Return the payload if it is a JSON object, else raise `InvalidPayload` at loc []."""
    if not isinstance(payload, dict):
        raise InvalidPayloadError(
            [{"loc": [], "msg": "The body should be a JSON object"}],
            detail="The payload should be a JSON object; see 'fields'.",
        )
    return payload


def select_model(
    payload: Mapping[str, Any],
    registry: Mapping[str, type[ModelT]],
    *,
    fallback: type[ModelT],
    sender: str,
) -> type[ModelT]:
    """Pick the model for the payload's `type` from `registry`.

    A string `type` the registry does not know raises `UnsupportedEventTypeError` naming the
    supported types (the unknown value itself is not repeated). A missing or non-string
    `type` returns `fallback`, whose schema then reports it as `invalid_payload`.
    """
    event_type = payload.get("type")
    if not isinstance(event_type, str):
        return fallback
    model = registry.get(event_type)
    if model is None:
        supported = ", ".join(sorted(registry))
        raise UnsupportedEventTypeError(
            f"This relay does not handle that {sender} event type; supported types: {supported}."
        )
    return model


def validate(model: type[ModelT], payload: Mapping[str, Any]) -> ModelT:
    """Validate `payload` against `model`, raising `InvalidPayload` with every problem found."""
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise invalid_payload(error) from None


def invalid_payload(error: ValidationError) -> InvalidPayloadError:
    """Translate a pydantic `ValidationError` into `InvalidPayload(fields=[{loc, msg}])`.

    Only the location and pydantic's message are kept: `input` and `ctx` may carry care
    data and are dropped.
    """
    fields = [
        {"loc": list(entry["loc"]), "msg": entry["msg"]}
        for entry in error.errors(include_url=False, include_input=False, include_context=False)
    ]
    return InvalidPayloadError(fields)
