"""Which of an agent's channels reaches them: configured, granted, addressed, confirmed, not quiet.

Pure: no I/O and no clock reads (`now` is a parameter).

- An agent's channels are tried in their own order (none named: every channel's order).
  With several covering grants, a channel is usable only when a grant whose groups hold
  the agent allows it.
- An address its owner has not confirmed (CONTRACT section 8) is passed over like a missing
  one, unless `verify_addresses` is off; an agent left with no channel for that reason is
  "unverified" (quiet hours, when they also held a channel back, are named first).
- Quiet hours hold back the pagers (SMS, WhatsApp): Slack and console still go.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from relay.model import AGENT_CHANNELS, PAGER_CHANNELS, Agent, Grant, RoutingSettings
from relay.timing import in_quiet_hours

__all__ = ["needs_address", "pick_channel", "unconfirmed"]

#: The Agent field that holds each channel's address; None: the channel needs none.
_ADDRESS_FIELD: dict[str, str | None] = {"slack": "slack_user", "sms": "phone", "whatsapp": "whatsapp", "console": None}


def needs_address(channel: str) -> bool:
    """Whether a channel reaches an address of the agent's own (and so one they must confirm)."""
    return _ADDRESS_FIELD.get(channel) is not None


def unconfirmed(agent: Agent, channel: str, settings: RoutingSettings) -> bool:
    """Whether the agent's address on this channel still waits for its owner's confirmation."""
    return settings.verify_addresses and needs_address(channel) and channel not in agent.verified


def pick_channel(
    agent: Agent, grants: Sequence[Grant], now: datetime, settings: RoutingSettings, skip: frozenset[str] = frozenset()
) -> tuple[str | None, str]:
    """The first usable channel of the agent's, or None and why none was."""
    held_by_quiet_hours = held_unconfirmed = False
    for channel in agent.channels or AGENT_CHANNELS:
        if channel in skip or channel not in _ADDRESS_FIELD or channel not in settings.configured_channels:
            continue
        if not any(not g.channels or channel in g.channels for g in grants):
            continue
        address_field = _ADDRESS_FIELD[channel]
        if address_field is not None and not getattr(agent, address_field):
            continue
        if channel in agent.opted_out:
            continue
        if unconfirmed(agent, channel, settings):
            held_unconfirmed = True
            continue
        if channel in PAGER_CHANNELS and in_quiet_hours(agent.quiet_hours, agent.tz, now):
            held_by_quiet_hours = True
            continue
        return channel, ""
    if held_by_quiet_hours:
        return None, "quiet_hours"
    return None, "unverified" if held_unconfirmed else "no_channel"
