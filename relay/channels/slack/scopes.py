"""What the Slack app must be granted: each Web API method the relay calls, with the bot scopes it needs.

`deploy/slack-app-manifest.yaml` asks for exactly these (tests/test_deploy.py holds it to
that, against the methods the fake Slack saw the relay call). Scopes from Slack's method
reference; `views.*` and `auth.test` need none.
"""

from __future__ import annotations

__all__ = ["APP_TOKEN_SCOPES", "BOT_EVENTS", "COMMAND_SCOPES", "METHOD_SCOPES", "bot_scopes"]

METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),  # Bolt asks who the bot is before its first listener runs
    "conversations.open": ("im:write",),  # the invitation's DM
    "chat.postMessage": ("chat:write",),  # the invitation
    "chat.update": ("chat:write",),  # the invitation after an answer
    "chat.postEphemeral": ("chat:write",),  # a refusal only the presser sees
    "views.open": (),  # the close modal
    "views.publish": (),  # the App Home tab
    # `agent add --slack-email`; Slack grants users:read.email only beside users:read
    "users.lookupByEmail": ("users:read", "users:read.email"),
}
#: the slash command /care
COMMAND_SCOPES = ("commands",)
#: bot events the app subscribes to
BOT_EVENTS = ("app_home_opened",)
#: the app-level token of Socket Mode (SLACK_APP_TOKEN) opens connections only
APP_TOKEN_SCOPES = ("connections:write",)


def bot_scopes(methods: set[str] | frozenset[str] | None = None) -> set[str]:
    """The bot scopes these methods need (all the relay calls, by default), and /care's."""
    wanted = METHOD_SCOPES if methods is None else {m: METHOD_SCOPES[m] for m in methods}
    return {scope for scopes in wanted.values() for scope in scopes} | set(COMMAND_SCOPES)
