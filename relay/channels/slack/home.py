"""The App Home tab: an agent's open invitations, published when they open it.

On `app_home_opened` (the Home tab only) the relay publishes (`views.publish`) a view for
that Slack user: their newest open invitations — who sent what, when, the reply code — each
with a button to the signed action page the invitation's DM and texts link to
(`Invite.action_url`, built by `relay.invitations`). Someone outside the directory reads
one calm sentence. Nothing about the care is logged; a failure logs its type only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from relay import compose
from relay.channels.slack.blocks import Block, plain, when
from relay.delivery import Invite
from relay.invitations import Invitations
from relay.text import clip

__all__ = ["HOME_LINK_ACTION", "MAX_SHOWN", "NOTHING_OPEN", "NOT_AN_AGENT", "home_view", "register"]

log = logging.getLogger("care_relay.slack")

#: the invitations a Home tab lists (three blocks each, of Slack's 100 per view)
MAX_SHOWN = 20
HOME_LINK_ACTION = "care_home_open"
NOT_AN_AGENT = "This is the care relay's home. You are not in its directory, so nothing is waiting for you here."
NOTHING_OPEN = "Nothing is waiting for you right now. Thank you for being there for people."


def _item(invite: Invite, loop_status: str) -> list[Block]:
    state = "someone is there" if loop_status == "acked" else "waiting for someone"
    facts = f"Sent {when(invite.signal.ts)} · reply code {invite.code or '—'} · {state}"
    return [
        {
            "type": "section",
            "block_id": f"care_home_{invite.invitation_id}",
            "text": plain(compose.headline(invite)),
            "accessory": {
                "type": "button",
                "action_id": HOME_LINK_ACTION,
                "text": plain("Open", 75),
                "url": clip(invite.action_url, 3000),
                "value": str(invite.invitation_id),
            },
        },
        {"type": "context", "elements": [plain(facts)]},
        {"type": "divider"},
    ]


def home_view(items: Sequence[tuple[Invite, str]] | None) -> dict[str, Any]:
    """The Home tab: the invitations (with their loop's status), or a sentence. None: not an agent."""
    blocks: list[Block] = [{"type": "header", "text": plain("Your open invitations", 150)}]
    if items is None:
        blocks = [{"type": "section", "text": plain(NOT_AN_AGENT)}]
    elif not items:
        blocks.append({"type": "section", "text": plain(NOTHING_OPEN)})
    else:
        for invite, loop_status in items[:MAX_SHOWN]:
            blocks.extend(_item(invite, loop_status))
    return {"type": "home", "blocks": blocks}


def register(bolt: AsyncApp, invitations: Invitations) -> None:
    """`app_home_opened` → `views.publish`; the Home tab's link buttons are acked (Slack opens the URL)."""

    @bolt.event("app_home_opened")
    async def handle_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user = str(event.get("user") or "")
        if not user or event.get("tab", "home") != "home":
            return
        try:
            agent = await invitations.agent_at("slack", user)  # an unconfirmed account sees nothing
            if agent is None or not agent.active:
                view = home_view(None)
            else:
                opens = await invitations.newest_open_for(agent, MAX_SHOWN)
                view = home_view([(invite, row.loop_status) for row, invite in opens])
            await client.views_publish(user_id=user, view=view)
        except Exception as exc:
            log.warning("slack home failed: %s", type(exc).__name__)

    @bolt.action(HOME_LINK_ACTION)
    async def handle_home_link(ack: Any) -> None:
        await ack()  # a link button: Slack opens the signed page; nothing to record
