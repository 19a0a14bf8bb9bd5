"""One read model: an invitation with its agent and signal, for every channel, page and the outbox.

The signal is read back from the sender's stored bytes by the receivers' own parser
(injected as `read_signal`: one source of truth), once per signal: parsed signals are
kept in a small bounded cache by signal id. A stored body never changes; retention only
drops it, and a purged body is seen on the invitation row before the cache is asked.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inbox import directory, signals
from inbox.addresses import ADDRESS_OF
from inbox.directory import AgentRecord, GrantRecord
from inbox.invitations import (
    OPEN_STATUSES,
    InvitationRecord,
    invitation,
    invitations_by_id,
    newest_open_invitations,
    open_invitations,
)
from inbox.loop_detail import AckLine, DoneLine, LoopDetail, loop_detail
from inbox.reader import Reader
from inbox.tx import Tx
from relay.addresses import session_open
from relay.delivery import Invite, LoopSnapshot, Note
from relay.model import Agent, Clock, Grant, Signal, millis
from relay.settings import Settings
from relay.tokens import Tokens
from relay.words import Lexicon

#: what a read or a write raises while storage is unavailable, for the pages that word it.
#: parsed signals kept; a busy relay answers the loops of the last few hours.
CACHE_SIZE = 1024

#: the read model's record types, as edges name them
View = InvitationRecord
AgentRow = AgentRecord

__all__ = ["AckLine", "AgentRow", "Delivered", "DoneLine", "Held", "Invitations", "Joined", "ToSend", "View"]


@dataclass(frozen=True)
class Held:
    """An invitation row, the agent who holds it, and the invitation in words (None once purged)."""

    view: View
    holder: AgentRow | None
    invite: Invite | None


@dataclass(frozen=True)
class Joined:
    """A later signal about the same subject, joined to an open loop (CONTRACT section 10)."""

    #: when the relay received it, epoch milliseconds
    received_at: int
    #: the signal as its sender's parser reads it; None once retention purged its body
    signal: Signal | None


@dataclass(frozen=True)
class ToSend:
    """An invitation about to be sent, with what the send-time checks read: the live grants
    of its subject. `invite` is None once retention purged the signal's body."""

    invite: Invite | None
    grants: tuple[Grant, ...]
    #: whether the loop still waits for a person (invited or acked), read with the rest
    loop_open: bool
    #: the invitation's own status (queued, sent, failed…)
    status: str = "queued"


@dataclass(frozen=True)
class Delivered:
    """An invitation that reached its channel, the provider's message id, and its loop as it stands."""

    invite: Invite
    provider_id: str
    loop: LoopSnapshot


