"""Consent: the grants in force, granting one, revoking one, and the revoked ones with who and when.

Granting and revoking go through `relay.directory.Directory` with the signed-in name as
`by`, as the admin API and the CLI do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from relay.errors import RelayError
from relay.forms import CHANNELS, EVENT_TYPES
from relay.keys import CLOCK, DIRECTORY
from relay.web.console.agents import refusal_lines
from relay.web.console.base import console_page, redirect, render, signed_in, with_query

FIELDS = ("subject", "scope", "groups", "channels", "min_confidence", "expires_at")


def _expired(grant: dict[str, Any], now: datetime) -> bool:
    expires = grant.get("expires_at")
    return bool(expires) and datetime.fromisoformat(str(expires).replace("Z", "+00:00")) <= now


def grant_fields(form: dict[str, str], by: str) -> dict[str, Any]:
    """The form as the admin API's body; checkboxes arrive comma-joined."""
    data: dict[str, Any] = {
        "subject": form.get("subject", "").strip(),
        "scope": [s for s in form.get("scope", "").split(",") if s.strip()],
        "groups": [g.strip() for g in form.get("groups", "").split(",") if g.strip()],
        "channels": [c for c in form.get("channels", "").split(",") if c.strip()],
        "by": by,
    }
    if form.get("min_confidence", "").strip():
        data["min_confidence"] = form["min_confidence"].strip()
    if form.get("expires_at", "").strip():
        data["expires_at"] = form["expires_at"].strip()  # a datetime-local value, read as UTC
    return data


async def _page(
    request: web.Request, *, values: dict[str, str] | None = None, problems: list[str] | None = None, status: int = 200
) -> web.Response:
    grants = await request.app[DIRECTORY].grants()
    now = datetime.fromtimestamp(request.app[CLOCK](), UTC)
    live = [g for g in grants if not g["revoked_at"] and not _expired(g, now)]
    expired = [g for g in grants if not g["revoked_at"] and _expired(g, now)]
    revoked = sorted((g for g in grants if g["revoked_at"]), key=lambda g: str(g["revoked_at"]), reverse=True)
    return render(
        request,
        "consent.html",
        status=status,
        title="Consent",
        section="consent",
        live=live,
        expired=expired,
        revoked=revoked,
        event_types=EVENT_TYPES,
        channel_names=CHANNELS,
        values={name: "" for name in FIELDS} | (values or {}),
        problems=problems or [],
    )


@console_page
async def handle_consent(request: web.Request) -> web.Response:
    """The grants in force, the form to grant one, the expired and the revoked grants."""
    return await _page(request)


@console_page
async def handle_grant(request: web.Request) -> web.Response:
    """Record a grant (Directory.grant_consent) by the signed-in admin; the form again with what to fix."""
    who = signed_in(request)
    try:
        await request.app[DIRECTORY].grant_consent(grant_fields(who.form, who.name))
    except RelayError as error:
        values = {name: who.form.get(name, "") for name in FIELDS}
        return await _page(request, values=values, problems=refusal_lines(error), status=error.status)
    return redirect(with_query("/console/consent", notice="granted"))


@console_page
async def handle_revoke(request: web.Request) -> web.Response:
    """Revoke a grant (Directory.revoke_consent) by the signed-in admin: recorded, not erased."""
    await request.app[DIRECTORY].revoke_consent(request.match_info["grant_id"], signed_in(request).name)
    return redirect(with_query("/console/consent", notice="revoked"))
