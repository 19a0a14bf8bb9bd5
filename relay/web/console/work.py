"""Deliveries (failed and pending outbox rows, each failed one retryable) and the audit trail, by kind.

The listings are `Deliveries.page` and `Views.audit_page`, the admin API's; free text that a
provider or a row wrote (an error, a detail) is shown with any phone number in it redacted.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from relay.deliveries import OUTBOX_KINDS, OUTBOX_STATUSES
from relay.keys import DELIVERIES, VIEWS
from relay.redact import redact_numbers
from relay.web.console.base import console_page, render
from relay.web.console.loops import PAGE_SIZE, before, loop_path, older

#: the kinds of audit rows the relay writes, offered as the filter's choices
AUDIT_KINDS = (
    "decision",
    "ack",
    "pass",
    "done",
    "refusal",
    "invite_now",
    "ask_someone_else",
    "actor_consent",
    "agent_away",
    "agent_back",
    "invitation_skipped",
    "invitation_moved",
    "outbox_retry",
    "join_code_queued",
    "address_confirmed",
    "address_not_confirmed",
    "address_unconfirmed",
    "opt_out",
    "opt_in",
)


def _chosen(request: web.Request, name: str, allowed: tuple[str, ...]) -> str:
    value = request.query.get(name, "")
    return value if value in allowed else ""


@console_page
async def handle_deliveries(request: web.Request) -> web.Response:
    """Work not yet done, newest first: failed rows (each with a retry) and pending or sending ones."""
    status = _chosen(request, "status", OUTBOX_STATUSES)
    kind = _chosen(request, "kind", OUTBOX_KINDS)
    rows = await request.app[DELIVERIES].page(
        statuses=[status] if status else [], kinds=[kind] if kind else [], before_id=before(request), limit=PAGE_SIZE
    )
    for row in rows:
        row["last_error"] = redact_numbers(row["last_error"])
    return render(
        request,
        "deliveries.html",
        title="Deliveries",
        section="deliveries",
        rows=rows,
        statuses=OUTBOX_STATUSES,
        kinds=OUTBOX_KINDS,
        chosen_status=status,
        chosen_kind=kind,
        loop_path=loop_path,
        older=older(rows, "/console/deliveries", status=status, kind=kind),
        back=request.path_qs,
    )


def _detail(detail: dict[str, Any]) -> str:
    """An audit row's detail as one line (ids and names of things; numbers redacted all the same)."""
    if not detail:
        return ""
    return redact_numbers(json.dumps(detail, ensure_ascii=False, separators=(", ", ": "))) or ""


@console_page
async def handle_audit(request: web.Request) -> web.Response:
    """The audit trail, newest first, of one kind when chosen."""
    kind = request.query.get("kind", "").strip()
    if not (kind.isprintable() and len(kind) <= 64):
        kind = ""
    rows = await request.app[VIEWS].audit_page(before_id=before(request), limit=PAGE_SIZE, kinds=[kind] if kind else [])
    for row in rows:
        row["reason"] = redact_numbers(row["reason"])
        row["detail_text"] = _detail(row["detail"])
    return render(
        request,
        "audit.html",
        title="Audit",
        section="audit",
        rows=rows,
        kinds=AUDIT_KINDS,
        kind=kind,
        loop_path=loop_path,
        older=older(rows, "/console/audit", kind=kind),
    )
