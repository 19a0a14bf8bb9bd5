"""The OpenAPI document's components: request bodies from the pydantic models, answers and errors.

Request bodies are the models' own JSON Schema (`models_json_schema`), so the document
and the validation cannot say two things. Answers are written here in the contract's
names; they allow further properties, as the contract lets answers grow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from receivers.aisha.events import EscalationDetected, StateApplied, TriggerDetected
from receivers.m3.envelope import PanicUi, StatusSet
from relay.deliveries import OUTBOX_KINDS, OUTBOX_STATUSES
from relay.forms import CHANNELS, AgentFields, AgentIn, GrantIn, InviteIn
from relay.labels import LOCALES
from relay.model import LOOP_STATUSES

REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (
    PanicUi,
    StatusSet,
    EscalationDetected,
    TriggerDetected,
    StateApplied,
    AgentIn,
    AgentFields,
    GrantIn,
    InviteIn,
)

#: every error code of the contract, by status (section 4, and 500 for a fault of the relay's own)
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("malformed_json", "header_mismatch", "bad_request"),
    401: (
        "missing_signature",
        "invalid_signature",
        "timestamp_out_of_window",
        "malformed_signature_header",
        "unauthorized",
    ),
    403: ("forbidden",),
    404: ("not_found",),
    405: ("method_not_allowed",),
    408: ("request_timeout",),
    409: ("event_id_conflict", "nonce_reused", "already_done", "already_answered", "consent_required", "not_failed"),
    410: ("link_expired",),
    413: ("payload_too_large",),
    415: ("unsupported_media_type",),
    422: ("invalid_payload", "unsupported_event_type"),
    429: ("rate_limited",),
    503: ("unavailable",),
}
INVITATION_STATUSES = ("queued", "sent", "delivered", "read", "failed", "skipped")


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


def _obj(required: list[str], properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, **more}


def _listing(item: str) -> dict[str, Any]:
    return _obj(
        ["items", "next_cursor"], {"items": {"type": "array", "items": ref(item)}, "next_cursor": _nullable("string")}
    )


_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
#: the channels whose address its owner confirms (CONTRACT section 8)
ADDRESS_CHANNELS = ("slack", "sms", "whatsapp")
#: each address an agent has, and whether its owner confirmed it
_VERIFIED = {
    "type": "object",
    "properties": {channel: {"type": "boolean"} for channel in ADDRESS_CHANNELS},
    "additionalProperties": False,
}
_BY = _obj(["id", "display"], {"id": _STRING, "display": _STRING})


def _answers() -> dict[str, Any]:
    """What the relay answers with, and what it sends out (callbacks), in the contract's names."""
    time = {"type": "string", "format": "date-time"}
    callback_fields = {
        "type": {"enum": ["care.ack", "care.done"]},
        "ts": time,
        "for": _STRING,
        "by": _BY,
        "action": _STRING,
        "outcome": _STRING,
        "note": _STRING,
    }
    return {
        "Error": _obj(
            ["error", "detail"],
            {
                "error": {"type": "string", "enum": sorted({c for codes in ERROR_CODES.values() for c in codes})},
                "detail": _STRING,
                "fields": {
                    "type": "array",
                    "items": _obj(["loc", "msg"], {"loc": {"type": "array"}, "msg": _STRING}),
                },
            },
        ),
        "Accepted": _obj(
            ["id", "status", "duplicate", "status_url"],
            {
                "id": _STRING,
                "status": {"enum": list(LOOP_STATUSES)},
                "duplicate": {"type": "boolean"},
                "status_url": _STRING,
                "joined_to": _STRING,
                "consent_url": _STRING,
            },
        ),
        "EventStatus": _obj(
            ["id", "source", "type", "status", "received_at", "decision", "invitations", "acks", "done"],
            {
                "id": _STRING,
                "source": {"enum": ["m3", "aisha"]},
                "type": _STRING,
                "status": {"enum": list(LOOP_STATUSES)},
                "received_at": time,
                "decision": _obj(["reason", "gates"], {"reason": _nullable("string"), "gates": {"type": "array"}}),
                "invitations": {
                    "type": "array",
                    "items": _obj(
                        ["agent", "channel", "status"],
                        {
                            "agent": _STRING,
                            "channel": _nullable("string"),
                            "status": {"enum": list(INVITATION_STATUSES)},
                            # present when a person asked for it: "admin:NAME" (invite now),
                            # "agent:ID" (ask someone else), "actor:ID" (the actor's own consent)
                            "invited_by": _STRING,
                        },
                    ),
                },
                # status `joined`: the open loop this signal joined (CONTRACT section 10)
                "joined_to": _STRING,
                # later signals about the same subject, joined to this loop while it was open
                "joined": {
                    "type": "array",
                    "items": _obj(["id", "type", "ts"], {"id": _STRING, "type": _STRING, "ts": time}),
                },
                # a `pending_consent` M3 signal whose groups name a directory group: the actor's consent page
                "consent_url": _STRING,
                # agents who said "not now" (CONTRACT section 10)
                "passes": {
                    "type": "array",
                    "items": _obj(["by", "ts"], {"by": callback_fields["by"], "ts": time}),
                },
                "acks": {"type": "array", "items": _obj(["type", "ts", "for", "by", "action"], callback_fields)},
                "done": {"oneOf": [{"type": "null"}, _obj(["type", "ts", "for", "by", "outcome"], callback_fields)]},
            },
        ),
        "Agent": _obj(
            ["id", "display", "groups", "channels", "active"],
            {
                "id": _STRING,
                "display": _STRING,
                "groups": _STRINGS,
                "slack_user": _nullable("string"),
                "phone": _nullable("string"),
                "whatsapp": _nullable("string"),
                "channels": {"type": "array", "items": {"enum": list(CHANNELS)}},
                "quiet_hours": _nullable("string"),
                "tz": _nullable("string"),
                "locale": {"oneOf": [{"type": "null"}, {"enum": list(LOCALES)}]},
                "active": {"type": "boolean"},
                "away": {"type": "boolean"},
                "opted_out": _STRINGS,
                "verified": _VERIFIED,
            },
        ),
        "Invited": _obj(
            ["id", "source", "status", "invited", "already_invited", "by"],
            {
                "id": _STRING,
                "source": {"enum": ["m3", "aisha"]},
                "status": {"enum": list(LOOP_STATUSES)},
                "invited": {
                    "type": "array",
                    "items": _obj(["agent", "channel"], {"agent": _STRING, "channel": {"enum": list(CHANNELS)}}),
                },
                "already_invited": _STRINGS,
                "by": _STRING,
            },
        ),
        "VerifyIn": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"channel": {"enum": list(ADDRESS_CHANNELS)}},
        },
        "Verifying": _obj(
            ["id", "sent", "verified"],
            {
                "id": _STRING,
                "sent": {"type": "array", "items": {"enum": list(ADDRESS_CHANNELS)}},
                "verified": _VERIFIED,
            },
        ),
        "Grant": _obj(
            ["id", "subject", "scope", "groups", "channels", "expires_at", "by", "granted_at", "revoked_at"],
            {
                "id": _STRING,
                "subject": _STRING,
                "scope": _STRINGS,
                "groups": _STRINGS,
                "channels": _STRINGS,
                "min_confidence": _nullable("string"),
                "expires_at": _nullable("string", format="date-time"),
                "by": _STRING,
                "granted_at": time,
                "revoked_at": _nullable("string", format="date-time"),
                "revoked_by": _nullable("string"),
            },
        ),
        "Loop": _obj(["id", "source", "type", "status", "received_at"], {"status": {"enum": list(LOOP_STATUSES)}}),
        "AuditLine": _obj(["at"], {"at": time}),
        "OutboxRow": _obj(
            ["id", "kind", "status", "attempts", "next_attempt_at", "last_error", "event_id", "source"],
            {
                "kind": {"enum": list(OUTBOX_KINDS)},
                "status": {"enum": [*OUTBOX_STATUSES, "done"]},
                "attempts": {"type": "integer", "minimum": 0},
                "next_attempt_at": _nullable("string"),
                "last_error": _nullable("string"),
                "event_id": _nullable("string"),
                "source": _nullable("string"),
                "agent": _nullable("string"),
                "channel": _nullable("string"),
            },
        ),
        "AgentList": _listing("Agent"),
        "GrantList": _listing("Grant"),
        "LoopList": _listing("Loop"),
        "AuditList": _listing("AuditLine"),
        "OutboxList": _listing("OutboxRow"),
        "Health": _obj(["ok"], {"ok": {"type": "boolean"}, "database": _STRING}),
        "NotReady": _obj(["ok", "error", "detail"], {"ok": {"const": False}, "error": {"const": "unavailable"}}),
        "LinkAnswer": _obj(
            ["action"],
            {
                "action": {"enum": ["ack", "done", "pass", "ask"]},
                "response": _STRING,
                "outcome": _STRING,
                "note": _STRING,
                # action=ask: the agent to invite (CONTRACT section 10, "ask someone else")
                "agent": _STRING,
            },
        ),
        "ConsentAnswer": _obj(["action"], {"action": {"enum": ["yes", "stop"]}}),
        "M3Callback": _obj(["id", *(k for k in ("type", "ts", "for", "by"))], {"id": _STRING, **callback_fields}),
        "AishaCallback": _obj(["event_id", "type", "ts", "for", "by"], {"event_id": _STRING, **callback_fields}),
    }


def schemas() -> dict[str, Any]:
    """Every component schema: the models' (inputs) and the answers'."""
    _, defs = models_json_schema([(m, "validation") for m in MODELS], ref_template=REF)
    return {**defs["$defs"], **_answers()}


def error_response(status: int) -> dict[str, Any]:
    """A shared error answer: the contract's JSON with this status's codes."""
    body = {"allOf": [ref("Error"), {"properties": {"error": {"enum": list(ERROR_CODES[status])}}}]}
    return {"description": ", ".join(ERROR_CODES[status]), "content": {"application/json": {"schema": body}}}
