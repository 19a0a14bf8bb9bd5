"""Answers from any channel (Slack button, SMS reply, action link) become care.ack / care.done.

An answer is `user_directed`: the relay's autonomy gates (kill switch, shadow mode,
consent, windows) never block it. What follows a recorded answer is queued in the same
transaction: a message update for every delivered invitation of the loop, and a signed
callback to the sender when its URL is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import lifecycle, store
from inbox.writer import Tx, Writer, now_ms
from receivers import SENDERS
from relay import audit, compose
from relay.delivery import Invite
from relay.model import Agent, Grant, Signal
from relay.settings import Settings
from relay.tokens import Tokens


@dataclass(frozen=True)
class AnswerResult:
    """What happened to an answer, for the page or message the agent sees next."""

    outcome: str  # lifecycle.RECORDED, ALREADY, NOT_INVITED, ALREADY_DONE, NO_SUCH_LOOP
    event_id: str | None = None
    loop_status: str | None = None

    @property
    def recorded(self) -> bool:
        return self.outcome == lifecycle.RECORDED


def _storable(text: str) -> str:
    """What a person typed, minus NUL characters: PostgreSQL text cannot hold them (SQLite would)."""
    return text.replace("\x00", "")


class Answers:
    def __init__(
        self,
        writer: Writer,
        engine: AsyncEngine,
        settings: Settings,
        tokens: Tokens,
        *,
        on_queued: Callable[[], None],
        read_signal: Callable[[str, bytes], Signal],
    ) -> None:
        #: reads a stored body back into a Signal (the receivers' parser: one source of truth).
        self._read_signal = read_signal
        self._writer = writer
        self.engine = engine
        self._settings = settings
        self._tokens = tokens
        self._on_queued = on_queued

    def _callback_configured(self, source: str) -> bool:
        url, _secret = SENDERS[source].callback_target(self._settings)
        return bool(url)

    def _follow_up(
        self, tx: Tx, answer: lifecycle.Answer, agent_id: str, kind: str, note_text: str, at: int, **fields: str
    ) -> None:
        assert answer.loop is not None
        for invitation_id, _channel, _provider_id in answer.delivered:
            store.enqueue(
                tx,
                kind="update",
                ref_id=invitation_id,
                payload={"invitation_id": invitation_id, "text": note_text},
                at=at,
            )
        if self._callback_configured(answer.loop.source):
            row = store.get_agent_tx(tx, agent_id)
            by = {"id": agent_id, "display": row["display"] if row else agent_id}
            body = SENDERS[answer.loop.source].callback_body(kind, answer.loop.event_id, by, at, **fields)
            store.enqueue(
                tx,
                kind="callback",
                ref_id=answer.loop.signal_id,
                payload={"source": answer.loop.source, "body": body},
                at=at,
            )

    async def ack(self, *, signal_id: int, agent_id: str, action: str, via: str) -> AnswerResult:
        """Record an agent's ack; idempotent per agent and loop."""
        action = _storable(action)

        def job(tx: Tx) -> lifecycle.Answer:
            at = now_ms()
            answer = lifecycle.record_ack(tx, signal_id=signal_id, agent_id=agent_id, action=action, via=via, at=at)
            if answer.outcome == lifecycle.RECORDED:
                display = (store.get_agent_tx(tx, agent_id) or {}).get("display", agent_id)
                self._follow_up(tx, answer, agent_id, "care.ack", compose.ack_note(display, action), at, action=action)
            return answer

        return self._finish(await self._writer.run(job), "ack", agent_id, via)

    async def done(self, *, signal_id: int, agent_id: str, outcome: str, note: str, via: str) -> AnswerResult:
        """Record that a person closed the loop (once); a done without ack is also their ack."""
        outcome, note = _storable(outcome), _storable(note)

        def job(tx: Tx) -> lifecycle.Answer:
            at = now_ms()
            answer = lifecycle.record_done(
                tx, signal_id=signal_id, agent_id=agent_id, outcome=outcome, note=note, via=via, at=at
            )
            if answer.outcome == lifecycle.RECORDED:
                display = (store.get_agent_tx(tx, agent_id) or {}).get("display", agent_id)
                self._follow_up(
                    tx,
                    answer,
                    agent_id,
                    "care.done",
                    compose.done_note(display, outcome),
                    at,
                    outcome=outcome,
                    note=note,
                )
            return answer

        return self._finish(await self._writer.run(job), "done", agent_id, via)

    async def refuse(self, *, signal_id: int | None, agent_id: str | None, via: str, reason: str) -> None:
        """An answer that could not be taken: an audit row and line, nothing else."""
        await self._writer.run(
            lambda tx: lifecycle.refuse(tx, signal_id=signal_id, agent_id=agent_id, via=via, at=now_ms(), reason=reason)
        )
        audit.emit(
            {"kind": "refusal", "agent": agent_id, "via": via, "reason": reason, "action_origin": "user_directed"}
        )

    def _finish(self, answer: lifecycle.Answer, kind: str, agent_id: str, via: str) -> AnswerResult:
        loop = answer.loop
        audit.emit(
            {
                "kind": kind if answer.outcome == lifecycle.RECORDED else "refusal",
                "outcome": answer.outcome,
                "source": loop.source if loop else None,
                "event_id": loop.event_id if loop else None,
                "agent": agent_id,
                "via": via,
                "action_origin": "user_directed",
                "policy_gate_result": "allowed" if answer.outcome == lifecycle.RECORDED else "blocked",
            }
        )
        if answer.outcome == lifecycle.RECORDED:
            self._on_queued()
        return AnswerResult(answer.outcome, loop.event_id if loop else None, loop.status if loop else None)

    # Reads shared by every channel ----------------------------------------------------

    async def invite(self, invitation_id: int) -> Invite | None:
        """An invitation with its signal and agent, as channels and the link page word it."""
        view = await store.invitation(self.engine, invitation_id)
        if view is None:
            return None
        row = await store.agent_by(self.engine, id=view.agent_id)
        return self.invite_from(view, row)

    async def live_grants(self, subject: str) -> list[Grant]:
        """The grants of a subject that are not revoked (expiry is the router's to judge)."""
        from relay.intake import grant_from_row

        rows = await store.list_grants(self.engine, subject)
        return [grant_from_row(row) for row in rows if row["revoked_at"] is None]

    async def delivered(self, invitation_id: int) -> tuple[Invite, str] | None:
        """An invitation that reached its channel, with the provider's message id."""
        view = await store.invitation(self.engine, invitation_id)
        if view is None or not view.provider_id:
            return None
        invite = self.invite_from(view, await store.agent_by(self.engine, id=view.agent_id))
        return None if invite is None else (invite, view.provider_id)

    def invite_from(self, view: store.InvitationView, agent_row: dict[str, Any] | None) -> Invite | None:
        """None once retention purged the signal's body (the link has long expired by then)."""
        from relay.intake import agent_from_row

        if view.body is None:
            return None
        signal = self._read_signal(view.source, view.body)
        agent = agent_from_row(agent_row) if agent_row else Agent(id=view.agent_id, display=view.agent_id, active=False)
        responses = signal.suggested_responses or self._settings.aisha_suggested_responses
        deep_link = None
        if signal.deep_link and self._settings.aisha_app_base_url:
            deep_link = self._settings.aisha_app_base_url.rstrip("/") + signal.deep_link
        return Invite(
            invitation_id=view.id,
            channel=view.channel,
            code=view.code,
            agent=agent,
            signal=signal,
            responses=tuple(responses),
            action_url=f"{self._settings.public_base_url}/a/{self._tokens.action_token(view.id)}",
            deep_link=deep_link,
        )
