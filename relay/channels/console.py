"""The console channel (dev mode): the invitation printed on stdout with its action link."""

from __future__ import annotations

import sys

from relay import compose
from relay.delivery import Delivery, Invite, Join, LoopSnapshot, sent
from relay.text import one_line


def _print(text: str) -> None:
    # The terminal is the operator's and the words are the senders': every line goes
    # through one_line, so no escape code, carriage return or bidi override reaches it.
    sys.stdout.write("\n".join(one_line(line) for line in text.split("\n")) + "\n")
    sys.stdout.flush()


class ConsoleChannel:
    name = "console"

    async def send(self, invite: Invite) -> Delivery:
        words = invite.words._("invitation for {display} (console)", display=one_line(invite.agent.display))
        banner = f"── {words} ──"
        _print(f"\n{banner}\n{compose.text_message(invite)}\n{'─' * len(banner)}")
        return sent(f"console-{invite.invitation_id}")

    async def update(self, invite: Invite, provider_id: str, loop: LoopSnapshot) -> Delivery:
        """The answer that queued this update, one line per answer (as the operator's terminal shows them)."""
        _print(f"── {one_line(loop.latest)} ──")
        return sent(provider_id)

    async def ask_to_join(self, join: Join) -> Delivery:
        """The console needs no address, so it is never asked; printed should one be queued by hand."""
        words = join.words._(
            "join code for {display} ({channel}): {code}",
            display=one_line(join.agent.display),
            channel=join.channel,
            code=join.code,
        )
        _print(f"── {words} ──")
        return sent(f"console-join-{join.agent.id}")
