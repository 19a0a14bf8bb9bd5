"""Signed intake through real HTTP: every error code, replays, durability, no 5xx."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import pytest

from relay.keys import WRITER
from tests.conftest import BOTH_DATABASES, Clock
from tests.driver import ADMIN, Relay, Start, escalation, panic, signal
from tests.support import FIXTURES, aisha_headers, m3_headers, signed, vectors

VECTORS = vectors()
EXPECTED_STATUS = {
    "ok": 202,
    "invalid_signature": 401,
    "missing_signature": 401,
    "timestamp_out_of_window": 401,
    "malformed_signature_header": 401,
    "header_mismatch": 400,
}


#: The tables a refused delivery must leave as they were.
STORED = ("signal", "seen_nonce", "audit", "outbox")


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
async def test_signature_vectors_through_http(vector: dict[str, Any], start: Start, clock: Clock) -> None:
    """Each shared signature vector gets its expected answer from the real endpoint."""
    key = "m3_webhook_secrets" if vector["scheme"] == "m3" else "aisha_webhook_secrets"
    served = await start(dev=False, run_outbox=True, **{key: tuple(vector["secrets"])})
    clock.fixed = vector["now"]
    headers = {"Content-Type": "application/json", **vector["headers"]}
    response = await served.post(f"/hooks/{vector['scheme']}", data=vector["body"].encode(), headers=headers)
    answer = await response.json()
    assert response.status == EXPECTED_STATUS[vector["expect"]], answer
    if vector["expect"] == "ok":
        assert answer["status"] == "pending_consent" and answer["duplicate"] is False
    else:
        assert answer["error"] == vector["expect"] and answer["detail"]


@BOTH_DATABASES
async def test_golden_path_is_committed_and_readable(served: Relay) -> None:
    """A signed panic.ui answers 202 with a status_url that reads the stored loop."""
    payload = panic()
    response = await served.hook("m3", payload)
    assert response.status == 202
    answer = await response.json()
    assert answer["id"] == payload["id"] and answer["status"] == "pending_consent" and answer["duplicate"] is False
    status = await served.get(answer["status_url"])
    assert status.status == 200
    loop = await status.json()
    assert loop["id"] == payload["id"] and loop["source"] == "m3" and loop["type"] == "panic.ui"
    assert loop["status"] == "pending_consent" and loop["decision"]["gates"] == ["consent"]
    assert loop["invitations"] == [] and loop["acks"] == [] and loop["done"] is None


@pytest.mark.parametrize("path", sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.json")))
async def test_every_fixture_is_accepted(served: Relay, path: str) -> None:
    """Every realistic fixture, signed, is accepted with a 202."""
    source, name = path.split("/")
    payload = signal(source, name.removesuffix(".json"))
    response = await served.hook(source, payload)
    assert response.status == 202, await response.text()


@pytest.mark.parametrize("body_signed", [False, True])
async def test_aisha_escalation_both_signature_forms(served: Relay, body_signed: bool) -> None:
    """AiSHA escalations verify in the timestamped and the body-signed (PR8) form."""
    payload = escalation()
    response = await served.hook("aisha", payload, body_signed=body_signed)
    assert response.status == 202, await response.text()


async def error_of(response: Any) -> tuple[int, str]:
    answer = await response.json()
    assert answer["detail"], answer
    return response.status, answer["error"]


async def test_every_error_code_answers_and_stores_nothing(served: Relay) -> None:
    """Each rejection has its status and code, and leaves no row behind."""
    before = await served.counts(*STORED)
    body, headers = signed("m3", panic())

    big = {**panic(), "padding": "x" * 300_000}
    b, h = signed("m3", big)
    assert await error_of(await served.post("/hooks/m3", data=b, headers=h)) == (413, "payload_too_large")

    assert await error_of(
        await served.post("/hooks/m3", data=body, headers={**headers, "Content-Type": "text/plain"})
    ) == (
        415,
        "unsupported_media_type",
    )
    no_sig = {k: v for k, v in headers.items() if k != "X-M3-Signature"}
    assert await error_of(await served.post("/hooks/m3", data=body, headers=no_sig)) == (401, "missing_signature")
    bad = {**headers, "X-M3-Signature": headers["X-M3-Signature"][:-4] + "0000"}
    assert await error_of(await served.post("/hooks/m3", data=body, headers=bad)) == (401, "invalid_signature")
    stale = signed("m3", panic(), ts=1_000_000_000)
    assert await error_of(await served.post("/hooks/m3", data=stale[0], headers=stale[1])) == (
        401,
        "timestamp_out_of_window",
    )
    future = signed("m3", panic(), ts=4_000_000_000)
    assert await error_of(await served.post("/hooks/m3", data=future[0], headers=future[1])) == (
        401,
        "timestamp_out_of_window",
    )
    garbled = {**headers, "X-M3-Signature": "sha256=abc"}
    assert await error_of(await served.post("/hooks/m3", data=body, headers=garbled)) == (
        401,
        "malformed_signature_header",
    )

    not_json = signed("m3", b"{not json")
    assert await error_of(await served.post("/hooks/m3", data=not_json[0], headers=not_json[1])) == (
        400,
        "malformed_json",
    )
    mismatch = {**headers, "X-M3-Event": "status.set"}
    assert await error_of(await served.post("/hooks/m3", data=body, headers=mismatch)) == (400, "header_mismatch")

    missing_actor = panic()
    del missing_actor["actor"]
    response = await served.hook("m3", missing_actor)
    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid_payload" and any(f["loc"][:1] == ["actor"] for f in answer["fields"])

    unknown = panic(type="mood.share")
    assert await error_of(await served.hook("m3", unknown)) == (422, "unsupported_event_type")

    no_event_id = escalation()
    b, h = signed("aisha", no_event_id)
    h["X-AISHA-EVENT-ID"] = "someone-else"
    assert await error_of(await served.post("/hooks/aisha", data=b, headers=h)) == (400, "header_mismatch")

    assert await error_of(await served.get("/nowhere")) == (404, "not_found")
    assert await served.counts(*STORED) == before


async def test_replays(served: Relay) -> None:
    """Same id and bytes: 200 duplicate; same id, other body: 409; reused nonce: 409."""
    payload = panic()
    first = await served.hook("m3", payload)
    assert first.status == 202
    again = await served.hook("m3", payload)
    assert again.status == 200
    answer = await again.json()
    assert answer["duplicate"] is True and answer["status"] == "pending_consent" and answer["id"] == payload["id"]

    changed = json.loads(json.dumps(payload))
    changed["intent"]["whisper"] = "another body under the same id"
    assert await error_of(await served.hook("m3", changed)) == (409, "event_id_conflict")

    reuse = panic()
    reuse["security"]["nonce"] = payload["security"]["nonce"]
    assert await error_of(await served.hook("m3", reuse)) == (409, "nonce_reused")
    # the refused event left nothing: its id is still free
    status = await served.get(f"/v1/events/{reuse['id']}", headers=ADMIN)
    assert status.status == 404


@BOTH_DATABASES
async def test_twenty_simultaneous_deliveries_make_one_signal(served: Relay) -> None:
    """Twenty identical deliveries at once: one 202, nineteen duplicates, one row."""
    payload = panic()
    body, headers = signed("m3", payload)
    responses = await asyncio.gather(*(served.post("/hooks/m3", data=body, headers=headers) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [202]
    assert (await served.counts(*STORED))["signal"] == 1


async def test_status_endpoint_access(served: Relay) -> None:
    """The status token opens only its own event; admins use a bearer token."""
    one = panic()
    two = panic()
    url_one = (await (await served.hook("m3", one)).json())["status_url"]
    await served.hook("m3", two)
    token = url_one.split("token=")[1]

    assert (await served.get(url_one)).status == 200
    assert await error_of(await served.get(f"/v1/events/{two['id']}?token={token}")) == (403, "forbidden")
    assert await error_of(await served.get(f"/v1/events/{two['id']}?token=garbage")) == (403, "forbidden")
    assert await error_of(await served.get(f"/v1/events/{two['id']}")) == (401, "unauthorized")
    wrong = {"Authorization": "Bearer not-the-token"}
    assert await error_of(await served.get(f"/v1/events/{two['id']}", headers=wrong)) == (403, "forbidden")
    assert (await served.get(f"/v1/events/{two['id']}", headers=ADMIN)).status == 200
    assert await error_of(await served.get("/v1/events/evt_never", headers=ADMIN)) == (404, "not_found")
    assert await error_of(await served.get(f"/v1/events/{two['id']}?source=sms", headers=ADMIN)) == (400, "bad_request")


async def test_same_id_from_two_sources_needs_source(served: Relay) -> None:
    """When M3 and AiSHA used one id, an admin read names the source."""
    shared_id = "evt_shared_0001"
    m3_payload = panic(id=shared_id)
    aisha_payload = escalation(event_id=shared_id)
    assert (await served.hook("m3", m3_payload)).status == 202
    assert (await served.hook("aisha", aisha_payload)).status == 202
    assert await error_of(await served.get(f"/v1/events/{shared_id}", headers=ADMIN)) == (400, "bad_request")
    answer = await (await served.get(f"/v1/events/{shared_id}?source=aisha", headers=ADMIN)).json()
    assert answer["source"] == "aisha" and answer["type"] == "care.escalation_detected"


async def test_storage_that_cannot_write_answers_503(served: Relay) -> None:
    """When the writer cannot take the write, the sender gets 503 with Retry-After."""
    await served.app[WRITER].close()
    response = await served.hook("m3", panic())
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["error"] == "unavailable"


async def test_health_and_readiness(served: Relay) -> None:
    """Liveness answers, and readiness reports migrations current."""
    assert (await served.get("/healthz")).status == 200
    ready = await served.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ready"


async def test_readiness_when_migrations_are_behind(served: Relay) -> None:
    """A schema behind the code answers 503 with the contract's error and what to run."""
    await served.sql("DELETE FROM alembic_version")
    ready = await served.get("/readyz")
    assert ready.status == 503 and ready.headers["Retry-After"]
    answer = await ready.json()
    assert answer["error"] == "unavailable" and "care-relay db upgrade" in answer["detail"] and answer["ok"] is False


