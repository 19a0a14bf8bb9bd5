"""People's instructions about a loop (CONTRACT section 10): invite now, and an agent's
"ask someone else".

Every arrow into `invited` after a loop's first decision is a person's instruction
(`user_directed`, DESIGN.md "State of a loop"): the relay's autonomy gates (kill switch,
shadow mode, the care window, the hourly limit) do not stop it, while consent and the
directory do (rules 1 and 2). The plan is the router's (`plan_invite_now`: consent, then
each agent's channel as routing picks it); the invitations are stored through the one path
intake uses (`inbox.invitations.store_planned`: reply codes, outbox rows), and the send-time
checks still run before each goes out. The admin API and the CLI call this one service; an
agent's "ask someone else" (Slack's modal, the link page) takes the same path, with the asking
agent as `invited_by` ("agent:ana") and the asking agent judged as for an answer
(`relay.loop.admits`: holds the invitation, active, the loop open).

Choices: an agent who already holds an invitation on the loop (not skipped) is not invited
again; the answer names them under `already_invited`, and nothing else changes for them. One
agent that cannot be invited refuses the whole instruction (400, naming each and why), so a
request either does all it asks or nothing. An agent skipped on the loop before (throttled,
away, quiet hours) is invited anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox import directory, invitations, lifecycle, outbox, signals
from inbox.audit import insert_audit
from inbox.invitations import OPEN_STATUSES, Planned
from inbox.signals import StoredSignal
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.errors import AlreadyDoneError, BadRequestError, ConsentRequiredError, NotFoundError
from relay.forms import InviteIn, validated
from relay.loop import Outcome, admits
from relay.model import Clock, RoutingSettings, Signal, millis
from relay.router import InvitePlan, coalescing_key, plan_invite_now

__all__ = ["REFUSALS", "Asked", "Asking", "Instructions"]

#: Slack's static_select holds 100 options; a page list is kept as short
MAX_ASKABLE = 100


@dataclass(frozen=True)
class Asking:
    """Whether an agent may ask someone else on a loop (`RECORDED`), and whom: (id, display)."""

    outcome: Outcome
    names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Asked:
    """What an "ask someone else" did: RECORDED (invited on `channel`), ALREADY (they hold one),
    NOT_OFFERED (consent or the directory said no: `refused` says why), or the asker's refusal."""

    outcome: Outcome
    target: str
    display: str = ""
    channel: str | None = None
    refused: str | None = None
    event_id: str | None = None


#: why an agent cannot be invited now, in words an operator can act on
REFUSALS = {
    "not_in_directory": "is not in the directory",
    "inactive": "is not active",
    "outside_grant": "is outside the groups this signal's consent covers",
    "away": "is away (they say BACK, or an operator runs `care-relay agent back`)",
    "quiet_hours": "is in quiet hours on every channel they could be reached on",
    "unverified": "has not confirmed an address this signal may use",
    "no_channel": "has no channel this relay and the consent grant can reach",
}


def _one(found: list[StoredSignal]) -> StoredSignal:
    if not found:
        raise NotFoundError("No event with this id was received.")
    if len(found) > 1:
        raise BadRequestError("Two sources used this id; add ?source=m3 or ?source=aisha.")
    return found[0]


