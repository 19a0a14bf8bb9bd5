"""What an admin may write into the directory, and how it reads back.

The agent and consent-grant forms (pydantic models), validated the same for the admin API
and the CLI, and the records in the contract's names. No I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from inbox.addresses import ADDRESS_OF
from inbox.directory import AgentRecord, GrantRecord
from receivers.schema import printable
from relay.errors import BadRequestError, InvalidPayloadError
from relay.labels import LOCALES
from relay.model import AGENT_CHANNELS, EARLIEST, LATEST, iso
from relay.phones import MAX_INPUT_CHARS, to_e164
from relay.text import one_line
from relay.timing import parse_quiet_hours

#: the validation context key that carries RELAY_DEFAULT_REGION to the phone fields
REGION = "region"
PHONE_HELP = (
    "a phone number as people write it (+40 722 123 456; 0722 123 456 with RELAY_DEFAULT_REGION), stored in E.164"
)
AGENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
SUBJECT = re.compile(
    r"^(actor:[^\s:]{1,200}|tenant:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)
EVENT_TYPES = ("panic.ui", "status.set", "care.escalation_detected", "care.trigger_detected", "care.state_applied")
CHANNELS = (*AGENT_CHANNELS, "console")
Name = str


#: a group name, like the payloads' labels (receivers.schema.MAX_LABEL_CHARS)
MAX_GROUP_CHARS = 100
MAX_GROUPS = 50
#: who granted, revoked or retried: a name as it is stored (the columns hold 100 characters)
MAX_BY_CHARS = 100
BY_HELP = (
    "who acts, kept in the audit trail; a RELAY_ADMINS token names its admin, who is recorded:"
    " leave it out, as another name is 400"
)


def _clean_list(values: list[str], allowed: tuple[str, ...] | None, what: str) -> list[str]:
    out: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if len(value) > MAX_GROUP_CHARS or not value.isprintable():
            raise ValueError(f"a {what} is 1 to {MAX_GROUP_CHARS} printable characters")
        if allowed is not None and value not in allowed:
            raise ValueError(f"unknown {what} '{value}'; use {', '.join(allowed)}")
        if value not in out:
            out.append(value)
    if len(out) > MAX_GROUPS:
        raise ValueError(f"name at most {MAX_GROUPS} of them")
    return out


def checked_by(by: str) -> str:
    """Who acted, as it can be stored: 1 to 100 printable characters."""
    by = by.strip()
    if not by or len(by) > MAX_BY_CHARS:
        raise BadRequestError(f"Say who acts in 'by', in 1 to {MAX_BY_CHARS} characters.")
    if not by.isprintable():
        raise BadRequestError("'by' is a name: it cannot hold control characters.")
    return by


def _in_calendar(value: datetime) -> datetime:
    """An aware instant the relay can store and read back on either database."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError("use a date-time between 1970-01-01 and 9999-12-31 (UTC)")
    return utc


