"""People's instructions about a loop (CONTRACT section 10): invite now.

Every arrow into `invited` after a loop's first decision is a person's instruction
(`user_directed`, DESIGN.md "State of a loop"): the relay's autonomy gates (kill switch,
shadow mode, the care window, the hourly limit) do not stop it, while consent and the
directory do (rules 1 and 2). The plan is the router's (`plan_invite_now`: consent, then
each agent's channel as routing picks it); the invitations are stored through the one path
intake uses (`inbox.invitations.store_planned`: reply codes, outbox rows), and the send-time
checks still run before each goes out. The admin API and the CLI call this one service.

Choices: an agent who already holds an invitation on the loop (not skipped) is not invited
again; the answer names them under `already_invited`, and nothing else changes for them. One
agent that cannot be invited refuses the whole instruction (400, naming each and why), so a
request either does all it asks or nothing. An agent skipped on the loop before (throttled,
away, quiet hours) is invited anew.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from inbox import directory, invitations, outbox, signals
from inbox.audit import insert_audit
from inbox.invitations import OPEN_STATUSES, Planned
from inbox.signals import StoredSignal
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.errors import AlreadyDoneError, BadRequestError, ConsentRequiredError, NotFoundError
from relay.forms import InviteIn, validated
from relay.model import Clock, RoutingSettings, Signal, millis
from relay.router import coalescing_key, plan_invite_now

__all__ = ["REFUSALS", "Instructions"]

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
            stored = _one(signals.find_signals(tx, event_id, source))
            body = signals.raw_body(tx, stored.id)
            if body is None:
                raise BadRequestError("Retention purged what this signal said; it is too old to invite anyone for.")
            signal = self._read_signal(stored.source, body)
            # the loop may become open: intake's look-up of the open loop about this subject waits for it
            signals.lock_subjects(tx, [coalescing_key(signal)])
            stored = signals.signal_by_id(tx, stored.id) or stored
            if stored.status == "done":
                raise AlreadyDoneError("This loop was closed by a person; nobody is invited to a closed loop.")
            grants = [g.as_grant() for g in directory.live_grants(tx, [signal.subject])[signal.subject]]
            found = directory.agents_by_id(tx, form.agents)
            agents = {
                agent_id: None if (row := found.get(agent_id)) is None or row.removed_at is not None else row.as_agent()
                for agent_id in form.agents
            }
            plan = plan_invite_now(
                signal, grants, agents, now=datetime.fromtimestamp(at / 1000, UTC), settings=self._routing
            )
            if not plan.consent:
                raise ConsentRequiredError()
            held = invitations.held_on(tx, stored.id)
            already = [a for a in form.agents if a in held and held[a][1] != "skipped"]
            refused = {a: why for a, why in plan.refused.items() if a not in already}
            if refused:
                raise BadRequestError(
                    " ".join(f"'{a}' {REFUSALS.get(why, why)}." for a, why in refused.items()) + " Nobody was invited."
                )
            wanted = [a for a in form.agents if a not in already]
            planned = [Planned(stored.id, a, plan.channels[a], by, held[a][0] if a in held else None) for a in wanted]
            work = invitations.store_planned(tx, planned, at)
            outbox.enqueue_many(tx, work, at=at)
            status = stored.status
            if wanted and status not in OPEN_STATUSES:
                tx.execute("UPDATE signal SET status = 'invited', updated_at = ? WHERE id = ?", (at, stored.id))
                status = "invited"
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