class Instructions:
    """A person's instructions about a loop, in one writer transaction each."""

    def __init__(
        self,
        writer: Writer,
        routing: RoutingSettings,
        *,
        read_signal: Callable[[str, bytes], Signal],
        clock: Clock,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._writer = writer
        self._routing = routing
        self._read_signal = read_signal
        self._clock = clock
        self._on_queued = on_queued

    def _plan(
        self, tx: Tx, stored: StoredSignal, agent_ids: Sequence[str], at: int
    ) -> tuple[StoredSignal, InvitePlan, dict[str, tuple[int, str]]]:
        """The loop (read again under its subject's lock), the plan for these agents, and who holds what."""
        body = signals.raw_body(tx, stored.id)
        if body is None:
            raise BadRequestError("Retention purged what this signal said; it is too old to invite anyone for.")
        signal = self._read_signal(stored.source, body)
        # the loop may become open: intake's look-up of the open loop about this subject waits for it
        signals.lock_subjects(tx, [coalescing_key(signal)])
        stored = signals.signal_by_id(tx, stored.id) or stored
        if stored.status == "done":
            raise AlreadyDoneError("This loop was closed by a person; nobody is invited to a closed loop.")
        if stored.status == "joined":  # one loop per moment: a joined signal never becomes a second open loop
            raise BadRequestError(
                "This signal joined the loop already open about the same person; invite people on that loop"
                " (its id is joined_to in this signal's status document)."
            )
        grants = [g.as_grant() for g in directory.live_grants(tx, [signal.subject])[signal.subject]]
        found = directory.agents_by_id(tx, agent_ids)
        agents = {
            agent_id: None if (row := found.get(agent_id)) is None or row.removed_at is not None else row.as_agent()
            for agent_id in agent_ids
        }
        plan = plan_invite_now(
            signal, grants, agents, now=datetime.fromtimestamp(at / 1000, UTC), settings=self._routing
        )
        return stored, plan, invitations.held_on(tx, stored.id)

    @staticmethod
    def _store(
        tx: Tx, stored: StoredSignal, wanted: Sequence[str], plan: InvitePlan,
        held: Mapping[str, tuple[int, str]], by: str, at: int,
    ) -> str:  # fmt: skip
        """The invitations stored through intake's one path, with their outbox rows; the loop's status after."""
        planned = [Planned(stored.id, a, plan.channels[a], by, held[a][0] if a in held else None) for a in wanted]
        outbox.enqueue_many(tx, invitations.store_planned(tx, planned, at), at=at)
        if wanted and stored.status not in OPEN_STATUSES:
            tx.execute("UPDATE signal SET status = 'invited', updated_at = ? WHERE id = ?", (at, stored.id))
            return "invited"
        return stored.status

    async def invite_now(self, event_id: str, data: Any, *, source: str | None = None) -> dict[str, Any]:
        """Invite the named agents for a loop not done, as `by`'s instruction.

        404: no such event; 409 `already_done`: the loop is closed; 409 `consent_required`: no live
        grant (and, for M3, no explicit payload consent) covers the signal; 400: an agent not in
        the directory, outside the granted groups, or with no usable channel (each named, with why).
        The answer: `{"id", "status", "invited": [{"agent", "channel"}], "already_invited": [ids], "by"}`.
        """
        form: InviteIn = validated(InviteIn, data)
        by = f"admin:{form.by}"
        instruction = f"{form.by} invited {', '.join(form.agents)}"

        def job(tx: Tx) -> dict[str, Any]:
            at = millis(self._clock)
            stored, plan, held = self._plan(tx, _one(signals.find_signals(tx, event_id, source)), form.agents, at)
            if not plan.consent:
                raise ConsentRequiredError()
            already = [a for a in form.agents if a in held and held[a][1] != "skipped"]
            refused = {a: why for a, why in plan.refused.items() if a not in already}
            if refused:
                raise BadRequestError(
                    " ".join(f"'{a}' {REFUSALS.get(why, why)}." for a, why in refused.items()) + " Nobody was invited."
                )
            wanted = [a for a in form.agents if a not in already]
            status = self._store(tx, stored, wanted, plan, held, by, at)
            insert_audit(
                tx,
                kind="invite_now",
                at=at,
                source=stored.source,
                event_id=stored.event_id,
                action_origin="user_directed",
                policy_gate_result="allowed",
                reason="a person invited agents now",
                detail={
                    "by": by,
                    "user_instruction": instruction,
                    "invited": [[a, plan.channels[a]] for a in wanted],
                    "already_invited": already,
                },
            )
            return {
                "id": stored.event_id,
                "source": stored.source,
                "status": status,
                "invited": [{"agent": a, "channel": plan.channels[a]} for a in wanted],
                "already_invited": already,
                "by": by,
            }

        try:
            result = await self._writer.run(job)
        except (ConsentRequiredError, BadRequestError, AlreadyDoneError, NotFoundError) as exc:
            _line(event_id[:200], by, instruction, refused=exc.code)
            raise
        _line(result["id"], by, instruction, invited=[i["agent"] for i in result["invited"]])
        if result["invited"]:
            self._on_queued()
        return result

    async def askable(self, *, signal_id: int, agent_id: str, invitation_id: int) -> Asking:
        """Whom this agent may ask on this loop: directory agents of its granted groups with no
        invitation yet whom consent, verification, away and quiet hours let through now."""

        def job(tx: Tx) -> Asking:
            facts = lifecycle.facts(tx, signal_id=signal_id, agent_id=agent_id, invitation_id=invitation_id)
            verdict = admits(agent_id, invitation_id, facts, "ask someone else")
            stored = signals.signal_by_id(tx, signal_id)
            if not verdict.allowed or stored is None:
                return Asking(verdict.outcome)
            others = [a for a in directory.list_agents(tx) if a.removed_at is None and a.active and a.id != agent_id]
            held = invitations.held_on(tx, signal_id)
            free = [a for a in others if a.id not in held or held[a.id][1] == "skipped"]
            try:
                _stored, plan, _held = self._plan(tx, stored, [a.id for a in free], millis(self._clock))
            except (AlreadyDoneError, BadRequestError):
                return Asking(Outcome.ALREADY_DONE if stored.status == "done" else Outcome.GONE)
            names = tuple((a.id, a.display) for a in free if a.id in plan.channels)
            return Asking(Outcome.RECORDED, names[:MAX_ASKABLE])

        return await self._writer.run(job)

    async def ask(self, *, signal_id: int, agent_id: str, invitation_id: int, target: str, via: str) -> Asked:
        """The agent's instruction "ask someone else" (`user_directed`): one more invitation, for
        `target`, stored through invite now's path with `invited_by` "agent:<id>". The hourly
        limit does not apply; consent, the directory, verification, away and quiet hours do."""
        by = f"agent:{agent_id}"
        instruction = f"{agent_id} asked {target}"

        def job(tx: Tx) -> Asked:
            at = millis(self._clock)
            facts = lifecycle.facts(tx, signal_id=signal_id, agent_id=agent_id, invitation_id=invitation_id)
            verdict = admits(agent_id, invitation_id, facts, "ask someone else")
            stored = signals.signal_by_id(tx, signal_id)
            if facts is None or stored is None or not verdict.allowed:
                if facts is not None and verdict.outcome is Outcome.NOT_INVITED:
                    lifecycle.store_refusal(tx, facts, agent_id=agent_id, via=via, at=at, reason=verdict.reason)
                return Asked(verdict.outcome, target)
            try:
                stored, plan, held = self._plan(tx, stored, [target], at)
            except AlreadyDoneError:
                return Asked(Outcome.ALREADY_DONE, target)
            except BadRequestError:
                return Asked(Outcome.GONE, target)
            display = directory.agents_by_id(tx, [target]).get(target)
            shown = display.display if display is not None else target
            if target in held and held[target][1] != "skipped":
                return Asked(Outcome.ALREADY, target, shown)
            if target == agent_id or not plan.consent or target in plan.refused:
                why = "consent" if not plan.consent else plan.refused.get(target, "self")
                return Asked(Outcome.NOT_OFFERED, target, shown, refused=why)
            self._store(tx, stored, [target], plan, held, by, at)
            insert_audit(
                tx,
                kind="ask_someone_else",
                at=at,
                source=stored.source,
                event_id=stored.event_id,
                agent_id=agent_id,
                action_origin="user_directed",
                policy_gate_result="allowed",
                reason="an invited agent asked someone else",
                detail={
                    "by": by,
                    "via": via,
                    "user_instruction": instruction,
                    "invited": [[target, plan.channels[target]]],
                },
            )
            return Asked(Outcome.RECORDED, target, shown, channel=plan.channels[target], event_id=stored.event_id)

        asked = await self._writer.run(job)
        recorded = asked.outcome is Outcome.RECORDED
        audit.emit(
            {
                "kind": "ask_someone_else",
                "event_id": asked.event_id,
                "by": by,
                "via": via,
                "user_instruction": instruction,
                "action_origin": "user_directed",
                "policy_gate_result": "allowed" if recorded else "blocked",
                "outcome": str(asked.outcome),
                **({"refused": asked.refused} if asked.refused else {}),
            }
        )
        if recorded:
            self._on_queued()
        return asked


def _line(event_id: str, by: str, instruction: str, **outcome: Any) -> None:
    """The `[CARE_AUDIT]` line of an invite-now (ids and names of things only)."""
    audit.emit(
        {
            "kind": "invite_now",
            "event_id": event_id,
            "by": by,
            "user_instruction": instruction,
            "action_origin": "user_directed",
            "policy_gate_result": "blocked" if "refused" in outcome else "allowed",
            **outcome,
        }
    )
