"""Twilio's send half: an invitation as one SMS or WhatsApp message.

`TwilioChannel` sends with the twilio SDK's REST client (`client.make_client`, so
TWILIO_API_BASE_URL can point it at a fake) and asks for status callbacks at
RELAY_PUBLIC_BASE_URL + the status path. There is nothing to edit in a sent SMS, so
`update` sends nothing (and never texts the other agents: no nudges). It knows no
storage. No full phone number reaches a log line or an error text.
"""

from __future__ import annotations

import logging

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from relay import compose
from relay.channels.twilio import client as twilio_client
from relay.delivery import Delivery, Invite, Join, LoopSnapshot, permanent, retry, sent

__all__ = ["UNSUBSCRIBED", "TwilioChannel", "whatsapp_address"]

log = logging.getLogger("care_relay.twilio")

#: Twilio's error code for a number that unsubscribed (STOP) from this sender.
UNSUBSCRIBED = 21610


def whatsapp_address(number: str) -> str:
    """A number as Twilio's WhatsApp address (`whatsapp:+40…`)."""
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


class TwilioChannel:
    """One Twilio sender: `sms` (agent.phone) or `whatsapp` (agent.whatsapp, `whatsapp:` prefixes)."""

    def __init__(
        self, name: str, client: Client, *, sender: str, status_callback: str, owns_client: bool = False
    ) -> None:
        self.name = name
        self._client = client
        self._owns_client = owns_client
        self._from = whatsapp_address(sender) if name == "whatsapp" else sender
        self._status_callback = status_callback

    async def send(self, invite: Invite) -> Delivery:
        """Send the invitation to the agent's number on this channel."""
        delivery = await self._create(
            invite.agent.phone if self.name == "sms" else invite.agent.whatsapp,
            body=compose.text_message(invite),
            status_callback=self._status_callback,
        )
        if delivery.ok:
            log.info("%s invitation %s accepted by Twilio as %s", self.name, invite.invitation_id, delivery.provider_id)
        return delivery

    async def ask_to_join(self, join: Join) -> Delivery:
        """The one message an unconfirmed number gets: who added it, and JOIN <code> or STOP."""
        return await self._create(
            join.agent.phone if self.name == "sms" else join.agent.whatsapp, body=compose.join_message(join)
        )

    async def _create(self, number: str | None, **fields: str) -> Delivery:
        """One message to the agent's number on this channel, Twilio's answer as a Delivery."""
        if not number:
            return permanent(f"agent has no {self.name} number in the directory")
        to = whatsapp_address(number) if self.name == "whatsapp" else number
        try:
            # Awaited in this task (never wait_for / create_task): Retry-After is read from a ContextVar.
            message = await self._client.messages.create_async(to=to, from_=self._from, **fields)
        except TwilioRestException as exc:
            return self._refused(exc)
        except TimeoutError:
            return retry("Twilio did not answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return retry(f"connection error ({type(exc).__name__})")
        except TwilioException as exc:  # e.g. an unreadable answer: Twilio may not have taken it
            return retry(f"Twilio client error ({type(exc).__name__})")
        return sent(message.sid)

    def _refused(self, exc: TwilioRestException) -> Delivery:
        # Only status and code: Twilio's message text can quote the number (e.g. 21211).
        error = f"Twilio {exc.status} (error {exc.code})"
        log.warning("%s send refused: %s", self.name, error)
        if exc.status == 429 or exc.status >= 500:
            return retry(error, twilio_client.retry_after_seconds())
        if exc.code == UNSUBSCRIBED:
            return permanent(
                f"Twilio {UNSUBSCRIBED}: the agent unsubscribed from this {self.name} number", opted_out=True
            )
        return permanent(error)

    async def update(self, invite: Invite, provider_id: str, loop: LoopSnapshot) -> Delivery:
        """A sent SMS cannot be edited; nothing is sent (and the other agents are never texted)."""
        return sent(provider_id)

    async def close(self) -> None:
        """The SMS and WhatsApp channels share one client; the one that owns it closes it."""
        if self._owns_client:
            await twilio_client.close_client(self._client)
