"""No input yields a 5xx: garbled bodies and headers, signed and unsigned, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from tests.driver import escalation, panic
from tests.support import ServerThread, aisha_headers, m3_headers, make_settings, signed

HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
SIGNATURE_HEADERS = ["X-M3-Signature", "X-M3-Event", "X-AISHA-SIGNATURE", "X-AISHA-TIMESTAMP", "X-AISHA-EVENT-ID"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The real app on its own SQLite file, shared by the module's examples."""
    path = tmp_path_factory.mktemp("fuzz") / "relay.db"
    # Slack and Twilio configured (never reached: nothing garbled gets past their signature checks)
    settings = make_settings(
        f"sqlite+aiosqlite:///{path}",
        slack_bot_token="xoxb-fuzz",
        slack_signing_secret="fuzz-signing-secret",
        slack_api_url="http://127.0.0.1:9/api/",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="fuzz-auth-token",
        twilio_sms_from="+15005550006",
        twilio_api_base_url="http://127.0.0.1:9",
    )
    with ServerThread(settings) as running:
        yield running


def mutate(payload: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Replace, drop or add one field anywhere in the payload."""
    out = json.loads(json.dumps(payload))
    target = out
    keys = list(target)
    key = data.draw(st.sampled_from(keys))
    if isinstance(target[key], dict) and target[key] and data.draw(st.booleans()):
        target = target[key]
        key = data.draw(st.sampled_from(list(target)))
    action = data.draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace":
        target[key] = data.draw(JSON_VALUES)
    elif action == "drop":
        del target[key]
    else:
        target[data.draw(st.text(max_size=10))] = data.draw(JSON_VALUES)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        [
            "/hooks/m3",
            "/hooks/aisha",
            "/hooks/twilio/inbound",
            "/hooks/twilio/status",
            "/slack/events",
            "/a/x.y.z",
            "/admin/agents",
        ]
    ),
    body=st.binary(max_size=400) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    headers=st.dictionaries(
        st.sampled_from(
            [
                *SIGNATURE_HEADERS,
                "Content-Type",
                "X-Twilio-Signature",
                "X-Slack-Signature",
                "X-Slack-Request-Timestamp",
                "Authorization",
            ]
        ),
        HEADER_TEXT,
        max_size=6,
    ),
)
def test_garbled_unsigned_requests_never_5xx(
    server: ServerThread, path: str, body: bytes, headers: dict[str, str]
) -> None:
    """Random bytes and random header values, on every route that takes a POST, get a 4xx, never a 5xx."""
    status, _ = server.request("POST", path, body, headers)
    assert 400 <= status < 500


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(["m3", "aisha"]), data=st.data())
def test_signed_mutated_payloads_never_5xx(server: ServerThread, source: str, data: st.DataObject) -> None:
    """A correctly signed body with any field broken is answered 2xx or 4xx, never 5xx."""
    payload = mutate(panic() if source == "m3" else escalation(), data)
    body, headers = signed(source, payload)
    valid_http = all(v.isprintable() for v in headers.values())
    try:
        status, answer = server.request("POST", f"/hooks/{source}", body, headers)
    except ValueError:  # a control character in a header: the client refuses to send it
        reject()
    assert status < 500, answer
    if status >= 400 and valid_http:  # invalid HTTP is refused by the HTTP parser itself, in plain text
        error = json.loads(answer)
        assert error["error"] and error["detail"]


def strict_json(body: bytes) -> bool:
    """Is this JSON as RFC 8259 has it (no NaN or Infinity)?"""

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        json.loads(body, parse_constant=refuse)
    except ValueError:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.sampled_from(["m3", "aisha", "aisha-body-signed"]), value=JSON_VALUES)
def test_signed_json_of_any_shape_never_5xx(server: ServerThread, form: str, value: Any) -> None:
    """Correctly signed JSON that is an array, a number, a string or null is refused with the contract's error."""
    body = json.dumps(value).encode()
    if form == "m3":
        headers = m3_headers(body, "panic.ui")
    else:
        headers = aisha_headers(body, "evt-1", body_signed=form == "aisha-body-signed")
    status, answer = server.request("POST", f"/hooks/{form.split('-', maxsplit=1)[0]}", body, headers)
    assert 400 <= status < 500, answer
    error = json.loads(answer)
    assert error["error"] and error["detail"]
    if not strict_json(body):  # json.dumps writes inf as Infinity, which is not JSON
        assert (status, error["error"]) == (400, "malformed_json")
    elif not isinstance(value, dict):
        assert (status, error["error"]) == (422, "invalid_payload")
