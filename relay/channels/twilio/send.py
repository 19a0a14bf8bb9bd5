"""Twilio's send half: an invitation as one SMS or WhatsApp message.

`TwilioChannel` sends with the twilio SDK's REST client (`client.make_client`, so
TWILIO_API_BASE_URL can point it at a fake) and asks for status callbacks at
RELAY_PUBLIC_BASE_URL + the status path. There is nothing to edit in a sent SMS, so
`update` sends nothing (and never texts the other agents: no nudges). It knows no
storage. No full phone number reaches a log line or an error text.

Senders: SMS goes from TWILIO_SMS_FROM, or through TWILIO_MESSAGING_SERVICE_SID when one is
set (`MessagingServiceSid`, no `From`: the service picks the sender). WhatsApp always goes
from TWILIO_WHATSAPP_FROM (Twilio no longer needs a Messaging Service for templates).

WhatsApp and the 24-hour session: inside it (`Invite.session_open`), the invitation is
free-form text; outside it, the approved template (TWILIO_WHATSAPP_CONTENT_SID) with
`compose.template_variables`; with no template, nothing is sent and the delivery says
`outside_session`, as it does when Twilio answers 63016 (here synchronously; as a status
callback, `status` reads it). 21211 / 21614 (not a valid / not a mobile number) come back
`unverified`; 21610 (unsubscribed) `opted_out`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from relay import compose
from relay.channels.twilio import client as twilio_client
from relay.delivery import Delivery, Invite, Join, LoopSnapshot, permanent, retry, sent

__all__ = [
    "NOT_A_MOBILE_NUMBER",
    "NOT_A_VALID_NUMBER",
    "OUTSIDE_SESSION",
    "UNSUBSCRIBED",
    "TwilioChannel",
    "whatsapp_address",
]

log = logging.getLogger("care_relay.twilio")

#: Twilio's error code for a number that unsubscribed (STOP) from this sender.
UNSUBSCRIBED = 21610
#: free-form WhatsApp outside the 24-hour session (Twilio may say so at once or in a status callback).
OUTSIDE_SESSION = 63016
#: the 'To' number is not a valid phone number / not a mobile number.
NOT_A_VALID_NUMBER = 21211
NOT_A_MOBILE_NUMBER = 21614
#: what a delivery that cannot reach WhatsApp outside the session says.
OUTSIDE_SESSION_ERROR = "outside_session"


def whatsapp_address(number: str) -> str:
    """A number as Twilio's WhatsApp address (`whatsapp:+40…`)."""
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


class TwilioChannel:
    """One Twilio sender: `sms` (agent.phone) or `whatsapp` (agent.whatsapp, `whatsapp:` prefixes)."""

    def __init__(
        self,
        name: str,
        client: Client,
        *,
        sender: str | None = None,
        status_callback: str,
        messaging_service_sid: str | None = None,
        content_sid: str | None = None,
        owns_client: bool = False,
    ) -> None:
        """`sender` (From) or, for SMS, `messaging_service_sid`; `content_sid`: WhatsApp's template."""
        if name == "whatsapp" and not sender:
            raise ValueError("the WhatsApp channel needs TWILIO_WHATSAPP_FROM")
        if not sender and not messaging_service_sid:
            raise ValueError("the SMS channel needs TWILIO_SMS_FROM or TWILIO_MESSAGING_SERVICE_SID")
        self.name = name
        self._client = client
        self._owns_client = owns_client
        self._sender: dict[str, str]
        if name == "whatsapp":
            self._sender = {"from_": whatsapp_address(sender or "")}
        elif messaging_service_sid:
            self._sender = {"messaging_service_sid": messaging_service_sid}
        else:
            self._sender = {"from_": sender or ""}
        self._content_sid = content_sid if name == "whatsapp" else None
        self._status_callback = status_callback

    def _message(self, invite: Invite) -> dict[str, Any] | Delivery:
        """The create call's fields (address, sender, then text or the template), or why nothing may go."""
        number = invite.agent.phone if self.name == "sms" else invite.agent.whatsapp
        if not number:
            return permanent(f"agent has no {self.name} number in the directory")
        if self.name == "sms":
            return {"to": number, **self._sender, "body": compose.text_message(invite)}
        fields = {"to": whatsapp_address(number), **self._sender}
        if invite.session_open:
            return fields | {"body": compose.text_message(invite)}
        if self._content_sid is None:
            log.info("whatsapp invitation %s: outside the session and no template: not sent", invite.invitation_id)
            return permanent(OUTSIDE_SESSION_ERROR, outside_session=True)
        variables = json.dumps(compose.template_variables(invite), ensure_ascii=False)
        return fields | {"content_sid": self._content_sid, "content_variables": variables}

    async def send(self, invite: Invite) -> Delivery:
        """Send the invitation to the agent's number on this channel (see the module docstring)."""
        message = self._message(invite)
        if isinstance(message, Delivery):
            return message
        delivery = await self._create({**message, "status_callback": self._status_callback})
        if delivery.ok:
            log.info("%s invitation %s accepted by Twilio as %s", self.name, invite.invitation_id, delivery.provider_id)
        return delivery

    async def ask_to_join(self, join: Join) -> Delivery:
        """The one message an unconfirmed number gets: who added it, and JOIN <code> or STOP (no care data)."""
        number = join.agent.phone if self.name == "sms" else join.agent.whatsapp
        if not number:
            return permanent(f"agent has no {self.name} number in the directory")
        to = number if self.name == "sms" else whatsapp_address(number)
        message = {"to": to, **self._sender, "body": compose.join_message(join)}
        return await self._create({**message, "status_callback": self._status_callback})

    async def _create(self, message: dict[str, Any]) -> Delivery:
        """One message created at Twilio; its answer as a Delivery."""
        try:
            # Awaited in this task (never wait_for / create_task): Retry-After is read from a ContextVar.
            created = await self._client.messages.create_async(**message)
        except TwilioRestException as exc:
            return self._refused(exc)
        except TimeoutError:
            return retry("Twilio did not answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return retry(f"connection error ({type(exc).__name__})")
        except TwilioException as exc:  # e.g. an unreadable answer: Twilio may not have taken it
            return retry(f"Twilio client error ({type(exc).__name__})")
        return sent(created.sid)

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
        if exc.code == OUTSIDE_SESSION and self.name == "whatsapp":
            return permanent(f"{OUTSIDE_SESSION_ERROR} ({error})", outside_session=True)
        if exc.code in (NOT_A_VALID_NUMBER, NOT_A_MOBILE_NUMBER):
            return permanent(error, unverified=True)
        return permanent(error)

    async def update(self, invite: Invite, provider_id: str, loop: LoopSnapshot) -> Delivery:
        """A sent SMS cannot be edited; nothing is sent (and the other agents are never texted)."""
        return sent(provider_id)

    async def close(self) -> None:
        """The SMS and WhatsApp channels share one client; the one that owns it closes it."""
        if self._owns_client:
            await twilio_client.close_client(self._client)
