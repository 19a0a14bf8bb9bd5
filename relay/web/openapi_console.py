"""The console's paths in the OpenAPI document: HTML pages and form posts (CONTRACT section 11).

A page opened without a session answers 303 to `/console/sign-in`; a form posted without the
session's CSRF token (in the `csrf` field) answers a 403 page. Pages answer their errors as
HTML, and as the contract's JSON to a client that asks for JSON only.
"""

from __future__ import annotations

from typing import Any

from relay.web.openapi_paths import operation, param

SESSION = "The console's signed session cookie (care_relay_console, 8 hours) is required."
FORM: dict[str, Any] = {
    "application/x-www-form-urlencoded": {
        "schema": {
            "type": "object",
            "properties": {"csrf": {"type": "string", "description": "the session's CSRF token, on every form"}},
            "additionalProperties": {"type": "string"},
        }
    }
}
SEE_OTHER = {
    "description": "done (or, without a session, to sign-in): on to the next page",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _page(
    summary: str, *, parameters: list[dict[str, Any]] | None = None, errors: tuple[int, ...] = ()
) -> dict[str, Any]:
    return operation(
        f"{summary}. {SESSION}",
        {200: _html("the page"), 303: SEE_OTHER},
        errors,
        parameters=parameters,
        pages=True,
    )


def _action(
    summary: str, *, parameters: list[dict[str, Any]] | None = None, errors: tuple[int, ...] = ()
) -> dict[str, Any]:
    """A form post: 303 on, the form again with what to fix (4xx), or a 403 page without the CSRF token."""
    return operation(
        f"{summary}. {SESSION} A post without its CSRF token is refused (403).",
        {303: SEE_OTHER},
        (403, *errors),
        body=FORM,
        parameters=parameters,
        pages=True,
    )


def console() -> dict[str, Any]:
    agent = [param("agent_id", "path", "the agent's id")]
    paging = [param("before", "query", "the row id the next (older) page starts before")]
    loop = [param("source", "path", "m3 or aisha"), param("event_id", "path", "the event id")]
    return {
        "/console": {
            "get": _page(
                "Loops, newest first (the open ones unless another filter is chosen)",
                parameters=[param("status", "query", "open (default), all, or one loop status"), *paging],
            )
        },
        "/console/sign-in": {
            "get": operation(
                "The sign-in form (signed in already: on to `next`)",
                {200: _html("the form, with a new session's CSRF token"), 303: SEE_OTHER},
                (),
                parameters=[
                    param("next", "query", "the console page to go to after sign-in"),
                    param("once", "query", "dev mode: the banner's one-time sign-in token"),
                ],
                pages=True,
            ),
            "post": operation(
                "Sign in with an admin token (RELAY_ADMINS: that name; RELAY_ADMIN_TOKENS: admin)",
                {303: SEE_OTHER},
                (403,),
                body=FORM,
                pages=True,
            ),
        },
        "/console/sign-out": {
            "post": _action(
                "Sign out: the session ends on every replica, and a copy of its cookie opens nothing afterwards"
                " (the admin's other sessions stay signed in)"
            )
        },
        "/console/loops/{source}/{event_id}": {
            "get": _page(
                "One loop's timeline: received, decision and gates, joined signals, invitations (who asked) and"
                " delivery, answers, done; the invite-now form while it is not done",
                parameters=loop,
                errors=(404,),
            )
        },
        "/console/loops/{source}/{event_id}/invite": {
            "post": operation(
                "Invite now: the ticked agents (`agents`, once per box), by the signed-in admin, through the"
                " service the admin API's invite runs. The loop's page with who was invited (and on which"
                " channel) and who held an invitation already, or why nobody was: 400 (each refused agent and"
                " why), 409 `consent_required` or `already_done`, 422 (no agent ticked). "
                + SESSION
                + " A post without its CSRF token is refused (403).",
                {200: _html("the loop's page with the answer")},
                (400, 403, 404, 409, 422),
                body=FORM,
                parameters=loop,
                pages=True,
            )
        },
        "/console/agents": {
            "get": _page("The directory (numbers redacted), with each address's confirmation"),
            "post": _action("Add an agent (the form again with what to fix when refused)", errors=(422,)),
        },
        "/console/agents/new": {"get": _page("The form for a new agent")},
        "/console/agents/{agent_id}/edit": {
            "get": _page("An agent's edit form: the one page with full numbers", parameters=agent, errors=(404,)),
            "post": _action("Save an agent", parameters=agent, errors=(404, 422)),
        },
        "/console/agents/{agent_id}/active": {
            "post": _action("Deactivate an agent, or make them active again", parameters=agent, errors=(404,))
        },
        "/console/agents/{agent_id}/away": {
            "post": _action(
                "Set an agent away (`away=true`) or back (`away=false`), the signed-in admin's instruction",
                parameters=agent,
                errors=(404,),
            )
        },
        "/console/agents/{agent_id}/verify": {
            "post": _action("Send a new join code to an unconfirmed address", parameters=agent, errors=(404,))
        },
        "/console/consent": {
            "get": _page("Grants in force, the grant form, expired and revoked grants (who and when)"),
            "post": _action("Grant consent, by the signed-in admin", errors=(422,)),
        },
        "/console/consent/{grant_id}/revoke": {
            "post": _action(
                "Revoke a grant, by the signed-in admin",
                parameters=[param("grant_id", "path", "the grant's id")],
                errors=(404,),
            )
        },
        "/console/deliveries": {
            "get": _page(
                "Failed, pending and sending outbox rows, newest first",
                parameters=[
                    param("status", "query", "failed, pending or sending"),
                    param("kind", "query", ""),
                    *paging,
                ],
            )
        },
        "/console/deliveries/{outbox_id}/retry": {
            "post": _action(
                "Retry a failed delivery, by the signed-in admin",
                parameters=[param("outbox_id", "path", "an outbox row id")],
                errors=(404, 409),
            )
        },
        "/console/audit": {
            "get": _page("The audit trail, newest first", parameters=[param("kind", "query", "one kind"), *paging])
        },
    }