def _encode(coding: str, raw: bytes) -> bytes:
    return {"gzip": gzip.compress, "deflate": zlib.compress}.get(coding, lambda b: b)(raw)


ENCODED = {
    "gzip, signed before compressing": ("gzip", False),
    "gzip, signed as sent": ("gzip", True),
    "deflate, signed as sent": ("deflate", True),
    "br, signed as sent": ("br", True),
}


@pytest.mark.parametrize("source", ["m3", "aisha"])
@pytest.mark.parametrize(("coding", "sign_sent_bytes"), ENCODED.values(), ids=ENCODED.keys())
async def test_a_content_encoded_body_is_415_and_stores_nothing(
    served: Relay, source: str, coding: str, sign_sent_bytes: bool
) -> None:
    """Signatures cover the bytes as sent; a body with a Content-Encoding is not those bytes: 415, nothing stored."""
    before = await served.counts(*STORED)
    payload = panic() if source == "m3" else escalation()
    raw, headers = signed(source, payload)
    sent = _encode(coding, raw)
    if sign_sent_bytes:
        headers = m3_headers(sent, payload["type"]) if source == "m3" else aisha_headers(sent, payload["event_id"])
    response = await served.post(f"/hooks/{source}", data=sent, headers={**headers, "Content-Encoding": coding})
    assert await error_of(response) == (415, "unsupported_media_type")
    assert "Content-Encoding" in (await response.json())["detail"]
    assert await served.counts(*STORED) == before


async def test_identity_content_encoding_is_the_body_as_sent(served: Relay) -> None:
    """`Content-Encoding: identity` says the body is as sent: it is accepted."""
    body, headers = signed("m3", panic())
    response = await served.post("/hooks/m3", data=body, headers={**headers, "Content-Encoding": "identity"})
    assert response.status == 202, await response.text()
