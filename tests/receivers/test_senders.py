"""The contract every sender in `receivers.SENDERS` keeps: a new sender inherits each test here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from receivers import SENDERS, Sender, read_signal
from receivers.json_body import dumps, parse_json
from relay.errors import InvalidSignatureError, MissingSignatureError, TimestampOutOfWindowError
from relay.model import Signal
from relay.web import routes
from tests.support import FIXTURES

NOW = 1767780720
WINDOW = 300
SECRET = "sender-contract-secret-new"
OLD_SECRET = "sender-contract-secret-old"
BY = {"id": "ana", "display": "Ana"}

pytestmark = pytest.mark.parametrize("name", sorted(SENDERS))


def golden(name: str) -> dict[str, Any]:
    """The first fixture of a sender, as its JSON object."""
    path = sorted((FIXTURES / name).glob("*.json"))[0]
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def signed(
    sender: Sender, payload: dict[str, Any], *, secret: str = SECRET, ts: int = NOW
) -> tuple[bytes, dict[str, str]]:
    body = dumps(payload)
    return body, sender.sign(body, secret, ts=ts, payload=payload)


def receive(sender: Sender, body: bytes, headers: dict[str, str], secrets: tuple[str, ...] = (SECRET,)) -> Signal:
    """What the hook does before intake: verify the bytes, then check and parse the object."""
    ts = sender.verify(headers, body, secrets, now=NOW, max_window_sec=WINDOW)
    payload = parse_json(body)
    sender.check(headers, payload, ts=ts, now=NOW, max_window_sec=WINDOW)
    return sender.parse(payload)


def test_registered_under_its_own_name_with_a_hook(name: str) -> None:
    """A sender is registered under its name, has fixtures, and gets `POST /hooks/<name>`."""
    assert SENDERS[name].name == name
    assert sorted((FIXTURES / name).glob("*.json")), f"tests/fixtures/{name}/ holds no fixture"
    app = web.Application()
    routes.add_routes(app)
    mounted = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    assert ("POST", f"/hooks/{name}") in mounted


def test_rejects_an_unsigned_request(name: str) -> None:
    """A request without the sender's signature header is refused as missing_signature."""
    sender = SENDERS[name]
    with pytest.raises(MissingSignatureError):
        receive(sender, dumps(golden(name)), {"Content-Type": "application/json"})


def test_rejects_a_stale_request(name: str) -> None:
    """A request signed longer ago than the window is refused as timestamp_out_of_window."""
    sender = SENDERS[name]
    body, headers = signed(sender, golden(name), ts=NOW - WINDOW - 1)
    with pytest.raises(TimestampOutOfWindowError):
        receive(sender, body, headers)


def test_rejects_a_request_from_the_future(name: str) -> None:
    """A request signed further ahead than the window is refused as timestamp_out_of_window."""
    sender = SENDERS[name]
    body, headers = signed(sender, golden(name), ts=NOW + WINDOW + 1)
    with pytest.raises(TimestampOutOfWindowError):
        receive(sender, body, headers)


def test_rejects_a_wrong_secret(name: str) -> None:
    """A request signed with a secret the relay does not hold is refused as invalid_signature."""
    sender = SENDERS[name]
    body, headers = signed(sender, golden(name), secret="not-a-configured-secret")
    with pytest.raises(InvalidSignatureError):
        receive(sender, body, headers)


def test_accepts_a_rotated_secret(name: str) -> None:
    """During a rotation a request signed with the previous secret still verifies."""
    sender = SENDERS[name]
    body, headers = signed(sender, golden(name), secret=OLD_SECRET)
    assert receive(sender, body, headers, secrets=(SECRET, OLD_SECRET)).source == name


def test_parses_every_fixture(name: str) -> None:
    """Every fixture in tests/fixtures/<name>/, signed, verifies and parses into a Signal of its type."""
    sender = SENDERS[name]
    for path in sorted((FIXTURES / name).glob("*.json")):
        payload = json.loads(path.read_text("utf-8"))
        body, headers = signed(sender, payload)
        signal = receive(sender, body, headers)
        assert (signal.source, signal.type) == (name, payload["type"]), path.name
        assert payload["type"] in sender.event_types, path.name
        assert read_signal(name, body) == signal, path.name
        fast = sender.parse_fast(body)
        assert fast is None or fast[1] == signal, path.name


@pytest.mark.parametrize(
    ("kind", "fields"), [("care.ack", {"action": "soft-checkin"}), ("care.done", {"outcome": "met", "note": ""})]
)
def test_callback_signature_verifies_with_its_own_verify(name: str, kind: str, fields: dict[str, str]) -> None:
    """The relay's care.ack / care.done callback to a sender is signed so that the sender's own check accepts it."""
    sender = SENDERS[name]
    callback = sender.callback_body(kind, "evt_for", BY, NOW * 1000, **fields)
    body, headers = sender.sign_callback(callback, SECRET, now_ms=NOW * 1000)
    sent = json.loads(body)
    assert (sent["type"], sent["for"], sent["by"]) == (kind, "evt_for", BY)
    assert all(sent[key] == value for key, value in fields.items())
    ts = sender.verify(headers, body, [SECRET], now=NOW, max_window_sec=WINDOW)
    sender.check(headers, sent, ts=ts, now=NOW, max_window_sec=WINDOW)
    with pytest.raises(InvalidSignatureError):
        sender.verify(headers, body, ["not-the-callback-secret"], now=NOW, max_window_sec=WINDOW)


def test_callback_attempts_are_signed_at_their_own_time(name: str) -> None:
    """A later attempt at a callback is signed at its own time, so it is never stale on arrival."""
    sender = SENDERS[name]
    callback = sender.callback_body("care.ack", "evt_for", BY, NOW * 1000, action="soft-checkin")
    later = NOW + 10 * WINDOW
    body, headers = sender.sign_callback(callback, SECRET, now_ms=later * 1000)
    ts = sender.verify(headers, body, [SECRET], now=later, max_window_sec=WINDOW)
    sender.check(headers, json.loads(body), ts=ts, now=later, max_window_sec=WINDOW)


def test_callback_without_a_secret_is_unsigned(name: str) -> None:
    """Without a callback secret the callback carries no signature (and a receiver that wants one refuses it)."""
    sender = SENDERS[name]
    callback = sender.callback_body("care.ack", "evt_for", BY, NOW * 1000, action="soft-checkin")
    body, headers = sender.sign_callback(callback, None, now_ms=NOW * 1000)
    assert headers == {}
    with pytest.raises(MissingSignatureError):
        sender.verify(headers, body, [SECRET], now=NOW, max_window_sec=WINDOW)


def test_callbacks_have_ids_of_their_own(name: str) -> None:
    """Two callbacks about the same event carry two different ids."""
    sender = SENDERS[name]
    first = sender.callback_body("care.ack", "evt_for", BY, NOW * 1000, action="soft-checkin")
    second = sender.callback_body("care.ack", "evt_for", BY, NOW * 1000, action="soft-checkin")
    assert first != second


def test_freshen_makes_a_new_event(name: str) -> None:
    """A freshened payload is a new event that still verifies and parses."""
    sender = SENDERS[name]
    payload = golden(name)
    fresh = sender.freshen(payload, datetime.fromtimestamp(NOW, UTC))
    body, headers = signed(sender, fresh)
    signal = receive(sender, body, headers)
    assert signal.event_id != sender.parse(payload).event_id