class AgentFields(BaseModel):
    """The changeable fields of an agent (PATCH takes any subset)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    display: Annotated[str, AfterValidator(printable)] | None = Field(None, min_length=1, max_length=200)
    groups: list[str] | None = None
    slack_user: str | None = Field(None, pattern=r"^[UW][A-Z0-9]{2,40}$")
    phone: str | None = Field(None, max_length=MAX_INPUT_CHARS, description=PHONE_HELP)
    whatsapp: str | None = Field(None, max_length=MAX_INPUT_CHARS, description=PHONE_HELP)
    channels: list[str] | None = None
    quiet_hours: str | None = None
    tz: str | None = None
    active: bool | None = None
    #: the language the agent reads (CONTRACT section 9); null: RELAY_DEFAULT_LOCALE
    locale: str | None = None
    #: the agent is away (CONTRACT section 10): routing passes them over until they are back
    away: bool | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _clean_list(v, None, "group")

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _clean_list(v, CHANNELS, "channel")

    @field_validator("phone", "whatsapp")
    @classmethod
    def _number(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        region = (info.context or {}).get(REGION)
        return to_e164(v, field=info.field_name or "phone", region=region, whatsapp=info.field_name == "whatsapp")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, v: str | None) -> str | None:
        if v:
            parse_quiet_hours(v)
        return v or None

    @field_validator("tz")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"'{v}' is not a time zone; use an Area/City name such as Europe/Bucharest") from None
        return v or None

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        if v is None:
            return None
        wanted = v.strip().lower().replace("_", "-")
        if wanted not in LOCALES:
            raise ValueError(f"'{v[:20]}' is not a language the relay speaks; use one of {', '.join(LOCALES)}")
        return wanted


class AgentIn(AgentFields):
    id: str = Field(pattern=AGENT_ID)
    display: Annotated[str, AfterValidator(printable)] = Field(min_length=1, max_length=200)


#: how many agents one invite-now names at most
MAX_INVITED = 50


class InviteIn(BaseModel):
    """Invite now (CONTRACT section 10): the agents to invite, and who asks."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agents: list[Annotated[str, Field(pattern=AGENT_ID)]] = Field(min_length=1, max_length=MAX_INVITED)
    by: Annotated[str, AfterValidator(printable)] = Field(min_length=1, max_length=MAX_BY_CHARS, description=BY_HELP)

    @field_validator("agents")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    #: chosen by the caller (e.g. to mirror a consent record elsewhere); made up when left out
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    subject: str
    scope: list[str] = Field(min_length=1)
    groups: list[str] = Field(min_length=1)
    channels: list[str] = []
    min_confidence: str | None = Field(None, pattern=r"^(low|medium|high)$")
    expires_at: datetime | None = None
    by: Annotated[str, AfterValidator(printable)] = Field(min_length=1, max_length=MAX_BY_CHARS, description=BY_HELP)

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        if not SUBJECT.fullmatch(v) or not v.isprintable():
            raise ValueError("subject is actor:<id> (M3) or tenant:<uuid> (AiSHA)")
        return v.lower() if v.startswith("tenant:") else v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: list[str]) -> list[str]:
        return _clean_list(v, EVENT_TYPES, "event type")

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        out = _clean_list(v, None, "group")
        if not out:
            raise ValueError("name at least one group")
        return out

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        return _clean_list(v, CHANNELS, "channel")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _in_calendar(v)


def validated(model: type[BaseModel], data: Any, *, region: str | None = None) -> Any:
    """Validate or raise the contract's 422 with a `fields` list.

    `region` (RELAY_DEFAULT_REGION) reads phone numbers written without a country code.
    """
    if not isinstance(data, dict):
        raise InvalidPayloadError([{"loc": [], "msg": "send one JSON object"}])
    locale = data.get("locale") if issubclass(model, AgentFields) else None
    if isinstance(locale, str) and locale.strip().lower().replace("_", "-") not in LOCALES:
        # CONTRACT section 9: a language the relay does not speak is a 400 that lists those it does
        raise BadRequestError(
            f"locale: '{one_line(locale)[:20]}' is not a language the relay speaks; use one of {', '.join(LOCALES)}."
        )
    try:
        return model.model_validate(data, context={REGION: region})
    except ValidationError as exc:
        fields = [
            {"loc": [str(p) for p in e["loc"]], "msg": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors(include_url=False)
        ]
        raise InvalidPayloadError(fields) from None


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def agent_view(agent: AgentRecord) -> dict[str, Any]:
    """An agent in the contract's names."""
    return {
        "id": agent.id,
        "display": agent.display,
        "groups": list(agent.group_ids),
        "slack_user": agent.slack_user,
        "phone": agent.phone,
        "whatsapp": agent.whatsapp,
        "channels": list(agent.channels),
        "quiet_hours": agent.quiet_hours,
        "tz": agent.tz,
        "locale": agent.locale,
        "active": agent.active,
        "away": agent.away,
        "opted_out": list(agent.opted_out),
        # each address the agent has, and whether its owner confirmed it (CONTRACT section 8)
        "verified": {
            channel: channel in agent.verified for channel, column in ADDRESS_OF.items() if getattr(agent, column)
        },
    }


def grant_view(grant: GrantRecord) -> dict[str, Any]:
    """A consent grant in the contract's names, instants as ISO 8601."""
    return {
        "id": grant.id,
        "subject": grant.subject,
        "scope": list(grant.scope),
        "groups": list(grant.group_ids),
        "channels": list(grant.channels),
        "min_confidence": grant.min_confidence,
        "expires_at": _iso(grant.expires_at),
        "by": grant.granted_by,
        "granted_at": _iso(grant.granted_at),
        "revoked_at": _iso(grant.revoked_at),
        "revoked_by": grant.revoked_by,
    }
