"""M3 relational webhooks (`panic.ui`, `status.set`): the envelope, parsed into a `Signal`.

The envelope follows the Relational Webhooks draft (CONTRACT.md section 4):

- required: `id`, `type`, `ts` (ISO 8601; without an offset it is taken as UTC),
  `actor.id`, `audience` (an object), `intent` (an object);
- `audience.groups` / `audience.targets` default to empty; only `user:<id>` targets
  name directory agents (the prefix is stripped). Other target forms (`group:…`,
  a bare id, `User:…`) are ignored, not refused: the relay only ever invites directory
  agents, and a target it cannot read must not cost the signal;
- `intent.suggested_responses` defaults to `["soft-checkin"]` when absent, `null` or
  `[]`; `intent.care_window_minutes` is a strict positive integer (no bools, floats or
  strings), absent or `null` meaning an unlimited window;
- `consent` is optional (absent means not explicit: the router answers
  `pending_consent`); when present it needs `mode`, `scope` defaults to `[]`;
- `security.nonce` and `security.ts_window_sec` (strict positive integer) are optional;
  `security.sig`, `consent.granted_by` and `consent.granted_at` are not read; of `context`
  only `status` and `note` are, when they are text (`status.set` carries them: they are
  the message), and any other shape is left unread rather than refused;
- unknown keys, at the top level and inside each block, are ignored (forward
  compatibility). JSON `null` in an optional field is the same as leaving it out.

Groups, targets and responses keep their order and lose duplicates.

Caps that keep one payload from weighing on the relay (each breach is a 422 at its loc):

| field | cap |
| --- | --- |
| `id`, `actor.id`, `security.nonce` | 200 characters |
| `actor.display`, `intent.why` | 200 characters |
| `intent.whisper` | 2000 characters |
| `audience.groups`, `audience.targets`, `consent.scope` | 50 entries of 1 to 100 characters |
| `intent.suggested_responses` | 10 entries of 1 to 64 characters |
| `intent.care_window_minutes` | 1 to 525600 (one year) |
| `consent.mode` | 1 to 100 characters |

Responses are capped low because each becomes a Slack button (label at most 75
characters, 25 elements per block) and a numbered line in an SMS menu.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from receivers.schema import (
    EventId,
    Identifier,
    IsoDateTime,
    Label,
    NoneAsEmpty,
    not_blank,
    printable,
    require_object,
    select_model,
    storable,
    validate,
)
from relay.model import PayloadConsent, Signal

#: Offered when the sender suggests no response of its own.
DEFAULT_SUGGESTED_RESPONSES: tuple[str, ...] = ("soft-checkin",)
#: Longest accepted care window, in minutes; leave the field out for "unlimited".
MAX_CARE_WINDOW_MINUTES = 525_600
MAX_AUDIENCE_ENTRIES = 50
MAX_SUGGESTED_RESPONSES = 10
_TARGET_PREFIX = "user:"

_ShortText = Annotated[str, StringConstraints(strict=True, max_length=200), AfterValidator(storable)]
_Whisper = Annotated[str, StringConstraints(strict=True, max_length=2000), AfterValidator(storable)]
_Response = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=64),
    AfterValidator(not_blank),
    AfterValidator(printable),
]
_PositiveInt = Annotated[int, Strict(), Field(gt=0)]
_LabelList = Annotated[list[Label], NoneAsEmpty, Field(max_length=MAX_AUDIENCE_ENTRIES)]


class _Block(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Actor(_Block):
    """Who sent the signal; `id` becomes the consent subject `actor:<id>`."""

    id: Identifier
    display: _ShortText | None = None


class Audience(_Block):
    """Whom the sender would like to reach: group names and `user:<id>` targets."""

    groups: _LabelList = Field(default_factory=list)
    targets: _LabelList = Field(default_factory=list)


class Intent(_Block):
    """The human meaning of the signal: why, the whisper, responses, the care window."""

    why: _ShortText | None = None
    whisper: _Whisper | None = None
    suggested_responses: Annotated[list[_Response], Field(max_length=MAX_SUGGESTED_RESPONSES)] = Field(
        default_factory=lambda: list(DEFAULT_SUGGESTED_RESPONSES)
    )
    care_window_minutes: Annotated[int, Strict(), Field(gt=0, le=MAX_CARE_WINDOW_MINUTES)] | None = None

    @field_validator("suggested_responses", mode="before")
    @classmethod
    def _default_when_empty(cls, value: object) -> object:
        # `null` and `[]` both mean "no suggestion": an invitation needs one response.
        if value is None or value == []:
            return list(DEFAULT_SUGGESTED_RESPONSES)
        return value


class Consent(_Block):
    """The consent block the sender put in its own payload (not a grant)."""

    mode: Label
    scope: _LabelList = Field(default_factory=list)
    expires_at: IsoDateTime | None = None


class Security(_Block):
    """Replay protection the sender asks for; `sig` is not read (the header is)."""

    nonce: Identifier | None = None
    ts_window_sec: _PositiveInt | None = None


#: what of `context.status` / `context.note` reaches an invitation (the raw body keeps the rest)
CONTEXT_CHARS = 500


def _context_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    # a printable text (nearly every one) is kept as it is: one C scan, not a Python step per character
    text = value if value.isprintable() else "".join(c if c.isprintable() else " " for c in value)
    return text.strip()[:CONTEXT_CHARS] or None


class Envelope(_Block):
    """The Relational Webhooks envelope shared by every M3 event type."""

    id: EventId
    type: Annotated[str, Strict()]
    ts: IsoDateTime
    actor: Actor
    audience: Audience
    intent: Intent
    consent: Consent | None = None
    security: Security | None = None
    context: Any = None

    def to_signal(self) -> Signal:
        """Build the relay's `Signal` from this envelope."""
        display = self.actor.display
        consent = self.consent
        context = self.context if isinstance(self.context, dict) else {}
        return Signal(
            source="m3",
            event_id=self.id,
            type=self.type,
            ts=self.ts,
            subject=f"actor:{self.actor.id}",
            actor_display=display if display and display.strip() else None,
            groups=_unique(self.audience.groups),
            targets=_agent_ids(self.audience.targets),
            whisper=self.intent.whisper,
            suggested_responses=_unique(self.intent.suggested_responses),
            care_window_minutes=self.intent.care_window_minutes,
            payload_consent=None
            if consent is None
            else PayloadConsent(mode=consent.mode, scope=_unique(consent.scope), expires_at=consent.expires_at),
            nonce=None if self.security is None else self.security.nonce,
            context_status=_context_text(context.get("status")),
            context_note=_context_text(context.get("note")),
        )


