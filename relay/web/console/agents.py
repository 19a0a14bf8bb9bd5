"""Agents: the directory (numbers redacted), adding, editing (the one page with full numbers),
deactivating and reactivating, setting away and back, and resending a join code.

Every change goes through `relay.directory.Directory`, as the admin API's and the CLI's do,
so the same forms validate it and the same rules (an id is never reused, an address is one
person's, a changed address is asked again) hold. A refusal is shown on the form, with what
was typed kept.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from relay.errors import RelayError
from relay.keys import DIRECTORY, SETTINGS
from relay.redact import redact
from relay.web.console.base import console_page, redirect, render, signed_in, with_query

#: the text fields of the agent form, in the contract's names
TEXT_FIELDS = ("display", "slack_user", "phone", "whatsapp", "quiet_hours", "tz")
LIST_FIELDS = ("groups", "channels")


def refusal_lines(error: RelayError) -> list[str]:
    """A service's refusal as lines a person reads: the detail, or each field and what to fix."""
    fields = error.extra.get("fields")
    if not isinstance(fields, list) or not fields:
        return [error.detail]
    lines = []
    for field in fields:
        where = ".".join(str(part) for part in field.get("loc", [])) or "form"
        lines.append(f"{where.replace('_', ' ')}: {field.get('msg', 'not valid')}")
    return lines


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def agent_fields(form: dict[str, str], *, new: bool) -> dict[str, Any]:
    """The form as the admin API's body: a new agent names what it has; an edit sets every field
    (an emptied one is cleared, as JSON null clears it)."""
    data: dict[str, Any] = {}
    if new:
        data["id"] = form.get("id", "").strip()
    for name in TEXT_FIELDS:
        value = form.get(name, "").strip()
        if value or not new:
            data[name] = value or None
    for name in LIST_FIELDS:
        values = _listed(form.get(name, ""))
        if values or not new:
            data[name] = values
    return data


def typed(form: dict[str, str]) -> dict[str, str]:
    """What the person typed, to show again on the form."""
    return {name: form.get(name, "") for name in ("id", *TEXT_FIELDS, *LIST_FIELDS)}


def as_form(agent: dict[str, Any]) -> dict[str, str]:
    """An agent's values in the form's fields (lists comma-separated)."""
    values = {name: agent.get(name) or "" for name in TEXT_FIELDS}
    values |= {name: ", ".join(agent.get(name) or []) for name in LIST_FIELDS}
    return values | {"id": agent["id"]}


def listed(agent: dict[str, Any]) -> dict[str, Any]:
    """An agent as the list shows it: numbers redacted."""
    return agent | {"phone": redact(agent.get("phone")), "whatsapp": redact(agent.get("whatsapp"))}


def _agent_form(
    request: web.Request,
    *,
    agent: dict[str, Any] | None,
    values: dict[str, str],
    problems: list[str] | None = None,
    status: int = 200,
) -> web.Response:
    settings = request.app[SETTINGS]
    return render(
        request,
        "agent.html",
        status=status,
        title=f"Edit {agent['display']}" if agent else "Add an agent",
        section="agents",
        agent=agent,
        values=values,
        problems=problems or [],
        verifying=settings.relay_verify_addresses,
        channels=sorted(settings.configured_channels),
    )


@console_page
async def handle_agents(request: web.Request) -> web.Response:
    """The directory: each agent's groups, channels, addresses (redacted) and whether their owners confirmed them."""
    agents = [listed(agent) for agent in await request.app[DIRECTORY].agents()]
    return render(
        request,
        "agents.html",
        title="Agents",
        section="agents",
        agents=agents,
        verifying=request.app[SETTINGS].relay_verify_addresses,
    )


@console_page
async def handle_new_agent(request: web.Request) -> web.Response:
    """The form for a new agent."""
    return _agent_form(request, agent=None, values=typed({}))


@console_page
async def handle_add_agent(request: web.Request) -> web.Response:
    """Add an agent (Directory.add_agent); the form again with what to fix when refused."""
    form = signed_in(request).form
    try:
        added = await request.app[DIRECTORY].add_agent(agent_fields(form, new=True))
    except RelayError as error:
        return _agent_form(request, agent=None, values=typed(form), problems=refusal_lines(error), status=error.status)
    return redirect(with_query("/console/agents", notice="agent-added") + f"#agent-{added['id']}")


@console_page
async def handle_agent(request: web.Request) -> web.Response:
    """An agent's edit form, with their full numbers, and their addresses' confirmation."""
    agent = await request.app[DIRECTORY].agent(request.match_info["agent_id"])
    return _agent_form(request, agent=agent, values=as_form(agent))


@console_page
async def handle_edit_agent(request: web.Request) -> web.Response:
    """Save the edit form (Directory.patch_agent); the form again with what to fix when refused."""
    directory = request.app[DIRECTORY]
    agent_id = request.match_info["agent_id"]
    agent = await directory.agent(agent_id)
    form = signed_in(request).form
    try:
        await directory.patch_agent(agent_id, agent_fields(form, new=False))
    except RelayError as error:
        values = typed(form) | {"id": agent_id}
        return _agent_form(request, agent=agent, values=values, problems=refusal_lines(error), status=error.status)
    return redirect(with_query("/console/agents", notice="agent-saved") + f"#agent-{agent_id}")


@console_page
async def handle_agent_active(request: web.Request) -> web.Response:
    """Deactivate an agent (nobody invites them, their links stop answering) or make them active again."""
    agent_id = request.match_info["agent_id"]
    active = signed_in(request).form.get("active") == "true"
    await request.app[DIRECTORY].patch_agent(agent_id, {"active": active})
    notice = "agent-active" if active else "agent-inactive"
    return redirect(with_query("/console/agents", notice=notice) + f"#agent-{agent_id}")


@console_page
async def handle_agent_away(request: web.Request) -> web.Response:
    """Set an agent away (routing passes them over until they are back) or back: Directory.set_away,
    the signed-in admin's instruction, audited as the admin API's PATCH `away` is."""
    agent_id = request.match_info["agent_id"]
    who = signed_in(request)
    away = who.form.get("away") == "true"
    word = "away" if away else "back"
    await request.app[DIRECTORY].set_away(
        agent_id, away, instruction=f"{who.name} set {agent_id} {word}", via="console"
    )
    return redirect(with_query(f"/console/agents/{agent_id}/edit", notice=f"agent-{word}"))


@console_page
async def handle_verify_agent(request: web.Request) -> web.Response:
    """Send a new join code (Directory.verify) to one address, or to every unconfirmed one."""
    directory = request.app[DIRECTORY]
    agent_id = request.match_info["agent_id"]
    channel = signed_in(request).form.get("channel") or None
    try:
        await directory.verify(agent_id, channel)
    except RelayError as error:
        agent = await directory.agent(agent_id)
        return _agent_form(
            request, agent=agent, values=as_form(agent), problems=refusal_lines(error), status=error.status
        )
    return redirect(with_query(f"/console/agents/{agent_id}/edit", notice="code-sent"))
