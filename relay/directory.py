"""The agent directory and consent grants: changes and reads, for the admin API and the CLI.

Both front ends validate through the same forms (`relay.forms`) and change the database
through the writer, so a change is committed (and the directory version moved) before
either answers: the next signal sees it, with no restart. Times come from the app's clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from inbox import addresses
from inbox import audit as audit_rows
from inbox import directory as stored
from inbox.directory import AgentRecord, GrantRecord
from inbox.reader import Reader
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.errors import BadRequestError, InvalidPayloadError, NotFoundError
from relay.forms import AgentFields, AgentIn, GrantIn, agent_view, checked_by, grant_view, validated
from relay.model import Clock, millis
from relay.settings import Settings

#: the contract's field names that storage spells otherwise
_COLUMN = {"groups": "group_ids"}
DEMO_AGENT = {"id": "ana", "display": "Ana", "groups": ["care-circle"], "channels": ["console"]}
DEMO_GRANT = {"subject": "actor:raz", "scope": ["panic.ui", "status.set"], "groups": ["care-circle"], "by": "dev-seed"}


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


def confirming(settings: Settings) -> frozenset[str]:
    """The channels whose new addresses are sent a join code: every channel with addresses, when
    they must be confirmed (RELAY_VERIFY_ADDRESSES). The code is queued whatever this process can
    send on (the CLI may run without the provider's settings): the relay's outbox sends it, or
    shows it failed in /admin/outbox while that channel is not configured."""
    return frozenset(addresses.ADDRESS_OF) if settings.relay_verify_addresses else frozenset()


def _refuse_to_ask(agent: AgentRecord, channel: str, confirm_on: frozenset[str], *, named: bool) -> None:
    """Why a join code cannot be sent to this address, as a 400 (only for a channel named)."""
    if not named:
        return
    if not addresses.address(agent, channel):
        raise BadRequestError(f"Agent '{agent.id}' has no {channel} address to confirm; add one first.")
    if channel in agent.verified:
        raise BadRequestError(
            f"Agent '{agent.id}' already confirmed their {channel} address; a changed address is asked again."
        )
    if channel not in confirm_on:
        raise BadRequestError("RELAY_VERIFY_ADDRESSES is off: addresses need no confirming, and no join code is sent.")


def _word(away: bool) -> str:
    return "away" if away else "back"


def _audit_away(tx: Tx, agent_id: str, away: bool, instruction: str, via: str, at: int) -> None:
    """A person's instruction that an agent is away or back: an audit row (ids only, no care data)."""
    audit_rows.insert_audit(
        tx,
        kind=f"agent_{_word(away)}",
        at=at,
        agent_id=agent_id,
        action_origin="user_directed",
        policy_gate_result="allowed",
        reason="routing passes the agent over until they are back" if away else "the agent takes invitations again",
        detail={"via": via, "user_instruction": instruction},
    )


def _away_line(agent_id: str, away: bool, via: str) -> None:
    audit.emit({"kind": f"agent_{_word(away)}", "agent": agent_id, "via": via, "action_origin": "user_directed"})


class Directory:
    """The directory's use cases over one database.

    `region` (RELAY_DEFAULT_REGION) reads phone numbers written without a country code.
    `confirm_on` names the channels whose new or changed addresses are sent a join code in
    the change's own transaction (`confirming`); `on_queued` wakes the outbox to send it.
    """

    def __init__(
        self,
        writer: Writer,
        reader: Reader,
        *,
        clock: Clock,
        region: str | None = None,
        confirm_on: frozenset[str] = frozenset(),
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock
        self._region = region
        self._confirm_on = confirm_on
        self._on_queued = on_queued

    def _ask(self, tx: Tx, agent: AgentRecord, channels: list[str], at: int) -> list[str]:
        """Send a join code to each of these addresses that a configured channel can reach."""
        asked = [channel for channel in channels if channel in self._confirm_on]
        for channel in asked:
            addresses.ask(tx, agent, channel, at)
        return asked

    def _queued(self, asked: list[str]) -> None:
        if asked and self._on_queued is not None:
            self._on_queued()

    async def agents(self) -> list[dict[str, Any]]:
        """Every agent in the directory (not the removed), in the contract's names."""
        return [agent_view(row) for row in await self._reader.run(stored.list_agents)]

    async def agent(self, agent_id: str) -> dict[str, Any]:
        """One agent in the contract's names; 404 for an id that is not (or no longer) in the directory."""
        row = await self._reader.run(stored.agent_by, id=agent_id)
        if row is not None and row.removed_at is None:
            return agent_view(row)
        raise NotFoundError(f"No agent '{agent_id}' in the directory.")

    async def grants(self, subject: str | None = None) -> list[dict[str, Any]]:
        """Every consent grant (of one subject, when given), revoked ones included."""
        return [grant_view(row) for row in await self._reader.run(stored.list_grants, subject)]

    async def add_agent(self, data: Any) -> dict[str, Any]:
        """Add an agent; 400 when its id or one of its addresses is taken (a removed agent's id too)."""
        fields = validated(AgentIn, data, region=self._region)
        new = _changed(AgentRecord(id=fields.id, display=fields.display), fields.model_dump(exclude_none=True))

        asked: list[str] = []

        def job(tx: Tx) -> AgentRecord | None:
            _refuse_shared_address(tx, new)
            at = millis(self._clock)
            if not stored.insert_agent(tx, new, at):
                return stored.get_agent_tx(tx, new.id)
            asked[:] = self._ask(tx, new, addresses.changed_channels(None, new), at)
            return None

        taken = await self._writer.run(job)
        self._queued(asked)
        if taken is not None and taken.removed_at is not None:
            raise BadRequestError(
                f"The id '{new.id}' belonged to an agent who was removed; an id is never reused, so that nobody"
                " inherits another person's invitations. Choose another id."
            )
        if taken is not None:
            raise BadRequestError(
                f"An agent with id '{new.id}' already exists; change it with PATCH or remove it first."
            )
        return agent_view(new)

    async def patch_agent(self, agent_id: str, data: Any, *, by: str = "admin") -> dict[str, Any]:
        """Change some fields of an agent in the directory; 404 when it is not (or no longer) there.

        A change of `away` is `by`'s instruction, audited as `set_away` does it."""
        changes = validated(AgentFields, data, region=self._region).model_dump(exclude_unset=True)
        # null clears an address, quiet hours or a time zone and empties a list; a name and the
        # active switch always hold a value.
        refused = [
            {"loc": [key], "msg": f"{key} cannot be null; leave it out to keep it"}
            for key in ("display", "active", "away")
            if key in changes and changes[key] is None
        ]
        if refused:
            raise InvalidPayloadError(refused)
        changes.update({key: [] for key in ("groups", "channels") if key in changes and changes[key] is None})

        asked: list[str] = []

        def job(tx: Tx) -> AgentRecord | None:
            current = stored.get_agent_tx(tx, agent_id, for_update=True)
            if current is None or current.removed_at is not None:
                return None
            changed = _changed(current, changes)
            _refuse_shared_address(tx, changed)
            # a new address is nobody's until its owner says so; a cleared one asks for nothing
            moved = addresses.changed_channels(current, changed)
            gone = [c for c in addresses.ADDRESS_OF if addresses.address(changed, c) is None]
            changed = addresses.forget(changed, [*moved, *gone])
            at = millis(self._clock)
            stored.replace_agent(tx, changed, at)
            if changed.away != current.away:
                _audit_away(tx, agent_id, changed.away, f"{by} set {agent_id} {_word(changed.away)}", "admin", at)
            for channel in gone:
                tx.execute("DELETE FROM join_code WHERE agent_id = ? AND channel = ?", (agent_id, channel))
            asked[:] = self._ask(tx, changed, moved, at)
            return changed

        changed = await self._writer.run(job)
        if changed is None:
            raise NotFoundError(f"No agent '{agent_id}' in the directory.")
        self._queued(asked)
        if "away" in changes:
            _away_line(agent_id, changed.away, "admin")
        return agent_view(changed)

    async def set_away(self, agent_id: str, away: bool, *, instruction: str, via: str) -> dict[str, Any]:
        """A person sets an agent away or back (CONTRACT section 10): the agent themself (SMS,
        WhatsApp, Slack) or an operator (CLI). `instruction` words who asked ("ana said AWAY by
        sms"); it is audited as `user_directed`. Nothing else ever changes it, and nothing expires it.
        404 for an agent not in the directory."""

        def job(tx: Tx) -> AgentRecord | None:
            current = stored.get_agent_tx(tx, agent_id)
            if current is None or current.removed_at is not None:
                return None
            at = millis(self._clock)
            if current.away != away:
                stored.replace_agent(tx, replace(current, away=away), at)
            _audit_away(tx, agent_id, away, instruction, via, at)
            return replace(current, away=away)

        changed = await self._writer.run(job)
        if changed is None:
            raise NotFoundError(f"No agent '{agent_id}' in the directory.")
        _away_line(agent_id, away, via)
        return agent_view(changed)

    async def verify(self, agent_id: str, channel: str | None = None) -> dict[str, Any]:
        """Send a new join code to the agent's unconfirmed addresses (or to the one on `channel`).

        404 for an agent not in the directory; 400 for a channel the agent has no address on,
        one already confirmed, or one this relay cannot send on.
        """
        if channel is not None and channel not in addresses.ADDRESS_OF:
            raise BadRequestError(f"channel must be one of {', '.join(addresses.ADDRESS_OF)}, not '{channel}'.")

        def job(tx: Tx) -> tuple[AgentRecord | None, list[str]]:
            agent = stored.get_agent_tx(tx, agent_id)
            if agent is None or agent.removed_at is not None:
                return None, []
            wanted = [channel] if channel else [c for c in addresses.ADDRESS_OF if addresses.address(agent, c)]
            for name in wanted:
                _refuse_to_ask(agent, name, self._confirm_on, named=channel is not None)
            unconfirmed = [c for c in wanted if c not in agent.verified]
            return agent, self._ask(tx, agent, unconfirmed, millis(self._clock))

        agent, asked = await self._writer.run(job)
        if agent is None:
            raise NotFoundError(f"No agent '{agent_id}' in the directory.")
        self._queued(asked)
        return {"id": agent_id, "sent": asked, "verified": agent_view(agent)["verified"]}

    async def remove_agent(self, agent_id: str) -> None:
        """Remove an agent from the directory; its id stays taken (a tombstone), never reused."""
        if not await self._writer.run(lambda tx: stored.remove_agent(tx, agent_id, millis(self._clock))):
            raise NotFoundError(f"No agent '{agent_id}' in the directory.")

    async def grant_consent(self, data: Any) -> dict[str, Any]:
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
            granted_at=millis(self._clock),
            revoked_at=None,
            revoked_by=None,
        )

        def job(tx: Tx) -> bool:
            if grant.id is not None and stored.get_grant_tx(tx, grant.id) is not None:
                return False
            stored.insert_grant(tx, new)
            return True

        if not await self._writer.run(job):
            raise BadRequestError(
                f"A consent grant with id '{grant.id}' already exists; grants are never replaced, revoke it instead."
            )
        return grant_view(new)

    async def revoke_consent(self, grant_id: str, by: str) -> dict[str, Any]:
        """Record who revoked a grant and when (once); 404 when no such grant."""
        by = checked_by(by)
        revoked = await self._writer.run(lambda tx: stored.revoke_grant(tx, grant_id, by, millis(self._clock)))
        if revoked is None:
            raise NotFoundError(f"No consent grant '{grant_id}'.")
        return grant_view(revoked)

    async def seed_demo(self) -> bool:
        """In dev mode, an empty directory gets the demo agent and grant. True when seeded."""
        if await self._reader.run(stored.directory_ever_used):
            return False
        await self.add_agent(DEMO_AGENT)
        if not await self._reader.run(stored.list_grants, str(DEMO_GRANT["subject"])):
            await self.grant_consent(DEMO_GRANT)
        return True
