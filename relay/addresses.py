"""Addresses their owners confirmed (CONTRACT section 8), for the channels and the outbox.

The owner of a new address answers the join code it was sent (`JOIN K7QX` by SMS or
WhatsApp, the Join button in Slack): the channel calls `confirm`, once for every channel,
so the rule "a code confirms only the address it was sent to, once" is kept here and in
`inbox.addresses`, never in a channel. The outbox reads `to_ask` before it sends a code
(an address confirmed or changed since needs none), and calls `unconfirm` when a provider
says an address is not a usable one. Each is audited; no address reaches a log line.
"""

from __future__ import annotations

from inbox import addresses as stored
from inbox.directory import get_agent_tx
from inbox.reader import Reader
from inbox.tx import Tx
from inbox.writer import Writer
from relay import audit
from relay.delivery import Join
from relay.model import Clock, millis
from relay.words import Lexicon

__all__ = ["SESSION_MS", "Addresses", "Confirmed", "session_open"]

Confirmed = stored.Confirmed

#: a WhatsApp session lasts this long after the agent's last message in (Meta's customer-care window)
SESSION_MS = 24 * 3600 * 1000


def session_open(seen_at: int | None, now_ms: int) -> bool:
    """Whether the WhatsApp session an agent's message at `seen_at` (Unix ms) opened is still open."""
    return seen_at is not None and 0 <= now_ms - seen_at < SESSION_MS


def _to_ask(tx: Tx, agent_id: str, channel: str, lexicon: Lexicon) -> Join | None:
    agent = get_agent_tx(tx, agent_id)
    sent = stored.join_code(tx, agent_id, channel)
    if agent is None or agent.removed_at is not None or sent is None or channel in agent.verified:
        return None
    code, address = sent
    if address != stored.address(agent, channel):
        return None
    return Join(agent=agent.as_agent(), channel=channel, code=code, words=lexicon.words(agent.locale))


class Addresses:
    """Confirming, unconfirming and the WhatsApp session, over one database; times from `clock`."""

    def __init__(self, writer: Writer, reader: Reader, *, clock: Clock, lexicon: Lexicon | None = None) -> None:
        self._lexicon = lexicon or Lexicon()
        self._writer = writer
        self._reader = reader
        self._clock = clock

    async def to_ask(self, agent_id: str, channel: str) -> Join | None:
        """The join code still to send to an agent's address; None once confirmed, changed or removed."""
        return await self._reader.run(lambda tx: _to_ask(tx, agent_id, channel, self._lexicon))

    async def confirm(self, agent_id: str, channel: str, code: str) -> stored.Confirmed:
        """The owner answered `code` from the address: confirmed once it is the code that address was sent."""
        result = await self._writer.run(lambda tx: stored.confirm(tx, agent_id, channel, code, millis(self._clock)))
        audit.emit(
            {
                "kind": "address_confirmed" if result is Confirmed.CONFIRMED else "address_not_confirmed",
                "agent": agent_id,
                "via": channel,
                "result": str(result),
                "action_origin": "user_directed",
                "user_instruction": "join",
            }
        )
        return result

    async def unconfirm(self, agent_id: str, channel: str, why: str) -> None:
        """The provider refused the address (not a number, not a mobile): no longer confirmed."""
        if await self._writer.run(lambda tx: stored.unconfirm(tx, agent_id, channel, why, millis(self._clock))):
            audit.emit(
                {
                    "kind": "address_unconfirmed",
                    "agent": agent_id,
                    "via": channel,
                    "reason": why,
                    "action_origin": "care_autonomous",
                }
            )

    async def seen_on_whatsapp(self, agent_id: str) -> None:
        """The agent wrote on WhatsApp: their 24-hour session runs from now."""
        await self._writer.run(lambda tx: stored.whatsapp_seen(tx, agent_id, millis(self._clock)))
