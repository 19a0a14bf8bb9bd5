"""The paths of the OpenAPI document: every route, its parameters, bodies, answers and error statuses."""

from __future__ import annotations

from typing import Any

from receivers import SENDERS
from relay.deliveries import OUTBOX_KINDS, OUTBOX_STATUSES
from relay.model import LOOP_STATUSES
from relay.web.openapi_schemas import error_response, ref

ADMIN: list[dict[str, list[str]]] = [{"adminBearer": []}]
#: what any request may meet before a handler: a malformed request, too many connections, storage down
ALWAYS = (400, 429, 503)
#: what any request with a body may meet besides: a body too slow, too large or of the wrong type
WITH_BODY = (408, 413, 415)
HOOK_HEADERS = {
    "m3": {"X-M3-Signature": "m3=t=<ts>,v1=<hex>", "X-M3-Event": "the body's type"},
    "aisha": {
        "X-AISHA-SIGNATURE": "sha256=<hex> (the prefix optional)",
        "X-AISHA-TIMESTAMP": "<ts>; absent when the body itself is signed (the PR8 form)",
        "X-AISHA-EVENT-ID": "the body's event_id",
    },
}
HOOK_MODELS = {"m3": ("PanicUi", "StatusSet"), "aisha": ("EscalationDetected", "TriggerDetected", "StateApplied")}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _status_answer() -> dict[str, Any]:
    """The loop as JSON for API clients, and as a page for a browser that asks for text/html."""
    answer = json_answer(ref("EventStatus"), "the loop (JSON; a page when the client asks for text/html)")
    answer["content"]["text/html"] = {"schema": {"type": "string"}}
    return answer


def operation(
    summary: str,
    answers: dict[int, dict[str, Any]],
    errors: tuple[int, ...],
    *,
    body: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    pages: bool = False,
) -> dict[str, Any]:
    """One operation; `errors` are the statuses of the contract's error JSON (pages answer them as HTML too)."""
    statuses = sorted({*errors, *ALWAYS, *(WITH_BODY if body else ())})
    responses: dict[str, Any] = {str(code): answer for code, answer in answers.items()}
    for status in statuses:
        if pages:
            page = error_response(status)
            page["content"]["text/html"] = {"schema": {"type": "string"}}
            responses[str(status)] = page
        else:
            responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if security is not None:
        op["security"] = security
    return op


