"""The OpenAPI 3.1 document of the HTTP API (`GET /openapi.json`), and the script that writes it.

`python -m relay.web.openapi` regenerates `relay/web/openapi.json` (a test holds the committed
file to what this produces). Every route of `relay.web.routes` and the channels' provider
callbacks is here, with every status it answers and the error codes of each; the calls the
relay makes (callbacks to senders, the PR8 forward) are under `webhooks`.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.web.openapi_console import console
from relay.web.openapi_paths import ADMIN, admin, hooks, json_answer, operation, param, people
from relay.web.openapi_schemas import ERROR_CODES, error_response, ref, schemas

FILE = "openapi.json"


def _webhooks() -> dict[str, Any]:
    """What the relay sends: callbacks to senders and the PR8 forward, each through the outbox."""

    def call(summary: str, schema: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "parameters": [param(h, "header", d) | {"required": True} for h, d in headers.items()],
                "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                "responses": {
                    "2XX": {"description": "received; not sent again"},
                    "410": {"description": "gone: this call fails at once and is not retried"},
                    "default": {
                        "description": "retried on its schedule, then marked failed (visible in /admin/outbox)"
                    },
                },
            }
        }

    pr8 = {"X-AISHA-SIGNATURE": "hex HMAC_SHA256(secret, raw_body)", "X-AISHA-EVENT-ID": "the body's event_id"}
    return {
        "m3Callback": call(
            "care.ack / care.done to M3_CALLBACK_URL",
            ref("M3Callback"),
            {"X-M3-Event": "the body's type", "X-M3-Signature": "m3=t=<ts>,v1=<hex>"},
        ),
        "aishaCallback": call("care.ack / care.done to AISHA_CALLBACK_URL", ref("AishaCallback"), pr8),
        "workflowForward": call(
            "An accepted care.escalation_detected, byte for byte, to CARE_WORKFLOW_ESCALATION_WEBHOOK_URL",
            ref("EscalationDetected"),
            pr8,
        ),
    }


def _operations() -> dict[str, Any]:
    health = ref("Health")
    return {
        "/healthz": {"get": operation("Liveness: the process answers", {200: json_answer(health, "alive")}, ())},
        "/readyz": {
            "get": operation(
                "Readiness: the database is reachable and migrated", {200: json_answer(health, "ready")}, ()
            )
        },
        "/openapi.json": {"get": operation("This document", {200: json_answer({"type": "object"}, "OpenAPI 3.1")}, ())},
        "/metrics": {
            "get": operation(
                "Prometheus metrics (text exposition format); bearer RELAY_METRICS_TOKENS or an admin token",
                {200: {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                (401, 403),
                security=ADMIN,
            )
        },
        **hooks(),
        **people(),
        **admin(),
        **console(),
    }


def _version() -> str:
    try:
        return metadata.version("care-relay")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "0.0.0"


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    ready_503 = json_answer({"oneOf": [ref("NotReady"), ref("Error")]}, "not ready (Retry-After)")
    paths = _operations()
    paths["/readyz"]["get"]["responses"]["503"] = ready_503
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "care-relay",
            "version": _version(),
            "summary": "Signed care signals in; soft invitations to internal agents; callbacks to senders.",
        },
        "paths": paths,
        "webhooks": _webhooks(),
        "components": {
            "schemas": schemas(),
            "responses": {f"E{status}": error_response(status) for status in ERROR_CODES},
            "securitySchemes": {
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "RELAY_ADMIN_TOKENS or RELAY_ADMINS",
                },
                "statusToken": {"type": "apiKey", "in": "query", "name": "token"},
                "m3Signature": {"type": "apiKey", "in": "header", "name": "X-M3-Signature"},
                "aishaSignature": {"type": "apiKey", "in": "header", "name": "X-AISHA-SIGNATURE"},
                "slackSignature": {"type": "apiKey", "in": "header", "name": "X-Slack-Signature"},
                "twilioSignature": {"type": "apiKey", "in": "header", "name": "X-Twilio-Signature"},
            },
        },
    }


def render() -> str:
    """The document as it is kept in the repository (stable key order, one trailing newline)."""
    return json.dumps(document(), indent=1, ensure_ascii=False) + "\n"


async def handle_openapi(request: web.Request) -> web.Response:
    """`GET /openapi.json`: the committed document, as shipped with the package."""
    text = resources.files("relay.web").joinpath(FILE).read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/json")


def main() -> int:
    """Write the document beside this module (or to the path given)."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(FILE)
    target.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
