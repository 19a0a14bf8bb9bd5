"""Finding a Slack user's id by their email (`users.lookupByEmail`), for `agent add --slack-email`.

The command line resolves the address before the directory is touched: the directory keeps
Slack user ids, which nobody knows by heart. Every failure is a `SlackLookupError` whose
text is one sentence an operator can act on; the bot token never appears in it.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from relay.channels.slack.send import CALL_TIMEOUT_SEC
from relay.settings import Settings

__all__ = ["SlackLookupError", "user_id_by_email"]


class SlackLookupError(Exception):
    """A one-sentence reason no Slack user id was found."""


def _base_url(url: str) -> str:
    return url if url.endswith("/") else url + "/"


async def user_id_by_email(settings: Settings, email: str, *, deadline_sec: float = CALL_TIMEOUT_SEC) -> str:
    """The id (U…/W…) of the workspace member with this email, with the bot token at SLACK_API_URL."""
    email = email.strip()
    if not email or "@" not in email or any(c.isspace() for c in email):
        raise SlackLookupError(f"{email!r} is not an email address; give it as name@example.org.")
    if not settings.slack_bot_token:
        raise SlackLookupError("Slack is not configured: set SLACK_BOT_TOKEN to look people up by email.")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline_sec)) as session:
        client = AsyncWebClient(
            token=settings.slack_bot_token,
            base_url=_base_url(settings.slack_api_url),
            timeout=int(deadline_sec),
            session=session,
        )
        try:
            async with asyncio.timeout(deadline_sec):
                answer = await client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            data = exc.response.data
            error = str(data.get("error") or "") if isinstance(data, dict) else ""
            raise SlackLookupError(_refusal(error, email, exc.response.status_code)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SlackLookupError(
                f"Slack could not be reached at {settings.slack_api_url} ({type(exc).__name__});"
                " try again, or give the id with --slack-user."
            ) from None
    user = answer.get("user")
    user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
    if not user_id:
        raise SlackLookupError("Slack answered without a user id; give the id with --slack-user.")
    return user_id


def _refusal(error: str, email: str, status: int) -> str:
    if error == "users_not_found":
        return f"No Slack user has the email {email}."
    if error == "missing_scope":
        return "The Slack bot token lacks the users:read.email scope; add it to the app and reinstall it."
    if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
        return f"Slack did not accept SLACK_BOT_TOKEN ({error}); set the bot token of the installed app."
    return f"Slack refused the lookup ({error or f'HTTP {status}'}); try again, or give the id with --slack-user."