class PanicUi(Envelope):
    """`panic.ui`: an invitation to be witnessed, not an escalation."""

    type: Literal["panic.ui"]


class StatusSet(Envelope):
    """`status.set`: a change of state the circle may want to know about."""

    type: Literal["status.set"]


#: The M3 event types this relay handles, each with its model.
EVENT_TYPES: Mapping[str, type[Envelope]] = MappingProxyType(
    {
        "panic.ui": PanicUi,
        "status.set": StatusSet,
    }
)


_KNOWN_ENVELOPES: TypeAdapter[PanicUi | StatusSet] = TypeAdapter(
    Annotated[PanicUi | StatusSet, Field(discriminator="type")]
)


def plain_json(body: bytes) -> bool:
    """Whether `body` is JSON with no number pydantic's parser would read as infinite or NaN.

    pydantic takes `NaN`, `Infinity` and numbers that overflow (`1e999`); the relay refuses
    them (400). orjson refuses all three (and a few bodies the ordinary path takes, such as
    a lone surrogate escape or an integer too long for a float: those only lose the fast
    path). A C parser over the bytes costs a few microseconds; a regex scan cost more.
    """
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def parse_fast(body: bytes) -> tuple[dict[str, Any], Signal] | None:
    """The hot path: a well-formed body of a known type, read in one pass from its bytes.

    Returns what the header check reads (`type`, `security.ts_window_sec`) and the
    `Signal`, or None for anything else. None sends the request down the ordinary path
    (`json.loads`, the header check, `parse`), which finds the problem and words it, so
    this path never decides an error, it only skips work for bodies that are fine.
    """
    if not plain_json(body):
        return None
    try:
        envelope = _KNOWN_ENVELOPES.validate_json(body)
    except ValidationError:
        return None
    security = envelope.security
    view = {"type": envelope.type, "security": None if security is None else {"ts_window_sec": security.ts_window_sec}}
    return view, envelope.to_signal()


def parse(payload: Any) -> Signal:
    """Parse a decoded M3 JSON body into a `Signal`.

    Raises `InvalidPayloadError` (422, with `fields`) when the body breaks the envelope and
    `UnsupportedEventTypeError` (422) when `type` names an event this relay does not handle.
    """
    data = require_object(payload)
    model = select_model(data, EVENT_TYPES, fallback=Envelope, sender="M3")
    return validate(model, data).to_signal()


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _agent_ids(targets: Iterable[str]) -> tuple[str, ...]:
    return _unique(
        target[len(_TARGET_PREFIX) :]
        for target in targets
        if target.startswith(_TARGET_PREFIX) and target[len(_TARGET_PREFIX) :].strip()
    )
