"""The actor's own consent (CONTRACT section 10): the page a sender's app shows its user.

A `pending_consent` M3 signal whose `audience.groups` name a directory group carries a
signed `consent_url`. Its yes creates a grant `{subject: "actor:<id>", scope: [type],
groups: [those groups], by: "actor:<id>"}` through the directory service, and decides that
signal again at once as the actor's own instruction (`relay.router.decide_on_actor_yes`:
a covering grant and the care window decide; the autonomy gates do not). The invitations
are stored through intake's one path (`inbox.invitations.store_planned`), with the actor as
`invited_by`. The page asks (and its yes grants) until a live grant the actor made covers
this signal: its type, and the groups its audience names (`relay.coverage.actor_consent_covers`,
the router's own coverage rule); a yes on a panic.ui page does not answer for a later
status.set. When the yes would invite while a loop about the same actor is open and
coalescing is on, the signal joins that loop (`joined`, as intake decides it). "Stop inviting
my circle" revokes every grant the actor made (by "actor:<id>"); an admin's grants are never
touched here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox import directory, invitations, outbox, signals
from inbox.audit import insert_audit
from inbox.invitations import Planned
from inbox.reader import Reader
from inbox.signals import StoredSignal
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit, compose
from relay.coverage import actor_consent_covers
from relay.directory import Directory
from relay.errors import LinkExpiredError, NotFoundError
from relay.model import Clock, RoutingSettings, Signal, millis
from relay.router import coalescing_key, consent_groups, decide_on_actor_yes, joined

__all__ = ["ActorConsent", "Asked"]


@dataclass(frozen=True)
class Asked:
    """What the consent page shows: whose signal, the groups, and whether the actor's own grants cover it."""

    actor: str
    display: str
    type: str
    status: str
    groups: tuple[str, ...]
    #: the live grants this actor made (ids), whatever they cover: what "Stop" revokes
    own_grants: tuple[str, ...]
    #: a live grant this actor made covers this signal's type and every group asked about
    covered: bool = False


def _by(actor: str) -> str:
    return f"actor:{actor}"


