"""One attempt at an outbox row, by its kind: what it reads, checks and sends, as a `Delivery`.

An invitation is checked again at send time (consent still live? agent active, not away?
address verified? quiet hours?) and then sent on its channel; one that WhatsApp cannot deliver
(outside the session window) moves to the agent's next channel. A message update shows the
loop as it stands now; a join code goes to an address its owner has not confirmed; a
callback goes to its sender (`relay.callbacks`); a forward posts the stored signal body to
the workflow engine. The worker around it owns claims, lanes, timeouts and what is stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp

from inbox import outbox as rows
from receivers.aisha.signature import pr8_headers
from relay import callbacks
from relay.addresses import Addresses
from relay.delivery import Channel, Delivery, Invite, permanent, skip
from relay.invitations import Invitations, ToSend
from relay.model import millis
from relay.send_time import next_channel, send_time_refusal
from relay.settings import Settings

#: the outbox's lines, wherever in it they are written
log = logging.getLogger("care_relay.outbox")

#: how long one callback attempt waits for the sender's answer before it counts as timed out
CALLBACK_TIMEOUT_SEC = 10.0


class Dispatcher:
    def __init__(
        self,
        invitations: Invitations,
        channels: Mapping[str, Channel],
        settings: Settings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        addresses: Addresses | None = None,
    ) -> None:
        self._clock = clock
        self._addresses = addresses
        self._invitations = invitations
        self._channels = channels
        self._settings = settings
        self._routing = settings.routing()
        self._session = session
        #: per callback attempt (tests shorten it rather than wait ten seconds for a timeout)
        self.callback_timeout_sec = CALLBACK_TIMEOUT_SEC

    async def prepare(self, invites: list[rows.Work]) -> dict[int, ToSend | None]:
        """What the claimed invitations need, read in one job, by outbox row id (None: not found).

        Should the read fail, each send reads its own and meets the failure there.
        """
        if not invites:
            return {}
        try:
            found = await self._invitations.to_send([invitation_id(w) for w in invites])
        except Exception as exc:
            log.warning("outbox batch read failed: %s", type(exc).__name__)
            return {}
        return {w.id: found.get(invitation_id(w)) for w in invites}

    async def attempt(self, work: rows.Work, prepared: ToSend | None) -> Delivery:
        """One attempt at `work`; `prepared` is what `prepare` read for an invitation (None: read it now)."""
        if work.kind in rows.INVITE_KINDS:
            return await self._send_invite(work, prepared)
        if work.kind == "update":
            return await self._send_update(work)
        if work.kind == "callback":
            return await callbacks.send_callback(
                self._session,
                self._settings,
                work,
                now_ms=millis(self._clock),
                timeout_sec=self.callback_timeout_sec,
            )
        if work.kind == "forward":
            return await self._send_forward(work)
        if work.kind == "verify":
            return await self._send_join(work)
        return permanent(f"unknown outbox kind {work.kind}")

    async def _send_invite(self, work: rows.Work, prepared: ToSend | None) -> Delivery:
        if prepared is None:
            prepared = (await self._invitations.to_send([invitation_id(work)])).get(invitation_id(work))
        invite = None if prepared is None else prepared.invite
        if prepared is None or invite is None:
            return permanent("invitation not found")
        now = datetime.fromtimestamp(self._clock(), UTC)
        delivery = await self._deliver(work, prepared, invite, now)
        if delivery.outside_session:
            # never dropped unseen: the same signal goes to the agent's next channel (CONTRACT section 8)
            moved_to = next_channel(
                invite.signal, invite.agent, prepared.grants, now=now, settings=self._routing, tried=invite.channel
            )
            return replace(delivery, retryable=False, next_channel=moved_to)
        return delivery

    async def _deliver(self, work: rows.Work, prepared: ToSend, invite: Invite, now: datetime) -> Delivery:
        """The send-time checks, then the channel's send (or, for a late 63016, no send at all)."""
        if work.payload.get("outside_session") and prepared.status == "failed":
            # Twilio said so after the send (a late 63016): nothing is sent here; `_send_invite` moves
            # it on (a person's retry queued the invitation again, and it is then sent as usual)
            if not prepared.loop_open:
                return skip("loop_closed")
            return permanent("outside_session (reported after the send)", outside_session=True)
        refusal = send_time_refusal(
            invite.signal,
            invite.agent,
            invite.channel,
            prepared.grants,
            now=now,
            loop_open=prepared.loop_open,
            verify_addresses=self._settings.relay_verify_addresses,
        )
        if refusal is not None:
            return skip(refusal)
        if invite.channel in invite.agent.opted_out:
            return permanent(f"agent opted out of {invite.channel}", opted_out=True)
        if (channel := self._channels.get(invite.channel)) is None:
            return permanent(f"channel {invite.channel} is not configured")
        return await channel.send(invite)

    async def _send_join(self, work: rows.Work) -> Delivery:
        """A join code to an address its owner has not confirmed; skipped once confirmed or changed."""
        channel_name = str(work.payload["channel"])
        join = (
            None
            if self._addresses is None
            else await self._addresses.to_ask(str(work.payload["agent_id"]), channel_name)
        )
        if join is None:
            return skip("address confirmed, changed or removed since")
        channel = self._channels.get(channel_name)
        if channel is None:
            return permanent(f"channel {channel_name} is not configured")
        return await channel.ask_to_join(join)

    async def _send_update(self, work: rows.Work) -> Delivery:
        found = await self._invitations.delivered(int(work.payload["invitation_id"]))
        if found is None:
            return permanent("nothing delivered to update")
        channel = self._channels.get(found.invite.channel)
        if channel is None:
            return permanent(f"channel {found.invite.channel} is not configured")
        # the loop as it stands now, with the words of the answer that queued this update
        loop = replace(found.loop, latest=str(work.payload["text"]))
        return await channel.update(found.invite, found.provider_id, loop)

    async def _send_forward(self, work: rows.Work) -> Delivery:
        url = self._settings.care_workflow_escalation_webhook_url
        if not (self._settings.care_workflow_triggers_enabled and url):
            return permanent("workflow forwarding is disabled")
        body = await self._invitations.raw_body(int(work.ref_id or 0))
        if body is None:
            return permanent("signal body no longer stored")
        headers = pr8_headers(body, self._settings.care_workflow_webhook_secret, str(work.payload.get("event_id", "")))
        timeout_sec = self._settings.care_workflow_webhook_timeout_ms / 1000
        return await callbacks.post(self._session, url, body, headers, timeout_sec=timeout_sec)


def invitation_id(work: rows.Work) -> int:
    """The invitation an invitation row sends."""
    return int(work.payload["invitation_id"])
