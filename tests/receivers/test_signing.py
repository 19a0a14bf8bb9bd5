"""X-M3 and X-AISHA signatures: the shared vectors, the edges of the header grammar, signing."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from receivers.aisha.signature import check as check_aisha_payload
from receivers.aisha.signature import sign as sign_aisha
from receivers.aisha.signature import verify as verify_aisha
from receivers.m3.signature import check as check_m3_payload
from receivers.m3.signature import sign as sign_m3
from receivers.m3.signature import verify as verify_m3
from relay.errors import RelayError
from tests.support import KEPT_VECTORS, SHARED_VECTORS, vectors

VECTORS = vectors()
MAX_WINDOW_SEC = 300  # M3_MAX_WINDOW_SEC and AISHA_MAX_WINDOW_SEC defaults

NOW = 1767780720
M3_SECRET = "m3_secret_current_7f1c"
M3_OLD_SECRET = "m3_secret_previous_0b9e"
AISHA_SECRET = "aisha_secret_5d2a"
AISHA_OLD_SECRET = "aisha_secret_old_91c0"
EVENT_ID = "8d6f2b1e-4c3a-4f7e-9a10-2b5c6d7e8f90"
M3_BODY = json.dumps(
    {"id": "evt_T1", "type": "panic.ui", "ts": "2026-01-07T10:12:00Z", "security": {"ts_window_sec": 300}},
    separators=(",", ":"),
).encode()
AISHA_BODY = json.dumps(
    {"event_id": EVENT_ID, "type": "care.escalation_detected", "ts": "2026-01-07T10:12:00.250Z"},
    separators=(",", ":"),
).encode()


def run(
    scheme: str,
    headers: dict[str, str],
    body: bytes,
    secrets: list[str],
    *,
    now: int = NOW,
    max_window_sec: int = MAX_WINDOW_SEC,
) -> str:
    """Verify, then (as the handler does) parse and check the payload; "ok" or the error code."""
    try:
        if scheme == "m3":
            ts = verify_m3(headers, body, secrets, now=now, max_window_sec=max_window_sec)
            check_m3_payload(headers, json.loads(body), ts=ts, now=now, max_window_sec=max_window_sec)
        else:
            header_ts = verify_aisha(headers, body, secrets, now=now, max_window_sec=max_window_sec)
            check_aisha_payload(headers, json.loads(body), header_ts=header_ts, now=now, max_window_sec=max_window_sec)
    except RelayError as error:
        assert_safe_detail(error, secrets, headers, body)
        return error.code
    return "ok"


def assert_safe_detail(error: RelayError, secrets: list[str], headers: dict[str, str], body: bytes) -> None:
    """An error's detail is one sentence and echoes no secret, signature or body text."""
    detail = error.detail
    assert detail.endswith(".") and ". " not in detail, detail
    for secret in filter(None, secrets):
        assert secret not in detail
    for value in headers.values():
        if len(value) >= 16:
            assert value not in detail
    assert "whisper" not in detail and "Sunt aici" not in detail
    assert body.decode("utf-8", "replace") not in detail


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def m3_headers(raw_ts: str, *hexes: str, event: str = "panic.ui") -> dict[str, str]:
    v1 = ",".join(f"v1={h}" for h in hexes)
    return {"X-M3-Event": event, "X-M3-Signature": f"m3=t={raw_ts},{v1}"}


def aisha_headers(raw_ts: str | None, signature: str) -> dict[str, str]:
    headers = {"X-AISHA-SIGNATURE": signature, "X-AISHA-EVENT-ID": EVENT_ID}
    if raw_ts is not None:
        headers["X-AISHA-TIMESTAMP"] = raw_ts
    return headers


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    """Every shared vector yields exactly its expected outcome."""
    outcome = run(
        vector["scheme"],
        vector["headers"],
        vector["body"].encode("utf-8"),
        vector["secrets"],
        now=vector["now"],
    )
    assert outcome == vector["expect"]


