"""AiSHA C.A.R.E. events (Event Payload Contract v1), parsed into a `Signal`.

Required for every type (CONTRACT.md section 4): `event_id`, `type`, `ts` (ISO 8601;
without an offset it is taken as UTC), `tenant_id` (a UUID in its 36-character
hyphenated form, any case; the subject is `tenant:<uuid>` in lower case),
`entity_type` (lead|contact|account|opportunity), `entity_id` (any non-blank id: the seed
says UUID, real senders use others), `reason` (non-blank) and `policy_gate_result`
(allowed|escalated|blocked). Per type, in `EVENT_TYPES`:

- `care.escalation_detected` also needs `reasons` (1 to 20 non-blank codes) and
  `confidence` (high|medium|low);
- `care.trigger_detected` also needs `trigger_type`, `signal_entity_type` and
  `signal_entity_id`;
- `care.state_applied` also needs `care_state` (any non-blank state: the seed's list of
  states may grow, and the relay only displays it).

`signal_entity_type` / `signal_entity_id` fall back to the deprecated
`meta.source_entity_type` / `meta.source_entity_id` when the top-level field is absent,
`null` or `""` (the seed's `a || b`), for every type. `meta` is an optional object of at
most `MAX_META_BYTES` as compact UTF-8 JSON. `action_origin` is never an error: anything
but `user_directed` or `care_autonomous` (including absent) becomes `care_autonomous`
with `Signal.origin_uncertain=True` (C.A.R.E. "fail safe on uncertainty").
`deep_link` is a path inside the app (`/app/…`, no scheme or host, no spaces; `""`
counts as absent) so that an invitation can only ever link into `AISHA_APP_BASE_URL`.
`previous_state`, `escalation_status`, `intent` are optional strings. Unknown keys are
ignored; JSON `null` in an optional field is the same as leaving it out.

Caps (each breach is a 422 at its loc): ids (`event_id`, `entity_id`,
`signal_entity_id`) 200 characters; codes and states (`signal_entity_type`,
`trigger_type`, `care_state`, `previous_state`, `escalation_status`, `intent`, each of
`reasons`) 100 characters; `reason` 1000 characters; `reasons` 20 entries; `deep_link`
2000 characters; `meta` 4096 bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from receivers.schema import (
    EventId,
    Identifier,
    IsoDateTime,
    Label,
    not_blank,
    require_object,
    select_model,
    storable,
    validate,
)
from relay.model import Signal

#: Largest accepted `meta`, measured as compact JSON encoded in UTF-8.
MAX_META_BYTES = 4096
MAX_REASONS = 20
#: The action origins of the C.A.R.E. contract; anything else is treated as uncertain.
ACTION_ORIGINS = frozenset({"user_directed", "care_autonomous"})
_ASSUMED_ORIGIN = "care_autonomous"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_APP_PATH = re.compile(r"/(?!/)\S*")
# (top-level field, its deprecated place inside meta)
_LEGACY_SIGNAL_FIELDS = (
    ("signal_entity_type", "source_entity_type"),
    ("signal_entity_id", "source_entity_id"),
)


def _tenant_uuid(value: Any) -> Any:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise PydanticCustomError("uuid_format", "Input should be a UUID such as a11dfb63-4b18-4eb8-872e-747af2e37c46")
    return value.lower()


def _blank_as_none(value: Any) -> Any:
    return None if value == "" else value


def _app_path(value: str) -> str:
    if not _APP_PATH.fullmatch(value):
        raise PydanticCustomError(
            "deep_link_path", "deep_link should be a path inside the app, such as /app/contacts/<id>"
        )
    return value


_TenantId = Annotated[str, BeforeValidator(_tenant_uuid)]
_Reason = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=1000),
    AfterValidator(not_blank),
    AfterValidator(storable),
]
_Reasons = Annotated[list[Label], Field(min_length=1, max_length=MAX_REASONS)]
_DeepLink = Annotated[
    str, StringConstraints(strict=True, max_length=2000), AfterValidator(_app_path), AfterValidator(storable)
]
_OptionalDeepLink = Annotated[_DeepLink | None, BeforeValidator(_blank_as_none)]
EntityType = Literal["lead", "contact", "account", "opportunity"]
PolicyGateResult = Literal["allowed", "escalated", "blocked"]
Confidence = Literal["high", "medium", "low"]


#: what of `meta.subject` reaches an invitation
ABOUT_CHARS = 300


def _about(meta: Mapping[str, Any] | None) -> str | None:
    """`meta.subject`, when it is text: what the signal is about, in the sender's words."""
    subject = (meta or {}).get("subject")
    if not isinstance(subject, str) or not subject.strip():
        return None
    return "".join(c if c.isprintable() else " " for c in subject).strip()[:ABOUT_CHARS] or None