def param(name: str, where: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _listed(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "description": "one or several, comma-separated: " + ", ".join(values)}


#: what every `by` says of a RELAY_ADMINS token
NAMED_BY = "; a RELAY_ADMINS token names its admin, who is recorded: leave it out, as another name is 400"

PAGING = [
    param("cursor", "query", "next_cursor of the previous page"),
    param("limit", "query", "1 to 200 (default 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
]


def hooks() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name in SENDERS:
        models = [ref(m) for m in HOOK_MODELS[name]]
        headers = [param(h, "header", d) for h, d in HOOK_HEADERS[name].items()]
        paths[f"/hooks/{name}"] = {
            "post": operation(
                f"A signed {name} signal: verified on the raw bytes, decided, committed, then answered",
                {
                    202: json_answer(ref("Accepted"), "committed: the signal, its decision and its queued invitations"),
                    200: json_answer(ref("Accepted"), "a replay of the same id and bytes (duplicate: true)"),
                },
                (401, 409, 422),
                body={"application/json": {"schema": {"oneOf": models}}},
                security=[{f"{name}Signature": []}],
                parameters=headers,
            )
        }
    return paths


def admin() -> dict[str, Any]:
    agent_id = [param("agent_id", "path", "the agent's id")]
    denied = (401, 403)
    by = [param("by", "query", f"who acts (kept in the audit trail){NAMED_BY}")]
    return {
        "/admin/agents": {
            "get": operation(
                "The directory", {200: json_answer(ref("AgentList"), "every agent")}, denied, security=ADMIN
            ),
            "post": operation(
                "Add an agent",
                {201: json_answer(ref("Agent"), "the new agent")},
                (*denied, 422),
                body={"application/json": {"schema": ref("AgentIn")}},
                security=ADMIN,
            ),
        },
        "/admin/agents/{agent_id}": {
            "get": operation(
                "One agent",
                {200: json_answer(ref("Agent"), "the agent")},
                (*denied, 404),
                security=ADMIN,
                parameters=agent_id,
            ),
            "patch": operation(
                "Change an agent (any subset of the fields)",
                {200: json_answer(ref("Agent"), "the agent as changed")},
                (*denied, 404, 422),
                body={"application/json": {"schema": ref("AgentFields")}},
                security=ADMIN,
                parameters=[
                    *agent_id,
                    param("by", "query", f"who sets the agent away or back (audited; default admin){NAMED_BY}"),
                ],
            ),
            "delete": operation(
                "Remove an agent (the id stays taken)",
                {204: {"description": "removed"}},
                (*denied, 404),
                security=ADMIN,
                parameters=agent_id,
            ),
        },
        "/admin/agents/{agent_id}/verify": {
            "post": operation(
                "Send a new join code to the agent's unconfirmed addresses (or to one channel's)",
                {202: json_answer(ref("Verifying"), "the channels a code was sent on, and every address's state")},
                (*denied, 400, 404),
                body={"application/json": {"schema": ref("VerifyIn")}},
                security=ADMIN,
                parameters=agent_id,
            )
        },
        "/admin/consents": {
            "get": operation(
                "Consent grants",
                {200: json_answer(ref("GrantList"), "grants, revoked ones included")},
                denied,
                security=ADMIN,
                parameters=[param("subject", "query", "actor:<id> or tenant:<uuid>")],
            ),
            "post": operation(
                "Grant consent",
                {201: json_answer(ref("Grant"), "the new grant")},
                (*denied, 422),
                body={"application/json": {"schema": ref("GrantIn")}},
                security=ADMIN,
            ),
        },
        "/admin/consents/{grant_id}": {
            "delete": operation(
                "Revoke a grant (recorded, not erased)",
                {204: {"description": "revoked"}},
                (*denied, 404),
                security=ADMIN,
                parameters=[param("grant_id", "path", "the grant's id"), *by],
            )
        },
        "/admin/inbox": {
            "get": operation(
                "The loops, newest first",
                {200: json_answer(ref("LoopList"), "one page of loops")},
                denied,
                security=ADMIN,
                parameters=[param("status", "query", "", _listed(LOOP_STATUSES)), *PAGING],
            )
        },
        "/admin/events/{event_id}/invite": {
            "post": operation(
                "Invite named agents for a loop not done, now: a person's instruction (consent and the"
                " directory still decide; the kill switch, shadow mode, the care window and the hourly limit do not)",
                {202: json_answer(ref("Invited"), "who was invited on which channel, and who already was")},
                (*denied, 404, 409, 422),
                body={"application/json": {"schema": ref("InviteIn")}},
                security=ADMIN,
                parameters=[
                    param("event_id", "path", "the signal's event id"),
                    param(
                        "source", "query", "m3 or aisha, where two sources used the same id", {"enum": list(SENDERS)}
                    ),
                ],
            )
        },
        "/admin/audit": {
            "get": operation(
                "The audit trail, newest first",
                {200: json_answer(ref("AuditList"), "one page")},
                denied,
                security=ADMIN,
                parameters=PAGING,
            )
        },
        "/admin/outbox": {
            "get": operation(
                "Work not yet done: pending, sending and failed rows",
                {200: json_answer(ref("OutboxList"), "one page")},
                denied,
                security=ADMIN,
                parameters=[
                    param("status", "query", "", _listed(OUTBOX_STATUSES)),
                    param("kind", "query", "", _listed(OUTBOX_KINDS)),
                    *PAGING,
                ],
            )
        },
        "/admin/outbox/{outbox_id}/retry": {
            "post": operation(
                "Make a failed row due now with a fresh attempt budget",
                {202: json_answer(ref("OutboxRow"), "the row, due now")},
                (*denied, 404, 409),
                security=ADMIN,
                parameters=[param("outbox_id", "path", "an id from the listing"), *by],
            )
        },
    }


def people() -> dict[str, Any]:
    """What people and providers call: status reads, action links, Slack and Twilio callbacks."""
    token = [param("token", "path", "the signed token of an action link")]
    form = {
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}
    }
    twilio: list[dict[str, list[str]]] = [{"twilioSignature": []}]
    return {
        "/v1/events/{event_id}": {
            "get": operation(
                "A loop's status, for its sender (status token) or an admin; a browser (Accept: text/html)"
                " gets a calm page for the person in need",
                {200: _status_answer()},
                (401, 403, 404),
                security=[{"statusToken": []}, *ADMIN],
                parameters=[
                    param("event_id", "path", "the event id"),
                    param("token", "query", "the status token from the 202's status_url"),
                    param("source", "query", "where two sources used the same id", {"enum": list(SENDERS)}),
                    param("lang", "query", "the page's language (en, ro); else Accept-Language, else en"),
                ],
            )
        },
        "/a/{token}": {
            "get": operation(
                "The invitation page (changes nothing: link previews must not ack)",
                {200: _html("the invitation and its answers")},
                (403, 404, 410),
                parameters=token,
                pages=True,
            ),
            "post": operation(
                "An agent's answer from the page: ack with a response, done with outcome and note, pass"
                " (not now), or ask (another agent to invite)",
                {200: _html("what was recorded")},
                (403, 404, 409, 410),
                body={"application/x-www-form-urlencoded": {"schema": ref("LinkAnswer")}},
                parameters=token,
                pages=True,
            ),
        },
        "/c/{token}": {
            "get": operation(
                "The actor's own consent page for a pending_consent signal (changes nothing)",
                {200: _html("the question, or 'Stop inviting my circle'")},
                (400, 403, 404, 410),
                parameters=token,
                pages=True,
            ),
            "post": operation(
                "The actor's yes (a grant, and the signal decided again) or stop (their grants revoked)",
                {200: _html("what was recorded")},
                (400, 403, 404, 410, 413, 415),
                body={"application/x-www-form-urlencoded": {"schema": ref("ConsentAnswer")}},
                parameters=token,
                pages=True,
            ),
        },
        "/slack/events": {
            "post": operation(
                "Slack's interactivity and events (mounted when Slack is configured)",
                {200: {"description": "acknowledged to Slack"}},
                (401, 404),
                body={
                    "application/x-www-form-urlencoded": form["application/x-www-form-urlencoded"],
                    "application/json": {},
                },
                security=[{"slackSignature": []}],
            )
        },
        "/hooks/twilio/inbound": {
            "post": operation(
                "An SMS or WhatsApp reply (mounted when Twilio is configured); answers TwiML",
                {200: {"description": "TwiML", "content": {"application/xml": {"schema": {"type": "string"}}}}},
                (403,),
                body=form,
                security=twilio,
            )
        },
        "/hooks/twilio/status": {
            "post": operation(
                "A delivery status from Twilio (mounted when Twilio is configured)",
                {200: {"description": "recorded"}, 204: {"description": "recorded"}},
                (403,),
                body=form,
                security=twilio,
            )
        },
    }