def test_vectors_cover_both_schemes() -> None:
    """The vector file was found and holds vectors for both schemes."""
    assert {v["scheme"] for v in VECTORS} == {"m3", "aisha"}


BAD_TIMESTAMPS = [
    "١٧٦٧٧٨٠٧٢٠",  # Arabic-Indic digits: int() accepts them
    "１７６７７８０７２０",  # full-width digits  # noqa: RUF001 (the confusable digits are the point)
    "+1767780720",
    "-1767780720",
    " 1767780720",
    "1767780720 ",
    "1767780720\n",
    "1_767_780_720",
    "17677807200",  # 11 digits
    "1767780720.5",
    "",
]


@pytest.mark.parametrize("raw_ts", BAD_TIMESTAMPS)
@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_timestamp_not_ascii_digits_is_malformed(scheme: str, raw_ts: str) -> None:
    """A timestamp that is not 1-10 ASCII digits is malformed, even when correctly signed."""
    secret = M3_SECRET if scheme == "m3" else AISHA_SECRET
    body = M3_BODY if scheme == "m3" else AISHA_BODY
    signature = hmac_hex(secret, raw_ts.encode() + b"." + body)
    headers = m3_headers(raw_ts, signature) if scheme == "m3" else aisha_headers(raw_ts, signature)
    assert run(scheme, headers, body, [secret]) == "malformed_signature_header"


@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_uppercase_hex_is_accepted(scheme: str) -> None:
    """A signature in upper-case hex verifies like its lower-case form."""
    if scheme == "m3":
        headers = m3_headers(str(NOW), hmac_hex(M3_SECRET, f"{NOW}.".encode() + M3_BODY).upper())
        assert run("m3", headers, M3_BODY, [M3_SECRET]) == "ok"
    else:
        signature = "sha256=" + hmac_hex(AISHA_SECRET, f"{NOW}.".encode() + AISHA_BODY).upper()
        assert run("aisha", aisha_headers(str(NOW), signature), AISHA_BODY, [AISHA_SECRET]) == "ok"


def _bad_hexes() -> list[str]:
    good = hmac_hex(M3_SECRET, b"x")
    return [good[:63], good + "0", good[:63] + "g", good[:63] + "\u0660", ""]


@pytest.mark.parametrize("bad_hex", _bad_hexes(), ids=["63-chars", "65-chars", "non-hex", "non-ascii", "empty"])
@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_signature_not_64_hex_is_malformed(scheme: str, bad_hex: str) -> None:
    """A signature that is not exactly 64 hex characters is malformed, never compared."""
    if scheme == "m3":
        good = hmac_hex(M3_SECRET, f"{NOW}.".encode() + M3_BODY)
        # The bad v1 spoils the header even next to a good one.
        headers = m3_headers(str(NOW), good, bad_hex)
        assert run("m3", headers, M3_BODY, [M3_SECRET]) == "malformed_signature_header"
    else:
        headers = aisha_headers(str(NOW), "sha256=" + bad_hex)
        assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET]) == "malformed_signature_header"


@pytest.mark.parametrize("value", ["", "   "])
@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_empty_signature_header_is_missing(scheme: str, value: str) -> None:
    """An empty or blank signature header is a missing signature."""
    if scheme == "m3":
        headers = {"X-M3-Event": "panic.ui", "X-M3-Signature": value}
        assert run("m3", headers, M3_BODY, [M3_SECRET]) == "missing_signature"
    else:
        assert run("aisha", aisha_headers(str(NOW), value), AISHA_BODY, [AISHA_SECRET]) == "missing_signature"