class CareEvent(BaseModel):
    """The fields every C.A.R.E. event carries; subclasses require their own extras."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: EventId
    type: Annotated[str, StringConstraints(strict=True)]
    ts: IsoDateTime
    tenant_id: _TenantId
    entity_type: EntityType
    entity_id: Identifier
    reason: _Reason
    policy_gate_result: PolicyGateResult
    # Read by `to_signal`, never validated: an unknown origin is recorded, not refused.
    action_origin: Any = None
    reasons: _Reasons | None = None
    confidence: Confidence | None = None
    signal_entity_type: Label | None = None
    signal_entity_id: Identifier | None = None
    trigger_type: Label | None = None
    care_state: Label | None = None
    previous_state: Label | None = None
    escalation_status: Label | None = None
    intent: Label | None = None
    deep_link: _OptionalDeepLink = None
    meta: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_signal_source(cls, data: Any) -> Any:
        # Senders mid-migration still put the signal source in meta.source_entity_*.
        if not isinstance(data, Mapping) or not isinstance(data.get("meta"), Mapping):
            return data
        meta = data["meta"]
        filled = dict(data)
        for field, legacy in _LEGACY_SIGNAL_FIELDS:
            if filled.get(field) in (None, "") and legacy in meta:
                filled[field] = meta[legacy]
        return filled

    @field_validator("meta")
    @classmethod
    def _meta_fits(cls, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        if meta is None:
            return None
        try:
            size = len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode())
        except (TypeError, ValueError, RecursionError):
            raise PydanticCustomError("meta_not_json", "meta should hold JSON values only") from None
        if size > MAX_META_BYTES:
            raise PydanticCustomError(
                "meta_too_large",
                "meta should be at most {limit} bytes as compact JSON",
                {"limit": MAX_META_BYTES},
            )
        return meta

    def to_signal(self) -> Signal:
        """Build the relay's `Signal` from this event."""
        origin_known = isinstance(self.action_origin, str) and self.action_origin in ACTION_ORIGINS
        return Signal(
            source="aisha",
            event_id=self.event_id,
            type=self.type,
            ts=self.ts,
            subject=f"tenant:{self.tenant_id}",
            action_origin=self.action_origin if origin_known else _ASSUMED_ORIGIN,
            origin_uncertain=not origin_known,
            policy_gate_result=self.policy_gate_result,
            reason=self.reason,
            reasons=tuple(self.reasons or ()),
            confidence=self.confidence,
            deep_link=self.deep_link,
            entity_type=self.entity_type,
            entity_id=self.entity_id,
            signal_entity_type=self.signal_entity_type,
            signal_entity_id=self.signal_entity_id,
            trigger_type=self.trigger_type,
            care_state=self.care_state,
            about=_about(self.meta),
        )


class EscalationDetected(CareEvent):
    """`care.escalation_detected`: a person may be needed; says why and how sure."""

    type: Literal["care.escalation_detected"]
    reasons: _Reasons
    confidence: Confidence


class TriggerDetected(CareEvent):
    """`care.trigger_detected`: something happened to a related entity (the signal source)."""

    type: Literal["care.trigger_detected"]
    trigger_type: Label
    signal_entity_type: Label
    signal_entity_id: Identifier


class StateApplied(CareEvent):
    """`care.state_applied`: the relationship's C.A.R.E. state changed."""

    type: Literal["care.state_applied"]
    care_state: Label


#: The C.A.R.E. event types this relay handles, each with its model.
EVENT_TYPES: Mapping[str, type[CareEvent]] = MappingProxyType(
    {
        "care.escalation_detected": EscalationDetected,
        "care.trigger_detected": TriggerDetected,
        "care.state_applied": StateApplied,
    }
)


def parse(payload: Any) -> Signal:
    """Parse a decoded AiSHA JSON body into a `Signal`.

    Raises `InvalidPayloadError` (422, with `fields`) when the body breaks the C.A.R.E.
    payload contract and `UnsupportedEventTypeError` (422) for a `type` this relay does not
    handle. A missing or unknown `action_origin` is never an error.
    """
    data = require_object(payload)
    model = select_model(data, EVENT_TYPES, fallback=CareEvent, sender="AiSHA")
    return validate(model, data).to_signal()
