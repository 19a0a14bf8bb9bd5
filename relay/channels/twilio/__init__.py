"""SMS and WhatsApp through Twilio: both directions of Twilio's wire format.

Out: `send.TwilioChannel` over the twilio SDK (`client`, which TWILIO_API_BASE_URL can
point at a fake). In: `inbound` takes an agent's reply (grammar in `replies`) and answers
in TwiML; `status` follows delivery; `webhook` checks X-Twilio-Signature for both. The
registry (`relay.channels`) mounts `ROUTES`, calls `prepare` when the app is made and
`open_channels` once, before the outbox starts.
"""

from __future__ import annotations

from relay.channels.twilio import client as twilio_client
from relay.channels.twilio.inbound import INBOUND_PATH, handle_inbound
from relay.channels.twilio.send import TwilioChannel
from relay.channels.twilio.status import STATUS_PATH, handle_status
from relay.channels.twilio.webhook import prepare
from relay.delivery import Channel
from relay.settings import Settings

__all__ = ["ROUTES", "open_channels", "prepare"]

#: Twilio's webhooks, mounted by the channel registry.
ROUTES = (("POST", INBOUND_PATH, handle_inbound), ("POST", STATUS_PATH, handle_status))


def open_channels(settings: Settings) -> list[Channel]:
    """One REST client, shared by the SMS and WhatsApp channels that can send.

    SMS sends from TWILIO_SMS_FROM, or through TWILIO_MESSAGING_SERVICE_SID when that is set;
    WhatsApp needs TWILIO_WHATSAPP_FROM (and uses TWILIO_WHATSAPP_CONTENT_SID outside the session).
    """
    names = [name for name in ("sms", "whatsapp") if name in settings.configured_channels]
    if not names:
        return []
    client = twilio_client.make_client(
        settings.twilio_account_sid or "", settings.twilio_auth_token or "", settings.twilio_api_base_url
    )
    callback = settings.public_base_url + STATUS_PATH
    return [
        TwilioChannel(
            name,
            client,
            sender=settings.twilio_sms_from if name == "sms" else settings.twilio_whatsapp_from,
            status_callback=callback,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            content_sid=settings.twilio_whatsapp_content_sid,
            owns_client=i == 0,
        )
        for i, name in enumerate(names)
    ]