@pytest.mark.parametrize(
    "value",
    [
        "t=1767780720,v1={hex}",
        "M3=t=1767780720,v1={hex}",
        "m3=t=1767780720",
        "m3=t=1767780720,v0={hex}",
        "m3=t=1767780720,t=1767780720,v1={hex}",
    ],
    ids=["no-prefix", "upper-prefix", "no-v1", "only-unknown-keys", "two-t"],
)
def test_m3_header_grammar_violations_are_malformed(value: str) -> None:
    """An X-M3-Signature without the m3= prefix, without v1 or with two t is malformed."""
    headers = {"X-M3-Event": "panic.ui", "X-M3-Signature": value.format(hex=hmac_hex(M3_SECRET, M3_BODY))}
    assert run("m3", headers, M3_BODY, [M3_SECRET]) == "malformed_signature_header"


def test_m3_round_trip() -> None:
    """sign_m3 produces headers that verify_m3 and check_m3_payload accept."""
    headers = sign_m3(M3_BODY, M3_SECRET, ts=NOW, event_type="panic.ui")
    assert set(headers) == {"X-M3-Signature", "X-M3-Event"}
    assert verify_m3(headers, M3_BODY, [M3_SECRET], now=NOW + 5, max_window_sec=300) == NOW
    assert run("m3", headers, M3_BODY, [M3_SECRET]) == "ok"


def test_sign_m3_without_event_type_leaves_the_event_header_to_the_caller() -> None:
    """sign_m3 without event_type returns only X-M3-Signature."""
    assert set(sign_m3(M3_BODY, M3_SECRET, ts=NOW)) == {"X-M3-Signature"}


def test_aisha_timestamped_round_trip() -> None:
    """sign_aisha with ts produces the sha256= timestamped form, which verifies."""
    headers = sign_aisha(AISHA_BODY, AISHA_SECRET, ts=NOW, event_id=EVENT_ID)
    assert headers["X-AISHA-TIMESTAMP"] == str(NOW)
    assert headers["X-AISHA-SIGNATURE"].startswith("sha256=")
    assert verify_aisha(headers, AISHA_BODY, [AISHA_SECRET], now=NOW, max_window_sec=300) == NOW
    assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET]) == "ok"


def test_aisha_body_signed_round_trip() -> None:
    """sign_aisha without ts produces the PR8 bare-hex body signature, windowed on the body's ts."""
    headers = sign_aisha(AISHA_BODY, AISHA_SECRET, event_id=EVENT_ID)
    assert "X-AISHA-TIMESTAMP" not in headers
    assert headers["X-AISHA-SIGNATURE"] == hmac_hex(AISHA_SECRET, AISHA_BODY)
    assert verify_aisha(headers, AISHA_BODY, [AISHA_SECRET], now=NOW, max_window_sec=300) is None
    assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET], now=NOW + 300) == "ok"
    assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET], now=NOW - 300) == "timestamp_out_of_window"


@pytest.mark.parametrize("form", ["m3", "aisha-timestamped", "aisha-body-signed"])
def test_receiver_rotation_accepts_any_configured_secret(form: str) -> None:
    """A request signed with the previous secret verifies while both secrets are configured."""
    if form == "m3":
        headers = sign_m3(M3_BODY, M3_OLD_SECRET, ts=NOW, event_type="panic.ui")
        assert run("m3", headers, M3_BODY, [M3_SECRET, M3_OLD_SECRET]) == "ok"
        assert run("m3", headers, M3_BODY, [M3_SECRET]) == "invalid_signature"
    else:
        ts = NOW if form == "aisha-timestamped" else None
        headers = sign_aisha(AISHA_BODY, AISHA_OLD_SECRET, ts=ts, event_id=EVENT_ID)
        assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET, AISHA_OLD_SECRET]) == "ok"
        assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET]) == "invalid_signature"


def test_m3_sender_rotation_one_matching_v1_suffices() -> None:
    """A sender signing with old and new secrets is accepted by a receiver holding either one."""
    old = sign_m3(M3_BODY, M3_OLD_SECRET, ts=NOW)["X-M3-Signature"]
    new = sign_m3(M3_BODY, M3_SECRET, ts=NOW)["X-M3-Signature"]
    both = {"X-M3-Event": "panic.ui", "X-M3-Signature": old + new.removeprefix(f"m3=t={NOW}")}
    assert run("m3", both, M3_BODY, [M3_SECRET]) == "ok"
    assert run("m3", both, M3_BODY, [M3_OLD_SECRET]) == "ok"


