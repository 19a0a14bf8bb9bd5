"""Answers from any channel (Slack button, SMS reply, action link) become care.ack / care.done,
or an agent's "not now" (a pass: kept and thanked, nothing else moves, no callback).

`record(Ack | Done | Pass)` runs the one answer path, in one writer transaction: storage reads the
facts (`inbox.lifecycle.facts`), `relay.loop.judge` decides, storage keeps the verdict with
conditional statements. An answer is `user_directed`: the relay's autonomy gates (kill
switch, shadow mode, consent, windows) never block it. What follows a recorded answer is
queued in the same transaction: a message update for every delivered invitation of the
loop, and a signed callback to the sender when its URL is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from inbox import lifecycle, outbox
from inbox.tx import Tx
from inbox.writer import Writer
from receivers import SENDERS
from relay import audit, compose
from relay.invitations import Invitations
from relay.loop import Ack, Answer, Done, Outcome, Pass, Verdict, admits, judge, kind_of
from relay.metrics import Metrics
from relay.model import Clock, LoopFacts, millis
from relay.settings import Settings

__all__ = ["Ack", "AnswerResult", "Answers", "Done", "Outcome", "Pass"]


@dataclass(frozen=True)
class AnswerResult:
    """What happened to an answer, for the page or message the agent sees next."""

    outcome: Outcome
    event_id: str | None = None
    loop_status: str | None = None

    @property
    def recorded(self) -> bool:
        return self.outcome is Outcome.RECORDED


def _storable(text: str) -> str:
    """What a person typed, minus NUL characters: PostgreSQL text cannot hold them (SQLite would)."""
    return text.replace("\x00", "")


def _clean(answer: Answer) -> Answer:
    if isinstance(answer, Ack):
        return replace(answer, response=_storable(answer.response))
    if isinstance(answer, Pass):
        return answer
    return replace(answer, outcome=_storable(answer.outcome), note=_storable(answer.note))


class Answers:
    """The one answer path every channel calls."""

    def __init__(
        self,
        writer: Writer,
        invitations: Invitations,
        settings: Settings,
        *,
        on_queued: Callable[[], None],
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._writer = writer
        self._invitations = invitations
        self._settings = settings
        self._on_queued = on_queued

    def _callback_configured(self, source: str) -> bool:
        url, _secret = SENDERS[source].callback_target(self._settings)
        return bool(url)

    def _follow_up(
        self, tx: Tx, loop: LoopFacts, stored: lifecycle.Stored, answer: Ack | Done, agent_id: str, at: int
    ) -> None:
        if isinstance(answer, Ack):
            kind, fields = "care.ack", {"action": answer.response}
            note_text = compose.ack_note(loop.display, answer.response)
        else:
            kind, fields = "care.done", {"outcome": answer.outcome, "note": answer.note}
            note_text = compose.done_note(loop.display, answer.outcome)
        for invitation_id in stored.delivered:
            outbox.enqueue(
                tx,
                kind="update",
                ref_id=invitation_id,
                payload={"invitation_id": invitation_id, "text": note_text},
                at=at,
            )
        if self._callback_configured(loop.source):
            by = {"id": agent_id, "display": loop.display}
            body = SENDERS[loop.source].callback_body(kind, loop.event_id, by, at, **fields)
            outbox.enqueue(
                tx, kind="callback", ref_id=loop.signal_id, payload={"source": loop.source, "body": body}, at=at
            )

    async def record(self, answer: Answer) -> AnswerResult:
        """Judge and keep an ack (once per agent and loop) or a done (once per loop; it is also an ack)."""
        answer = _clean(answer)
        offered = await self._invitations.offered(answer.signal_id) if isinstance(answer, Ack) else ()

        def job(tx: Tx) -> tuple[Outcome, LoopFacts | None, str | None]:
            at = millis(self._clock)
            facts = lifecycle.facts(
                tx, signal_id=answer.signal_id, agent_id=answer.agent_id, invitation_id=answer.invitation_id
            )
            verdict = judge(answer, facts, offered)
            agent_id = answer.agent_id
            if facts is None or agent_id is None or not verdict.allowed:
                self._refused(tx, verdict, facts, answer.agent_id, answer.via, at)
                return verdict.outcome, facts, None
            if isinstance(answer, Pass):  # nothing follows a pass: no update, no callback (CONTRACT section 10)
                stored = lifecycle.store_pass(tx, facts, agent_id=agent_id, via=answer.via, at=at)
                return Outcome(stored.outcome), facts, stored.status
            if isinstance(answer, Ack):
                stored = lifecycle.store_ack(
                    tx, facts, agent_id=agent_id, action=answer.response, via=answer.via, at=at
                )
            else:
                stored = lifecycle.store_done(
                    tx, facts, agent_id=agent_id, outcome=answer.outcome, note=answer.note, via=answer.via, at=at
                )
            if stored.outcome == lifecycle.RECORDED:
                self._follow_up(tx, facts, stored, answer, agent_id, at)
            return Outcome(stored.outcome), facts, stored.status

        outcome, facts, status = await self._writer.run(job)
        return self._finish(outcome, facts, status, kind_of(answer), answer.agent_id, answer.via)

    async def admit(self, *, signal_id: int, agent_id: str | None, invitation_id: int, via: str, what: str) -> Outcome:
        """May this agent answer this invitation now (before a form is shown)? A refusal is audited."""

        def job(tx: Tx) -> Verdict:
            at = millis(self._clock)
            facts = lifecycle.facts(tx, signal_id=signal_id, agent_id=agent_id, invitation_id=invitation_id)
            verdict = admits(agent_id, invitation_id, facts, what)
            self._refused(tx, verdict, facts, agent_id, via, at)
            return verdict

        verdict = await self._writer.run(job)
        if verdict.outcome is Outcome.NOT_INVITED:
            _refusal_line(agent_id, via, verdict.reason)
            self._count_refusal(agent_id, via)
        return verdict.outcome

    @staticmethod
    def _refused(tx: Tx, verdict: Verdict, facts: LoopFacts | None, agent_id: str | None, via: str, at: int) -> None:
        """A stranger's answer leaves an audit row on the loop; other refusals only the audit line."""
        if facts is not None and verdict.outcome is Outcome.NOT_INVITED:
            lifecycle.store_refusal(tx, facts, agent_id=agent_id, via=via, at=at, reason=verdict.reason)

    async def refuse(self, *, signal_id: int | None, agent_id: str | None, via: str, reason: str) -> None:
        """An answer that names no loop it may be judged on: an audit row and line, nothing else."""
        await self._writer.run(
            lambda tx: lifecycle.refuse(
                tx, signal_id=signal_id, agent_id=agent_id, via=via, at=millis(self._clock), reason=reason
            )
        )
        _refusal_line(agent_id, via, reason)
        self._count_refusal(agent_id, via)

    def note_refusal(self, *, agent_id: str | None, via: str, reason: str) -> None:
        """An answer that concerned no loop it could be kept on: the audit line only (CONTRACT: no row)."""
        _refusal_line(agent_id, via, reason)
        self._count_refusal(agent_id, via)

    def _count_refusal(self, agent_id: str | None, via: str) -> None:
        self._metrics.answers.labels(via, "refused").inc()
        if agent_id is None:  # nobody in the directory behind this Slack user
            self._metrics.unknown_senders.labels(via).inc()

    def _finish(
        self, outcome: Outcome, loop: LoopFacts | None, status: str | None, kind: str, agent_id: str | None, via: str
    ) -> AnswerResult:
        recorded = outcome is Outcome.RECORDED
        instruction = {"user_instruction": f"{agent_id} said not now"} if kind == "pass" and recorded else {}
        audit.emit(
            {
                "kind": kind if recorded else "refusal",
                "outcome": str(outcome),
                "source": loop.source if loop else None,
                "event_id": loop.event_id if loop else None,
                "agent": agent_id,
                "via": via,
                "action_origin": "user_directed",
                "policy_gate_result": "allowed" if recorded else "blocked",
                **instruction,
            }
        )
        if recorded:
            self._metrics.answers.labels(via, kind).inc()
            if kind != "pass":
                self._on_queued()
        else:
            self._count_refusal(agent_id, via)
        return AnswerResult(outcome, loop.event_id if loop else None, status or (loop.status if loop else None))


def _refusal_line(agent_id: str | None, via: str, reason: str) -> None:
    """The `[CARE_AUDIT]` line of an answer refused before it could be judged on a loop."""
    audit.emit({"kind": "refusal", "agent": agent_id, "via": via, "reason": reason, "action_origin": "user_directed"})
