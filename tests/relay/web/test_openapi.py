"""The OpenAPI document: committed as generated, served, complete, and true of the running relay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relay.app import create_app
from relay.web import openapi
from tests.support import ADMIN_TOKEN, ServerThread, make_settings, signed

COMMITTED = Path(openapi.__file__).with_name(openapi.FILE)
DOCUMENT: dict[str, Any] = json.loads(COMMITTED.read_text(encoding="utf-8"))
CONFIGURED = {
    # Slack and Twilio configured, so their routes are mounted (never reached: nothing unsigned gets past them)
    "slack_bot_token": "xoxb-openapi",
    "slack_signing_secret": "openapi-signing-secret",
    "slack_api_url": "http://127.0.0.1:9/api/",
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "openapi-auth-token",
    "twilio_sms_from": "+15005550006",
    "twilio_api_base_url": "http://127.0.0.1:9",
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_committed_document_is_what_the_generator_writes() -> None:
    """relay/web/openapi.json equals `python -m relay.web.openapi`'s output (regenerate it when this fails)."""
    assert COMMITTED.read_text(encoding="utf-8") == openapi.render()


def test_document_is_openapi_3_1_with_the_callbacks_under_webhooks() -> None:
    """The document is OpenAPI 3.1 and lists the callbacks to senders and the PR8 forward."""
    assert DOCUMENT["openapi"].startswith("3.1")
    assert set(DOCUMENT["webhooks"]) == {"m3Callback", "aishaCallback", "workflowForward"}


def test_every_route_is_described(tmp_path: Path) -> None:
    """Every route the app mounts (Slack and Twilio configured) is in the document, with its method."""
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/relay.db", **CONFIGURED))
    mounted = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "*")
    }
    described = {(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert mounted == described


def test_every_error_code_is_declared() -> None:
    """Each error class's code appears under its status in the document (ConflictError only groups the 409s)."""
    from relay import errors

    declared = DOCUMENT["components"]["responses"]
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.RelayError) and "code" in vars(cls) and cls.status < 500:
            assert cls.code in str(declared[f"E{cls.status}"]), cls


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The real app on its own SQLite file, shared by every generated case."""
    path = tmp_path_factory.mktemp("openapi") / "relay.db"
    with ServerThread(make_settings(f"sqlite+aiosqlite:///{path}", **CONFIGURED)) as running:
        yield running


def test_served_document_is_the_committed_one(server: ServerThread) -> None:
    """GET /openapi.json answers the committed document."""
    status, body = server.request("GET", "/openapi.json")
    assert status == 200
    assert json.loads(body) == DOCUMENT


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_relay_answers_as_documented(case: Any, server: ServerThread) -> None:
    """Generated requests (with the admin token) get no 5xx and only declared statuses, types and bodies."""
    case.call_and_validate(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=CHECKS, timeout=15
    )


@schema.include(path_regex=r"^/hooks/(m3|aisha)$").parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_signed_signals_are_answered_as_documented(case: Any, server: ServerThread) -> None:
    """Generated payloads signed as their sender signs them get past the signature: still no 5xx, only declared answers."""
    source = case.path.rsplit("/", 1)[1]
    # a case without a body (schemathesis's coverage phase makes some) is signed as an empty object
    payload = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) else {}
    body, headers = signed(source, payload)
    # a header value no HTTP client can send (control characters, edge whitespace) is no request at all
    assume(all(value.isprintable() and value == value.strip() for value in headers.values()))
    # header values go out as UTF-8: a generated event type or id may be any text
    sent = {name: value.encode() for name, value in headers.items()}
    response = requests.post(server.url + case.path, data=body, headers=sent, timeout=15)
    case.validate_response(response, checks=CHECKS)