class ActorConsent:
    """The consent page's reads and its two instructions."""

    def __init__(
        self,
        writer: Writer,
        reader: Reader,
        directory_service: Directory,
        routing: RoutingSettings,
        *,
        read_signal: Callable[[str, bytes], Signal],
        clock: Clock,
        on_queued: Callable[[], None] = lambda: None,
        coalesce: bool = False,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._directory = directory_service
        self._routing = routing
        self._read_signal = read_signal
        self._clock = clock
        self._on_queued = on_queued
        #: one loop per moment (RELAY_COALESCE), as intake decides it
        self._coalesce = coalesce

    def _read(
        self, tx: Tx, source: str, event_id: str
    ) -> tuple[StoredSignal, Signal, tuple[str, ...], tuple[str, ...], bool]:
        found = signals.find_signals(tx, event_id, source)
        if len(found) != 1:
            raise NotFoundError("No signal with this consent link was received.")
        body = signals.raw_body(tx, found[0].id)
        if body is None:
            raise LinkExpiredError("This signal is older than the relay keeps messages.")
        signal = self._read_signal(source, body)
        agents, _grants = directory.load_directory(tx)
        groups = consent_groups(signal, {g for a in agents for g in a.group_ids})
        mine = [
            g.as_grant()
            for g in directory.list_grants(tx, signal.subject)
            if g.revoked_at is None and g.granted_by == signal.subject
        ]
        now = datetime.fromtimestamp(millis(self._clock) / 1000, UTC)
        covered = actor_consent_covers(signal, mine, groups, now=now)
        return found[0], signal, groups, tuple(g.id for g in mine), covered

    async def groups_of(self, source: str, event_id: str) -> tuple[str, ...]:
        """The directory groups a pending signal's consent page would ask about (empty: no page)."""

        def job(tx: Tx) -> tuple[str, ...]:
            try:
                return self._read(tx, source, event_id)[2]
            except (NotFoundError, LinkExpiredError):
                return ()

        return await self._reader.run(job)

    async def asked(self, source: str, event_id: str) -> Asked:
        """What the page shows; changes nothing."""

        def job(tx: Tx) -> Asked:
            stored, signal, groups, own, covered = self._read(tx, source, event_id)
            actor = signal.subject.removeprefix("actor:")
            return Asked(actor, signal.actor_display or actor, signal.type, stored.status, groups, own, covered)

        return await self._reader.run(job)

    async def yes(self, source: str, event_id: str) -> Asked:
        """The actor's yes: their grant for this type and these groups (unless one of theirs covers
        this signal already; their earlier grants stay), then the signal decided again."""
        page = await self.asked(source, event_id)
        if not page.groups:
            raise NotFoundError("This signal's circle is not one the relay knows.")
        by = _by(page.actor)
        if not page.covered:
            await self._directory.grant_consent(
                {"subject": by, "scope": [page.type], "groups": list(page.groups), "by": by}
            )
        instruction = f"{page.actor} said yes to inviting their circle"

        def job(tx: Tx) -> dict[str, Any]:
            at = millis(self._clock)
            stored, signal, *_ = self._read(tx, source, event_id)
            signals.lock_subjects(tx, [coalescing_key(signal)])
            stored = signals.signal_by_id(tx, stored.id) or stored
            if stored.status != "pending_consent":  # decided again before (a second press): nothing more
                return {"status": stored.status, "invited": [], "joined_to": None}
            agents, grants = directory.load_directory(tx)
            decision = decide_on_actor_yes(
                signal,
                [g.as_grant() for g in grants],
                [a.as_agent() for a in agents],
                now=datetime.fromtimestamp(at / 1000, UTC),
                settings=self._routing,
            )
            loop = self._open_loop(tx, signal, stored.id) if decision.status == "invited" else None
            updates: list[tuple[str, int | None, dict[str, Any]]] = []
            if loop is not None:  # one loop per moment: the open loop is told, nobody new is invited
                decision = joined(decision)
                text = compose.joined_note(signal)
                updates = [
                    ("update", invitation_id, {"invitation_id": invitation_id, "text": text})
                    for invitation_id in invitations.to_update_on_join(tx, loop[0])
                ]
            planned = [Planned(stored.id, p.agent_id, p.channel, by) for p in decision.invitations]
            outbox.enqueue_many(tx, invitations.store_planned(tx, planned, at) + updates, at=at)
            tx.execute(
                "UPDATE signal SET status = ?, reason = ?, action_origin = 'user_directed', policy_gate_result = ?,"
                " gate_failures = ?, joined_to = ?, updated_at = ? WHERE id = ?",
                (
                    decision.status,
                    decision.reason,
                    decision.policy_gate_result,
                    _json_list(decision.gate_failures),
                    None if loop is None else loop[0],
                    at,
                    stored.id,
                ),
            )
            insert_audit(
                tx,
                kind="actor_consent",
                at=at,
                source=stored.source,
                event_id=stored.event_id,
                action_origin="user_directed",
                policy_gate_result=decision.policy_gate_result,
                reason=decision.reason,
                gate_failures=list(decision.gate_failures),
                detail={
                    "by": by,
                    "user_instruction": instruction,
                    "invited": [[p.agent_id, p.channel] for p in decision.invitations],
                    **({} if loop is None else {"joined_to": loop[1]}),
                },
            )
            return {
                "status": decision.status,
                "invited": [p.agent_id for p in decision.invitations],
                "joined_to": None if loop is None else loop[1],
                "queued": bool(decision.invitations or updates),
            }

        result = await self._writer.run(job)
        joined_to = {"joined_to": result["joined_to"]} if result["joined_to"] else {}
        _line(event_id, by, instruction, status=result["status"], **joined_to)
        if result.get("queued"):
            self._on_queued()
        return await self.asked(source, event_id)

    def _open_loop(self, tx: Tx, signal: Signal, signal_id: int) -> tuple[int, str] | None:
        """The open loop about this signal's subject (id, event id) it joins, when coalescing is
        on: intake's one look-up (`inbox.signals.open_loop` on the subject key)."""
        if not self._coalesce:
            return None
        found = signals.open_loop(tx, coalescing_key(signal))
        return None if found is None or found[0] == signal_id else found

    async def stop(self, source: str, event_id: str) -> Asked:
        """ "Stop inviting my circle": the grants this actor made are revoked; an admin's stay."""
        page = await self.asked(source, event_id)
        by = _by(page.actor)
        for grant_id in page.own_grants:
            await self._directory.revoke_consent(grant_id, by)
        _line(event_id, by, f"{page.actor} stopped inviting their circle", revoked=list(page.own_grants))
        return await self.asked(source, event_id)


def _json_list(items: tuple[str, ...]) -> str:
    return json.dumps(list(items))


def _line(event_id: str, by: str, instruction: str, **outcome: Any) -> None:
    """The `[CARE_AUDIT]` line of the actor's own consent (ids only)."""
    audit.emit(
        {
            "kind": "actor_consent",
            "event_id": event_id,
            "by": by,
            "user_instruction": instruction,
            "action_origin": "user_directed",
            **outcome,
        }
    )
