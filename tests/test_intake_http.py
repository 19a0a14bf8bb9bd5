"""Signed intake through real HTTP: every error code, replays, durability, no 5xx."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from inbox import store
from inbox.models import AuditRow, OutboxRow, SeenNonceRow, SignalRow
from relay.state import ENGINE, WRITER
from tests.conftest import BOTH_DATABASES
from tests.support import (
    ADMIN_TOKEN,
    FIXTURES,
    aisha_headers,
    fixture,
    fresh,
    m3_headers,
    make_settings,
    signed,
    vectors,
)

VECTORS = vectors()
EXPECTED_STATUS = {
    "ok": 202,
    "invalid_signature": 401,
    "missing_signature": 401,
    "timestamp_out_of_window": 401,
    "malformed_signature_header": 401,
    "header_mismatch": 400,
}


async def stored_counts(client: TestClient) -> dict[str, int]:
    engine = client.app[ENGINE]
    return {t.__tablename__: await store.count_rows(engine, t) for t in (SignalRow, SeenNonceRow, AuditRow, OutboxRow)}


async def post(client: TestClient, source: str, payload: Any, **kwargs: Any) -> Any:
    body, headers = signed(source, payload, **kwargs)
    return await client.post(f"/hooks/{source}", data=body, headers=headers)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
async def test_signature_vectors_through_http(
    vector: dict[str, Any], make_client: Any, database_url: str, clock: Any
) -> None:
    """Each shared signature vector gets its expected answer from the real endpoint."""
    key = "m3_webhook_secrets" if vector["scheme"] == "m3" else "aisha_webhook_secrets"
    client = await make_client(make_settings(database_url, **{key: tuple(vector["secrets"])}))
    clock.fixed = vector["now"]
    headers = {"Content-Type": "application/json", **vector["headers"]}
    response = await client.post(f"/hooks/{vector['scheme']}", data=vector["body"].encode(), headers=headers)
    answer = await response.json()
    assert response.status == EXPECTED_STATUS[vector["expect"]], answer
    if vector["expect"] == "ok":
        assert answer["status"] == "pending_consent" and answer["duplicate"] is False
    else:
        assert answer["error"] == vector["expect"] and answer["detail"]


@BOTH_DATABASES
async def test_golden_path_is_committed_and_readable(client: TestClient) -> None:
    """A signed panic.ui answers 202 with a status_url that reads the stored loop."""
    payload = fresh("m3", fixture("m3", "panic.ui__golden"))
    response = await post(client, "m3", payload)
    assert response.status == 202
    answer = await response.json()
    assert answer["id"] == payload["id"] and answer["status"] == "pending_consent" and answer["duplicate"] is False
    status = await client.get(answer["status_url"])
    assert status.status == 200
    loop = await status.json()
    assert loop["id"] == payload["id"] and loop["source"] == "m3" and loop["type"] == "panic.ui"
    assert loop["status"] == "pending_consent" and loop["decision"]["gates"] == ["consent"]
    assert loop["invitations"] == [] and loop["acks"] == [] and loop["done"] is None


@pytest.mark.parametrize("path", sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.json")))
async def test_every_fixture_is_accepted(client: TestClient, path: str) -> None:
    """Every realistic fixture, signed, is accepted with a 202."""
    source, name = path.split("/")
    payload = fresh(source, fixture(source, name.removesuffix(".json")))
    response = await post(client, source, payload)
    assert response.status == 202, await response.text()


@pytest.mark.parametrize("body_signed", [False, True])
async def test_aisha_escalation_both_signature_forms(client: TestClient, body_signed: bool) -> None:
    """AiSHA escalations verify in the timestamped and the body-signed (PR8) form."""
    payload = fresh("aisha", fixture("aisha", "care.escalation_detected__golden"))
    response = await post(client, "aisha", payload, body_signed=body_signed)
    assert response.status == 202, await response.text()


async def error_of(response: Any) -> tuple[int, str]:
    answer = await response.json()
    assert answer["detail"], answer
    return response.status, answer["error"]


async def test_every_error_code_answers_and_stores_nothing(client: TestClient) -> None:
    """Each rejection has its status and code, and leaves no row behind."""
    before = await stored_counts(client)
    golden = fixture("m3", "panic.ui__golden")
    body, headers = signed("m3", fresh("m3", golden))

    big = {**fresh("m3", golden), "padding": "x" * 300_000}
    b, h = signed("m3", big)
    assert await error_of(await client.post("/hooks/m3", data=b, headers=h)) == (413, "payload_too_large")

    assert await error_of(
        await client.post("/hooks/m3", data=body, headers={**headers, "Content-Type": "text/plain"})
    ) == (
        415,
        "unsupported_media_type",
    )
    no_sig = {k: v for k, v in headers.items() if k != "X-M3-Signature"}
    assert await error_of(await client.post("/hooks/m3", data=body, headers=no_sig)) == (401, "missing_signature")
    bad = {**headers, "X-M3-Signature": headers["X-M3-Signature"][:-4] + "0000"}
    assert await error_of(await client.post("/hooks/m3", data=body, headers=bad)) == (401, "invalid_signature")
    stale = signed("m3", fresh("m3", golden), ts=1_000_000_000)
    assert await error_of(await client.post("/hooks/m3", data=stale[0], headers=stale[1])) == (
        401,
        "timestamp_out_of_window",
    )
    future = signed("m3", fresh("m3", golden), ts=4_000_000_000)
    assert await error_of(await client.post("/hooks/m3", data=future[0], headers=future[1])) == (
        401,
        "timestamp_out_of_window",
    )
    garbled = {**headers, "X-M3-Signature": "sha256=abc"}
    assert await error_of(await client.post("/hooks/m3", data=body, headers=garbled)) == (
        401,
        "malformed_signature_header",
    )

    not_json = signed("m3", b"{not json")
    assert await error_of(await client.post("/hooks/m3", data=not_json[0], headers=not_json[1])) == (
        400,
        "malformed_json",
    )
    mismatch = {**headers, "X-M3-Event": "status.set"}
    assert await error_of(await client.post("/hooks/m3", data=body, headers=mismatch)) == (400, "header_mismatch")

    missing_actor = fresh("m3", golden)
    del missing_actor["actor"]
    response = await post(client, "m3", missing_actor)
    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid_payload" and any(f["loc"][:1] == ["actor"] for f in answer["fields"])

    unknown = fresh("m3", golden, type="mood.share")
    assert await error_of(await post(client, "m3", unknown)) == (422, "unsupported_event_type")

    no_event_id = fresh("aisha", fixture("aisha", "care.escalation_detected__golden"))
    b, h = signed("aisha", no_event_id)
    h["X-AISHA-EVENT-ID"] = "someone-else"
    assert await error_of(await client.post("/hooks/aisha", data=b, headers=h)) == (400, "header_mismatch")

    assert await error_of(await client.get("/nowhere")) == (404, "not_found")
    assert await stored_counts(client) == before


async def test_replays(client: TestClient) -> None:
    """Same id and bytes: 200 duplicate; same id, other body: 409; reused nonce: 409."""
    payload = fresh("m3", fixture("m3", "panic.ui__golden"))
    first = await post(client, "m3", payload)
    assert first.status == 202
    again = await post(client, "m3", payload)
    assert again.status == 200
    answer = await again.json()
    assert answer["duplicate"] is True and answer["status"] == "pending_consent" and answer["id"] == payload["id"]

    changed = json.loads(json.dumps(payload))
    changed["intent"]["whisper"] = "another body under the same id"
    assert await error_of(await post(client, "m3", changed)) == (409, "event_id_conflict")

    reuse = fresh("m3", fixture("m3", "panic.ui__golden"))
    reuse["security"]["nonce"] = payload["security"]["nonce"]
    assert await error_of(await post(client, "m3", reuse)) == (409, "nonce_reused")
    # the refused event left nothing: its id is still free
    status = await client.get(f"/v1/events/{reuse['id']}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status.status == 404


@BOTH_DATABASES
async def test_twenty_simultaneous_deliveries_make_one_signal(client: TestClient) -> None:
    """Twenty identical deliveries at once: one 202, nineteen duplicates, one row."""
    payload = fresh("m3", fixture("m3", "panic.ui__golden"))
    body, headers = signed("m3", payload)
    responses = await asyncio.gather(*(client.post("/hooks/m3", data=body, headers=headers) for _ in range(20)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 19 + [202]
    assert (await stored_counts(client))["signal"] == 1


async def test_status_endpoint_access(client: TestClient) -> None:
    """The status token opens only its own event; admins use a bearer token."""
    one = fresh("m3", fixture("m3", "panic.ui__golden"))
    two = fresh("m3", fixture("m3", "panic.ui__golden"))
    url_one = (await (await post(client, "m3", one)).json())["status_url"]
    await post(client, "m3", two)
    token = url_one.split("token=")[1]

    assert (await client.get(url_one)).status == 200
    assert await error_of(await client.get(f"/v1/events/{two['id']}?token={token}")) == (403, "forbidden")
    assert await error_of(await client.get(f"/v1/events/{two['id']}?token=garbage")) == (403, "forbidden")
    assert await error_of(await client.get(f"/v1/events/{two['id']}")) == (401, "unauthorized")
    wrong = {"Authorization": "Bearer not-the-token"}
    assert await error_of(await client.get(f"/v1/events/{two['id']}", headers=wrong)) == (403, "forbidden")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await client.get(f"/v1/events/{two['id']}", headers=admin)).status == 200
    assert await error_of(await client.get("/v1/events/evt_never", headers=admin)) == (404, "not_found")
    assert await error_of(await client.get(f"/v1/events/{two['id']}?source=sms", headers=admin)) == (400, "bad_request")


async def test_same_id_from_two_sources_needs_source(client: TestClient) -> None:
    """When M3 and AiSHA used one id, an admin read names the source."""
    shared_id = "evt_shared_0001"
    m3_payload = fresh("m3", fixture("m3", "panic.ui__golden"), id=shared_id)
    aisha_payload = fresh("aisha", fixture("aisha", "care.escalation_detected__golden"), event_id=shared_id)
    assert (await post(client, "m3", m3_payload)).status == 202
    assert (await post(client, "aisha", aisha_payload)).status == 202
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert await error_of(await client.get(f"/v1/events/{shared_id}", headers=admin)) == (400, "bad_request")
    answer = await (await client.get(f"/v1/events/{shared_id}?source=aisha", headers=admin)).json()
    assert answer["source"] == "aisha" and answer["type"] == "care.escalation_detected"


async def test_storage_that_cannot_write_answers_503(client: TestClient) -> None:
    """When the writer cannot take the write, the sender gets 503 with Retry-After."""
    await client.app[WRITER].close()
    response = await post(client, "m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert (await response.json())["error"] == "unavailable"


async def test_health_and_readiness(client: TestClient) -> None:
    """Liveness answers, and readiness reports migrations current."""
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ready"


async def test_readiness_when_migrations_are_behind(client: TestClient) -> None:
    """A schema behind the code answers 503 with the contract's error and what to run."""
    await client.app[WRITER].run(lambda tx: tx.execute("DELETE FROM alembic_version"))
    ready = await client.get("/readyz")
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
    client: TestClient, source: str, coding: str, sign_sent_bytes: bool
) -> None:
    """Signatures cover the bytes as sent; a body with a Content-Encoding is not those bytes: 415, nothing stored."""
    before = await stored_counts(client)
    name = "panic.ui__golden" if source == "m3" else "care.escalation_detected__golden"
    payload = fresh(source, fixture(source, name))
    raw, headers = signed(source, payload)
    sent = _encode(coding, raw)
    if sign_sent_bytes:
        headers = m3_headers(sent, payload["type"]) if source == "m3" else aisha_headers(sent, payload["event_id"])
    response = await client.post(f"/hooks/{source}", data=sent, headers={**headers, "Content-Encoding": coding})
    assert await error_of(response) == (415, "unsupported_media_type")
    assert "Content-Encoding" in (await response.json())["detail"]
    assert await stored_counts(client) == before


async def test_identity_content_encoding_is_the_body_as_sent(client: TestClient) -> None:
    """`Content-Encoding: identity` says the body is as sent: it is accepted."""
    body, headers = signed("m3", fresh("m3", fixture("m3", "panic.ui__golden")))
    response = await client.post("/hooks/m3", data=body, headers={**headers, "Content-Encoding": "identity"})
    assert response.status == 202, await response.text()
