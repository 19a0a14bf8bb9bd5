"""The console channel (dev mode): the invitation printed on stdout with its action link."""

from __future__ import annotations

import sys

from relay import compose
from relay.channels import Delivery, Invite, sent


class ConsoleChannel:
    name = "console"

    async def send(self, invite: Invite) -> Delivery:
        text = compose.text_message(invite)
        banner = f"── invitation for {invite.agent.display} (console) ──"
        sys.stdout.write(f"\n{banner}\n{text}\n{'─' * len(banner)}\n")
        sys.stdout.flush()
        return sent(f"console-{invite.invitation_id}")

    async def update(self, invite: Invite, provider_id: str, text: str) -> Delivery:
        sys.stdout.write(f"── {text} ──\n")
        sys.stdout.flush()
        return sent(provider_id)
