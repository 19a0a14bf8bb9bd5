"""Every URL the relay answers, on one screen.

The channels' provider callbacks (`POST /slack/events`, `POST /hooks/twilio/inbound`,
`POST /hooks/twilio/status`) are mounted by the channel registry, for the channels a
configuration enables.
"""

from __future__ import annotations

from aiohttp import web

from receivers import SENDERS
from relay.web import admin, health, hooks, links, metrics, openapi, status
from relay.web import consent as actor_consent
from relay.web.console import agents, consent, loops, signin, work


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", health.handle_healthz)
    r.add_get("/readyz", health.handle_readyz)
    # this API, described (relay/web/openapi.json, written by `python -m relay.web.openapi`)
    r.add_get("/openapi.json", openapi.handle_openapi)
    r.add_get("/metrics", metrics.handle_metrics)
    # senders: POST /hooks/m3, POST /hooks/aisha (one per entry in receivers.SENDERS)
    for name, sender in SENDERS.items():
        r.add_post(f"/hooks/{name}", hooks.handler_for(sender))
    r.add_get("/v1/events/{event_id}", status.handle_event_status)
    # action links: the page an invitation links to, and its answer
    r.add_get("/a/{token}", links.handle_link_page)
    r.add_post("/a/{token}", links.handle_link_answer)
    # the actor's own consent page (CONTRACT section 10): the question, its yes, "stop inviting my circle"
    r.add_get("/c/{token}", actor_consent.handle_consent_page)
    r.add_post("/c/{token}", actor_consent.handle_consent_answer)
    # the directory, consent, the inbox and the audit trail (bearer tokens)
    r.add_get("/admin/agents", admin.handle_list_agents)
    r.add_post("/admin/agents", admin.handle_create_agent)
    r.add_get("/admin/agents/{agent_id}", admin.handle_get_agent)
    r.add_patch("/admin/agents/{agent_id}", admin.handle_patch_agent)
    r.add_delete("/admin/agents/{agent_id}", admin.handle_delete_agent)
    r.add_post("/admin/agents/{agent_id}/verify", admin.handle_verify_agent)
    r.add_get("/admin/consents", admin.handle_list_consents)
    r.add_post("/admin/consents", admin.handle_create_consent)
    r.add_delete("/admin/consents/{grant_id}", admin.handle_revoke_consent)
    r.add_get("/admin/inbox", admin.handle_inbox)
    # a person's instruction about a loop: invite named agents now
    r.add_post("/admin/events/{event_id}/invite", admin.handle_invite_now)
    r.add_get("/admin/audit", admin.handle_audit)
    # failed work, visible and redoable
    r.add_get("/admin/outbox", admin.handle_outbox)
    r.add_post("/admin/outbox/{outbox_id}/retry", admin.handle_outbox_retry)
    # the web console (a signed session cookie; every form CSRF-checked)
    r.add_get("/console", loops.handle_loops)
    r.add_get("/console/sign-in", signin.handle_sign_in_page)
    r.add_post("/console/sign-in", signin.handle_sign_in)
    r.add_post("/console/sign-out", signin.handle_sign_out)
    r.add_get("/console/loops/{source}/{event_id}", loops.handle_loop)
    r.add_post("/console/loops/{source}/{event_id}/invite", loops.handle_invite_now)
    r.add_get("/console/agents", agents.handle_agents)
    r.add_post("/console/agents", agents.handle_add_agent)
    r.add_get("/console/agents/new", agents.handle_new_agent)
    r.add_get("/console/agents/{agent_id}/edit", agents.handle_agent)
    r.add_post("/console/agents/{agent_id}/edit", agents.handle_edit_agent)
    r.add_post("/console/agents/{agent_id}/active", agents.handle_agent_active)
    r.add_post("/console/agents/{agent_id}/away", agents.handle_agent_away)
    r.add_post("/console/agents/{agent_id}/verify", agents.handle_verify_agent)
    r.add_get("/console/consent", consent.handle_consent)
    r.add_post("/console/consent", consent.handle_grant)
    r.add_post("/console/consent/{grant_id}/revoke", consent.handle_revoke)
    r.add_get("/console/deliveries", work.handle_deliveries)
    r.add_post("/console/deliveries/{outbox_id}/retry", loops.handle_retry)
    r.add_get("/console/audit", work.handle_audit)