@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_header_names_are_case_insensitive(scheme: str) -> None:
    """Headers are found whatever their case, in a plain dict and in a CIMultiDict."""
    multidict = pytest.importorskip("multidict")
    if scheme == "m3":
        body, secret = M3_BODY, M3_SECRET
        headers = sign_m3(body, secret, ts=NOW, event_type="panic.ui")
    else:
        body, secret = AISHA_BODY, AISHA_SECRET
        headers = sign_aisha(body, secret, ts=NOW, event_id=EVENT_ID)
    lowered = {key.lower(): value for key, value in headers.items()}
    assert run(scheme, lowered, body, [secret]) == "ok"
    assert run(scheme, multidict.CIMultiDict(lowered), body, [secret]) == "ok"


@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_forged_stale_request_is_invalid_not_out_of_window(scheme: str) -> None:
    """The signature is checked before the window, so a forgery learns nothing about the clock."""
    if scheme == "m3":
        headers = sign_m3(M3_BODY, "not-the-secret", ts=NOW - 10_000, event_type="panic.ui")
        assert run("m3", headers, M3_BODY, [M3_SECRET]) == "invalid_signature"
    else:
        headers = sign_aisha(AISHA_BODY, "not-the-secret", ts=NOW - 10_000, event_id=EVENT_ID)
        assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET]) == "invalid_signature"


@pytest.mark.parametrize("skew", [-300, 300])
def test_window_edges_are_inclusive(skew: int) -> None:
    """A timestamp exactly max_window_sec away, past or future, is accepted."""
    headers = sign_m3(M3_BODY, M3_SECRET, ts=NOW, event_type="panic.ui")
    assert run("m3", headers, M3_BODY, [M3_SECRET], now=NOW + skew) == "ok"


@pytest.mark.parametrize("asked", [0, -5, "60", True, 60.0, None])
def test_m3_payload_window_ignored_unless_positive_int(asked: object) -> None:
    """A security.ts_window_sec that is not a positive integer leaves the server maximum in force."""
    body = json.dumps({"type": "panic.ui", "security": {"ts_window_sec": asked}}).encode()
    headers = sign_m3(body, M3_SECRET, ts=NOW, event_type="panic.ui")
    assert run("m3", headers, body, [M3_SECRET], now=NOW + 299) == "ok"


def test_m3_payload_window_is_checked_before_header_agreement() -> None:
    """A too-late request with a wrong X-M3-Event answers 401 before 400, as the contract orders."""
    body = json.dumps({"type": "panic.ui", "security": {"ts_window_sec": 60}}).encode()
    headers = sign_m3(body, M3_SECRET, ts=NOW, event_type="status.set")
    assert run("m3", headers, body, [M3_SECRET], now=NOW + 61) == "timestamp_out_of_window"
    assert run("m3", headers, body, [M3_SECRET], now=NOW + 60) == "header_mismatch"


@pytest.mark.parametrize("scheme", ["m3", "aisha"])
def test_missing_event_header_is_header_mismatch(scheme: str) -> None:
    """A verified request without X-M3-Event / X-AISHA-EVENT-ID is a header mismatch."""
    if scheme == "m3":
        headers = sign_m3(M3_BODY, M3_SECRET, ts=NOW)
        assert run("m3", headers, M3_BODY, [M3_SECRET]) == "header_mismatch"
    else:
        headers = sign_aisha(AISHA_BODY, AISHA_SECRET, ts=NOW, event_id=EVENT_ID)
        del headers["X-AISHA-EVENT-ID"]
        assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET]) == "header_mismatch"


