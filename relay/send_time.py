"""Routing at send time: whether a queued invitation may still go out, and on which channel next.

Pure: no I/O and no clock reads (`now` is a parameter). The outbox asks just before each send
(`send_time_refusal`) and after a channel could not deliver (`next_channel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from relay.channel_choice import pick_channel, unconfirmed
from relay.coverage import covers, in_audience
from relay.model import PAGER_CHANNELS, Agent, Grant, RoutingSettings, Signal
from relay.timing import aware, in_quiet_hours

__all__ = ["next_channel", "send_time_refusal"]


def send_time_refusal(  # noqa: PLR0911 - one return per reason, in the contract's order
    signal: Signal,
    agent: Agent,
    channel: str,
    grants: Sequence[Grant],
    *,
    now: datetime,
    loop_open: bool = True,
    verify_addresses: bool = True,
) -> str | None:
    """Why an invitation decided earlier must not go out now, or None (CONTRACT section 6).

    Checked just before each send, whatever queued it (intake, a person's retry): the loop
    is still open (a person may have closed it while the invitation waited, `loop_closed`),
    the agent is still active and not away, the address is still confirmed by its owner, a live grant still covers the signal for this agent on this
    channel, and a pager channel is not in the agent's quiet hours. The answer is the
    contract's reason word (`agent_inactive`, `away`, `unverified`, `consent_revoked`, `quiet_hours`). A refusal
    is final: the invitation is skipped, audited, never sent later.
    """
    now = aware(now)
    if not loop_open:
        return "loop_closed"
    if not agent.active:
        return "agent_inactive"
    if agent.away:  # section 10: the agent said they are away since this was queued
        return "away"
    if unconfirmed(agent, channel, RoutingSettings(verify_addresses=verify_addresses)):
        return "unverified"
    if not any(
        covers(g, signal, now) and in_audience(agent, signal, g) and (not g.channels or channel in g.channels)
        for g in grants
    ):
        return "consent_revoked"
    if channel in PAGER_CHANNELS and in_quiet_hours(agent.quiet_hours, agent.tz, now):
        return "quiet_hours"
    return None


def next_channel(
    signal: Signal, agent: Agent, grants: Sequence[Grant], *, now: datetime, settings: RoutingSettings, tried: str
) -> str | None:
    """The agent's first usable channel for this signal other than `tried`, or None.

    For an invitation a channel could not deliver (WhatsApp outside the 24-hour session):
    the same choice as at intake, among the live grants that still cover the signal for the
    agent, with the channel that failed left out.
    """
    now = aware(now)
    covering = [g for g in grants if covers(g, signal, now) and in_audience(agent, signal, g)]
    if not covering or not agent.active or agent.away:
        return None
    channel, _ = pick_channel(agent, covering, now, settings, skip=frozenset({tried}))
    return channel
