"""The agent directory and consent grants: validation and changes, for the admin API and CLI.

Both front ends validate through the same pydantic models and change the database
through the writer, so a change is committed (and the directory version moved) before
either answers: the next signal sees it, with no restart.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import directory as stored
from inbox.directory import AgentRecord, GrantRecord
from inbox.writer import Tx, Writer, now_ms
from receivers.schema import printable
from relay.errors import BadRequestError, InvalidPayloadError, NotFoundError
from relay.model import AGENT_CHANNELS, EARLIEST, LATEST, iso
from relay.router import parse_quiet_hours

E164 = r"^\+[1-9][0-9]{6,14}$"
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
    phone: str | None = Field(None, pattern=E164)
    whatsapp: str | None = Field(None, pattern=E164)
    channels: list[str] | None = None
    quiet_hours: str | None = None
    tz: str | None = None
    active: bool | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _clean_list(v, None, "group")

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _clean_list(v, CHANNELS, "channel")

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


class AgentIn(AgentFields):
    id: str = Field(pattern=AGENT_ID)
    display: Annotated[str, AfterValidator(printable)] = Field(min_length=1, max_length=200)


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
    by: Annotated[str, AfterValidator(printable)] = Field(min_length=1, max_length=MAX_BY_CHARS)

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


def validated(model: type[BaseModel], data: Any) -> Any:
    """Validate or raise the contract's 422 with a `fields` list."""
    if not isinstance(data, dict):
        raise InvalidPayloadError([{"loc": [], "msg": "send one JSON object"}])
    try:
        return model.model_validate(data)
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
        "active": agent.active,
        "opted_out": list(agent.opted_out),
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


async def agents(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every agent in the directory (not the removed), in the contract's names."""
    return [agent_view(row) for row in await stored.list_agents(engine)]


async def agent(engine: AsyncEngine, agent_id: str) -> dict[str, Any]:
    """One agent in the contract's names; 404 for an id that is not (or no longer) in the directory."""
    for row in await stored.list_agents(engine):
        if row.id == agent_id:
            return agent_view(row)
    raise NotFoundError(f"No agent '{agent_id}' in the directory.")


async def grants(engine: AsyncEngine, subject: str | None = None) -> list[dict[str, Any]]:
    """Every consent grant (of one subject, when given), revoked ones included."""
    return [grant_view(row) for row in await stored.list_grants(engine, subject)]


#: the contract's field names that storage spells otherwise
_COLUMN = {"groups": "group_ids"}


def _changed(agent: AgentRecord, fields: dict[str, Any]) -> AgentRecord:
    """The agent with validated fields (the contract's names, lists as given) applied."""
    columns: dict[str, Any] = {_COLUMN.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return replace(agent, **columns)


def _refuse_shared_address(tx: Tx, agent: AgentRecord) -> None:
    """A Slack user or number names one person: answers are matched by it."""
    taken = stored.address_taken(tx, agent)
    if taken:
        raise BadRequestError(
            f"Another agent already has this {taken.replace('_', ' ')}; each address belongs to one agent."
        )


async def add_agent(writer: Writer, data: Any) -> dict[str, Any]:
    """Add an agent; 400 when its id or one of its addresses is taken (a removed agent's id too)."""
    fields = validated(AgentIn, data)
    new = _changed(AgentRecord(id=fields.id, display=fields.display), fields.model_dump(exclude_none=True))

    def job(tx: Tx) -> AgentRecord | None:
        _refuse_shared_address(tx, new)
        return None if stored.insert_agent(tx, new, now_ms()) else stored.get_agent_tx(tx, new.id)

    taken = await writer.run(job)
    if taken is not None and taken.removed_at is not None:
        raise BadRequestError(
            f"The id '{new.id}' belonged to an agent who was removed; an id is never reused, so that nobody"
            " inherits another person's invitations. Choose another id."
        )
    if taken is not None:
        raise BadRequestError(f"An agent with id '{new.id}' already exists; change it with PATCH or remove it first.")
    return agent_view(new)


async def patch_agent(writer: Writer, agent_id: str, data: Any) -> dict[str, Any]:
    """Change some fields of an agent in the directory; 404 when it is not (or no longer) there."""
    changes = validated(AgentFields, data).model_dump(exclude_unset=True)
    # null clears an address, quiet hours or a time zone and empties a list; a name and the
    # active switch always hold a value.
    refused = [
        {"loc": [key], "msg": f"{key} cannot be null; leave it out to keep it"}
        for key in ("display", "active")
        if key in changes and changes[key] is None
    ]
    if refused:
        raise InvalidPayloadError(refused)
    changes.update({key: [] for key in ("groups", "channels") if key in changes and changes[key] is None})

    def job(tx: Tx) -> AgentRecord | None:
        current = stored.get_agent_tx(tx, agent_id)
        if current is None or current.removed_at is not None:
            return None
        changed = _changed(current, changes)
        _refuse_shared_address(tx, changed)
        stored.replace_agent(tx, changed, now_ms())
        return changed

    changed = await writer.run(job)
    if changed is None:
        raise NotFoundError(f"No agent '{agent_id}' in the directory.")
    return agent_view(changed)


async def remove_agent(writer: Writer, agent_id: str) -> None:
    """Remove an agent from the directory; its id stays taken (a tombstone), never reused."""
    if not await writer.run(lambda tx: stored.remove_agent(tx, agent_id, now_ms())):
        raise NotFoundError(f"No agent '{agent_id}' in the directory.")


async def grant_consent(writer: Writer, data: Any) -> dict[str, Any]:
    """Record a consent grant; 400 when a grant with the id the caller chose exists."""
    grant = validated(GrantIn, data)
    new = GrantRecord(
        id=grant.id or "gr_" + secrets.token_hex(8),
        subject=grant.subject,
        scope=tuple(grant.scope),
        group_ids=tuple(grant.groups),
        channels=tuple(grant.channels),
        min_confidence=grant.min_confidence,
        expires_at=int(grant.expires_at.timestamp() * 1000) if grant.expires_at else None,
        granted_by=grant.by,
        granted_at=now_ms(),
        revoked_at=None,
        revoked_by=None,
    )

    def job(tx: Tx) -> bool:
        if grant.id is not None and stored.get_grant_tx(tx, grant.id) is not None:
            return False
        stored.insert_grant(tx, new)
        return True

    if not await writer.run(job):
        raise BadRequestError(
            f"A consent grant with id '{grant.id}' already exists; grants are never replaced, revoke it instead."
        )
    return grant_view(new)


async def revoke_consent(writer: Writer, grant_id: str, by: str) -> dict[str, Any]:
    """Record who revoked a grant and when (once); 404 when no such grant."""
    by = checked_by(by)
    revoked = await writer.run(lambda tx: stored.revoke_grant(tx, grant_id, by, now_ms()))
    if revoked is None:
        raise NotFoundError(f"No consent grant '{grant_id}'.")
    return grant_view(revoked)


DEMO_AGENT = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]}
DEMO_GRANT = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "dev-seed"}


async def seed_demo_directory(writer: Writer, engine: AsyncEngine) -> bool:
    """In dev mode, an empty directory gets the demo agent and grant. True when seeded."""
    if await stored.directory_ever_used(engine):
        return False
    await add_agent(writer, DEMO_AGENT)
    if not await stored.list_grants(engine, str(DEMO_GRANT["subject"])):
        await grant_consent(writer, DEMO_GRANT)
    return True