@pytest.mark.parametrize(
    "body_ts",
    [None, 1767780720, "", "yesterday", "2026-01-07", "2026-01-07T10:12:00", "1767780720"],
    ids=["absent", "number", "empty", "words", "date-only", "no-offset", "digits"],
)
def test_aisha_body_signed_needs_an_iso_body_ts(body_ts: object) -> None:
    """A body-signed request whose body ts is not an ISO 8601 time with an offset is out of window."""
    payload: dict[str, Any] = {"event_id": EVENT_ID, "type": "care.escalation_detected"}
    if body_ts is not None:
        payload["ts"] = body_ts
    body = json.dumps(payload).encode()
    headers = sign_aisha(body, AISHA_SECRET, event_id=EVENT_ID)
    assert run("aisha", headers, body, [AISHA_SECRET]) == "timestamp_out_of_window"


def test_aisha_body_ts_with_offset_is_accepted() -> None:
    """A body ts written with a numeric UTC offset is placed in time correctly."""
    body = json.dumps({"event_id": EVENT_ID, "ts": "2026-01-07T12:12:00+02:00"}).encode()
    headers = sign_aisha(body, AISHA_SECRET, event_id=EVENT_ID)
    assert run("aisha", headers, body, [AISHA_SECRET]) == "ok"


def test_aisha_empty_timestamp_header_is_malformed() -> None:
    """An X-AISHA-TIMESTAMP that is present but empty is malformed, not body-signed."""
    headers = sign_aisha(AISHA_BODY, AISHA_SECRET, event_id=EVENT_ID)
    headers["X-AISHA-TIMESTAMP"] = ""
    assert run("aisha", headers, AISHA_BODY, [AISHA_SECRET]) == "malformed_signature_header"


@pytest.mark.parametrize("secrets", [[], [""]], ids=["none", "empty-string"])
def test_no_usable_secret_fails_closed(secrets: list[str]) -> None:
    """Without a non-empty secret nothing verifies, not even a body signed with the empty key."""
    forged = m3_headers(str(NOW), hmac_hex("", f"{NOW}.".encode() + M3_BODY))
    assert run("m3", forged, M3_BODY, secrets) == "invalid_signature"
    forged_aisha = aisha_headers(None, hmac_hex("", AISHA_BODY))
    assert run("aisha", forged_aisha, AISHA_BODY, secrets) == "invalid_signature"


def test_a_single_string_is_not_a_list_of_secrets() -> None:
    """Passing one string as the secrets list is a programming error, not a set of 1-char keys."""
    headers = sign_m3(M3_BODY, M3_SECRET, ts=NOW)
    with pytest.raises(TypeError):
        verify_m3(headers, M3_BODY, M3_SECRET, now=NOW, max_window_sec=300)


@pytest.mark.parametrize("ts", [-1, 10_000_000_000, True, 1.5])
def test_signing_refuses_timestamps_receivers_would_reject(ts: Any) -> None:
    """The signers never emit a timestamp outside 1-10 ASCII digits."""
    with pytest.raises(ValueError, match="ts must be an int"):
        sign_m3(M3_BODY, M3_SECRET, ts=ts)
    with pytest.raises(ValueError, match="ts must be an int"):
        sign_aisha(AISHA_BODY, AISHA_SECRET, ts=ts, event_id=EVENT_ID)


def test_signing_refuses_an_empty_secret() -> None:
    """The signers refuse an empty secret instead of producing a forgeable signature."""
    with pytest.raises(ValueError, match="empty secret"):
        sign_m3(M3_BODY, "", ts=NOW)
    with pytest.raises(ValueError, match="empty secret"):
        sign_aisha(AISHA_BODY, "", event_id=EVENT_ID)


@pytest.mark.skipif(not SHARED_VECTORS.exists(), reason="no ../shared beside this clone: the kept copy is what runs")
def test_the_kept_copy_of_the_vectors_is_the_shared_original() -> None:
    """tests/vectors is a copy for clones without ../shared; it must not drift from the original."""
    copy = json.loads(KEPT_VECTORS.read_text("utf-8"))
    assert copy == json.loads(SHARED_VECTORS.read_text("utf-8"))