class Invitations:
    """Reads shared by the channels, the link page, the answers and the outbox."""

    def __init__(
        self,
        reader: Reader,
        settings: Settings,
        tokens: Tokens,
        *,
        read_signal: Callable[[str, bytes], Signal],
        cache_size: int = CACHE_SIZE,
        lexicon: Lexicon | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._clock = clock
        #: every language the relay speaks: an invitation is worded in its agent's
        self.lexicon = lexicon or Lexicon(settings.relay_default_locale)
        self._reader = reader
        self._settings = settings
        self._tokens = tokens
        self._read_signal = read_signal
        self._cache: OrderedDict[int, Signal] = OrderedDict()
        self._cache_size = cache_size

    def signal(self, view: View) -> Signal | None:
        """The invitation's signal, parsed once per signal id; None once retention purged its body."""
        if view.body is None:
            return None
        signal = self._cache.get(view.signal_id)
        if signal is None:
            return self._remember(view.signal_id, self._read_signal(view.source, view.body))
        self._cache.move_to_end(view.signal_id)
        return signal

    async def offered(self, signal_id: int) -> tuple[str, ...]:
        """The responses a loop offers; () once retention purged its body."""
        signal = self._cache.get(signal_id)
        if signal is None:
            stored = await self._reader.run(_source_and_body, signal_id)
            if stored is None:
                return ()
            signal = self._remember(signal_id, self._read_signal(*stored))
        return self.responses(signal)

    def remember(self, signal_id: int, signal: Signal) -> None:
        """Intake parsed this signal already: keep it, so its sends need not parse it again."""
        self._remember(signal_id, signal)

    def _remember(self, signal_id: int, signal: Signal) -> Signal:
        self._cache[signal_id] = signal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return signal

    def responses(self, signal: Signal) -> tuple[str, ...]:
        """The responses offered: the payload's, or AISHA_SUGGESTED_RESPONSES."""
        return tuple(signal.suggested_responses or self._settings.aisha_suggested_responses)

    def invite_from(self, view: View, agent_row: AgentRow | None) -> Invite | None:
        """None once retention purged the signal's body (the link has long expired by then)."""
        signal = self.signal(view)
        if signal is None:
            return None
        agent = agent_row.as_agent() if agent_row else Agent(id=view.agent_id, display=view.agent_id, active=False)
        deep_link = None
        if signal.deep_link and self._settings.aisha_app_base_url:
            deep_link = self._settings.aisha_app_base_url.rstrip("/") + signal.deep_link
        return Invite(
            invitation_id=view.id,
            channel=view.channel,
            code=view.code,
            agent=agent,
            signal=signal,
            responses=self.responses(signal),
            action_url=f"{self._settings.public_base_url}/a/{self._tokens.action_token(view.id)}",
            deep_link=deep_link,
            window_minutes=self._settings.aisha_care_window_minutes if signal.source == "aisha" else None,
            session_open=agent_row is not None and session_open(agent_row.whatsapp_seen_at, millis(self._clock)),
            words=self.lexicon.words(agent.locale),
        )

    async def held(self, invitation_id: int) -> Held | None:
        """The invitation row and its holder, each read once."""
        found = await self._reader.run(_held, invitation_id)
        if found is None:
            return None
        view, holder = found
        return Held(view, holder, self.invite_from(view, holder))

    async def to_send(self, invitation_ids: Sequence[int]) -> dict[int, ToSend]:
        """A batch of invitations about to be sent, read in one job: rows, agents and live grants."""
        views, agents, grants = await self._reader.run(_batch, invitation_ids)
        return {
            view.id: ToSend(
                self.invite_from(view, agents.get(view.agent_id)),
                tuple(g.as_grant() for g in grants.get(view.signal_id, ())),
                view.loop_status in OPEN_STATUSES,
                view.status,
            )
            for view in views
        }

    async def delivered(self, invitation_id: int) -> Delivered | None:
        """An invitation that reached its channel, with the provider's message id and its loop now."""
        held = await self.held(invitation_id)
        if held is None or held.invite is None or not held.view.provider_id:
            return None
        loop = await self.loop(held.view.signal_id, held.view.loop_status)
        return Delivered(held.invite, held.view.provider_id, loop)

    async def loop(self, signal_id: int, status: str, latest: str = "") -> LoopSnapshot:
        """Every ack (with the agent's display), the signals joined to it, and the done of one loop."""
        detail, joined = await self._reader.run(_detail_and_joined, signal_id)
        done = detail.done
        return LoopSnapshot(
            status=status,
            acks=tuple(Note(a.agent, a.display, a.action) for a in detail.acks),
            done=None if done is None else Note(done.agent, done.display, done.outcome),
            latest=latest,
            joined=tuple(self._parsed(line.id, line.source, body) for line, body in joined),
        )

    def _parsed(self, signal_id: int, source: str, body: bytes | None) -> Signal | None:
        """A stored signal, parsed once per id (None once retention purged its body)."""
        if body is None:
            return None
        signal = self._cache.get(signal_id)
        if signal is None:
            return self._remember(signal_id, self._read_signal(source, body))
        self._cache.move_to_end(signal_id)
        return signal

    async def detail_and_joined(self, signal_id: int) -> tuple[LoopDetail, tuple[Joined, ...]]:
        """A loop's invitations, acks (with displays) and done, and the signals joined to it (CONTRACT
        section 10) oldest first, in one read: as the link page shows them."""
        detail, joined = await self._reader.run(_detail_and_joined, signal_id)
        return detail, tuple(
            Joined(line.received_at, self._parsed(line.id, line.source, body)) for line, body in joined
        )

    async def agent_at(self, channel: str, address: str) -> AgentRow | None:
        """The agent an address names, once its owner confirmed it (CONTRACT section 8).

        Until then the address names nobody: whoever writes or presses from it reads no
        invitation and answers none, on every channel. `claimant` finds who it was given to.
        """
        row = await self.claimant(channel, address)
        return row if row is not None and self.confirmed(row, channel) else None

    async def claimant(self, channel: str, address: str) -> AgentRow | None:
        """The agent an address was given to, confirmed or not: from an unconfirmed one, only
        JOIN (or the Join button) and STOP are taken. None for a channel without addresses."""
        column = ADDRESS_OF.get(channel)
        if column is None or not address:
            return None
        return await self._reader.run(directory.agent_by, **{column: address})

    def confirmed(self, agent: AgentRow, channel: str) -> bool:
        """Whether the agent's address on `channel` may be treated as theirs (RELAY_VERIFY_ADDRESSES)."""
        return not self._settings.relay_verify_addresses or channel in agent.verified

    async def open_for(self, agent_row: AgentRow) -> list[tuple[View, Invite]]:
        """An agent's open invitations, oldest first, each with its words (purged ones left out)."""
        views = await self._reader.run(open_invitations, agent_row.id)
        pairs = [(view, self.invite_from(view, agent_row)) for view in views]
        return [(view, invite) for view, invite in pairs if invite is not None]

    async def newest_open_for(self, agent_row: AgentRow, limit: int = 20) -> list[tuple[View, Invite]]:
        """An agent's `limit` newest open invitations, newest first, each with its words (purged ones left out)."""
        views = await self._reader.run(newest_open_invitations, agent_row.id, limit)
        pairs = [(view, self.invite_from(view, agent_row)) for view in views]
        return [(view, invite) for view, invite in pairs if invite is not None]

    async def raw_body(self, signal_id: int) -> bytes | None:
        """The bytes a sender posted (None once retention purged them)."""
        return await self._reader.run(signals.raw_body, signal_id)


# Read jobs ------------------------------------------------------------------------------


def _source_and_body(tx: Tx, signal_id: int) -> tuple[str, bytes] | None:
    stored = signals.signal_by_id(tx, signal_id)
    body = signals.raw_body(tx, signal_id) if stored is not None else None
    return None if stored is None or body is None else (stored.source, body)


def _detail_and_joined(tx: Tx, signal_id: int) -> tuple[LoopDetail, list[tuple[signals.JoinedLine, bytes | None]]]:
    """A loop's invitations, acks and done, and the signals joined to it with their bytes."""
    joined = signals.joined_to_loop(tx, signal_id)
    return loop_detail(tx, signal_id), [(line, signals.raw_body(tx, line.id)) for line in joined]


def _held(tx: Tx, invitation_id: int) -> tuple[View, AgentRow | None] | None:
    view = invitation(tx, invitation_id)
    return None if view is None else (view, directory.agent_by(tx, id=view.agent_id))


def _batch(
    tx: Tx, invitation_ids: Sequence[int]
) -> tuple[list[View], dict[str, AgentRow], dict[int, list[GrantRecord]]]:
    """Invitations with their signals, their agents, and each signal's live grants."""
    views = list(invitations_by_id(tx, invitation_ids).values())
    agents = directory.agents_by_id(tx, [v.agent_id for v in views])
    subjects = signals.subjects(tx, sorted({v.signal_id for v in views}))
    by_subject = directory.live_grants(tx, sorted(set(subjects.values())))
    return views, agents, {signal_id: by_subject[subject] for signal_id, subject in subjects.items()}
