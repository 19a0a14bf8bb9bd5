"""Payload parsing for both senders: fixtures parse, and each contract rule has a row."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from receivers import aisha, m3
from relay.errors import InvalidPayloadError, UnsupportedEventTypeError
from relay.model import PayloadConsent, Signal
from tests.support import FIXTURES, fixture

PARSERS: dict[str, ModuleType] = {"m3": m3, "aisha": aisha}
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.json"))
GOLDEN = {"m3": "panic.ui__golden", "aisha": "care.escalation_detected__golden"}
SENTINEL = "SECRET-CARE-DATA-7f3a"


def _parent(payload: dict[str, Any], path: str) -> tuple[dict[str, Any], Any, str]:
    """A deep copy of `payload`, the node holding the dotted `path` in it, and the path's last key."""
    result = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node[key]
    return result, node, last


def changed(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `payload` with the dotted `path` set to `value`."""
    result, node, last = _parent(payload, path)
    node[last] = value
    return result


def without(payload: dict[str, Any], path: str) -> dict[str, Any]:
    """A deep copy of `payload` with the dotted `path` removed."""
    result, node, last = _parent(payload, path)
    del node[last]
    return result


def rejected(parser: ModuleType, payload: Any) -> list[dict[str, Any]]:
    """Parse expecting `InvalidPayload`; return its `fields`."""
    with pytest.raises(InvalidPayloadError) as caught:
        parser.parse(payload)
    fields: list[dict[str, Any]] = caught.value.body()["fields"]
    return fields


def locs(fields: list[dict[str, Any]]) -> list[list[str | int]]:
    """The `loc` of every reported field."""
    return [field["loc"] for field in fields]


# --- fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_fixture_parses_into_a_signal_of_its_type(path: Path) -> None:
    """Each fixture `<source>/<type>__<variant>.json` parses into a Signal of that source and type."""
    source, event_type = path.parent.name, path.stem.split("__")[0]
    signal = PARSERS[source].parse(json.loads(path.read_text("utf-8")))
    assert isinstance(signal, Signal)
    assert (signal.source, signal.type) == (source, event_type)
    assert signal.subject.startswith("actor:" if source == "m3" else "tenant:")
    assert signal.ts.utcoffset() == timedelta(0)


def test_fixture_types_are_all_registered() -> None:
    """Every registered event type has at least one fixture, and every fixture a registered type."""
    seen = {(p.parent.name, p.stem.split("__")[0]) for p in FIXTURE_FILES}
    registered = {(source, t) for source, parser in PARSERS.items() for t in parser.EVENT_TYPES}
    assert seen == registered


def test_m3_golden_fills_the_signal() -> None:
    """The golden panic.ui fills subject, audience, intent, consent and nonce."""
    signal = m3.parse(fixture("m3", "panic.ui__golden"))
    assert signal == Signal(
        source="m3",
        event_id="evt_01JHCARE001",
        type="panic.ui",
        ts=datetime(2026, 1, 7, 10, 12, tzinfo=UTC),
        subject="actor:raz",
        actor_display="Raz",
        groups=("care-circle",),
        targets=("ana",),
        whisper="Sunt aici. Nu e urgență. Aș vrea însoțire.",
        suggested_responses=("soft-checkin", "hold-space"),
        care_window_minutes=30,
        payload_consent=PayloadConsent(mode="explicit", scope=("panic.ui",), expires_at=None),
        nonce="a1",
    )


def test_m3_without_consent_block_has_no_payload_consent() -> None:
    """A missing consent block is not an error: payload_consent is None."""
    signal = m3.parse(fixture("m3", "panic.ui__no_consent"))
    assert signal.payload_consent is None
    assert signal.nonce == "d41f07"


def test_m3_minimal_envelope_takes_the_defaults() -> None:
    """Only the required fields: empty audience, default response, unlimited window."""
    signal = m3.parse(fixture("m3", "panic.ui__minimal"))
    assert (signal.groups, signal.targets) == ((), ())
    assert signal.suggested_responses == ("soft-checkin",)
    assert signal.care_window_minutes is None
    assert (signal.actor_display, signal.whisper, signal.nonce, signal.payload_consent) == (None,) * 4


def test_m3_mixed_targets_fixture() -> None:
    """Offsets become UTC, groups and user targets are de-duplicated, consent expiry is read."""
    signal = m3.parse(fixture("m3", "status.set__mixed_targets"))
    assert signal.ts == datetime(2026, 1, 7, 10, 20, tzinfo=UTC)
    assert signal.groups == ("care-circle", "night-shift")
    assert signal.targets == ("ana", "codex")
    assert signal.payload_consent is not None
    assert signal.payload_consent.expires_at == datetime(2026, 7, 1, tzinfo=UTC)


def test_aisha_golden_escalation_fills_the_signal() -> None:
    """The golden escalation fills the C.A.R.E. fields and the tenant subject."""
    signal = aisha.parse(fixture("aisha", "care.escalation_detected__golden"))
    assert signal == Signal(
        source="aisha",
        event_id="8d6f2b1e-4c3a-4f7e-9a10-2b5c6d7e8f90",
        type="care.escalation_detected",
        ts=datetime(2026, 1, 26, 12, 34, 56, 789000, tzinfo=UTC),
        subject="tenant:a11dfb63-4b18-4eb8-872e-747af2e37c46",
        action_origin="care_autonomous",
        origin_uncertain=False,
        policy_gate_result="escalated",
        reason="Caller asked for a human twice",
        reasons=("explicit_human_request", "negative_sentiment"),
        confidence="high",
        deep_link="/app/contacts/6b1c8f0e-2d4a-4e5b-8c9d-0e1f2a3b4c5d",
        entity_type="contact",
        entity_id="6b1c8f0e-2d4a-4e5b-8c9d-0e1f2a3b4c5d",
        signal_entity_type="call",
        signal_entity_id="9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
    )


def test_aisha_legacy_meta_source_fills_signal_entity() -> None:
    """signal_entity_* absent at top level are read from meta.source_entity_*."""
    signal = aisha.parse(fixture("aisha", "care.trigger_detected__legacy_meta_source"))
    assert (signal.signal_entity_type, signal.signal_entity_id) == (
        "activity",
        "7c5a3e1f-9d8b-4c6a-8e4f-2a1c3e5b7d9f",
    )
    assert signal.trigger_type == "activity_overdue"


def test_aisha_top_level_signal_entity_wins_over_meta() -> None:
    """When both are given, the top-level signal_entity_* is used, not the deprecated meta one."""
    payload = fixture("aisha", "care.trigger_detected__golden")
    payload["meta"].update(source_entity_type="call", source_entity_id="other")
    signal = aisha.parse(payload)
    assert (signal.signal_entity_type, signal.signal_entity_id) == (
        "activity",
        "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b",
    )


def test_aisha_lead_with_non_uuid_entity_and_upper_case_tenant() -> None:
    """A non-UUID entity_id is accepted and an upper-case tenant UUID is lower-cased in the subject."""
    signal = aisha.parse(fixture("aisha", "care.trigger_detected__lead_stagnant"))
    assert signal.entity_id == "lead_000482"
    assert signal.subject == "tenant:a11dfb63-4b18-4eb8-872e-747af2e37c46"


def test_aisha_state_applied_carries_care_state() -> None:
    """care.state_applied fills care_state and no escalation fields."""
    signal = aisha.parse(fixture("aisha", "care.state_applied__golden"))
    assert signal.care_state == "reactivated"
    assert (signal.reasons, signal.confidence) == ((), None)


@pytest.mark.parametrize(
    ("name", "origin", "uncertain"),
    [
        ("care.escalation_detected__golden", "care_autonomous", False),
        ("care.escalation_detected__user_directed", "user_directed", False),
        ("care.escalation_detected__no_origin", "care_autonomous", True),
    ],
)
def test_aisha_fixture_action_origin(name: str, origin: str, uncertain: bool) -> None:
    """Each fixture's action_origin, and whether it had to be assumed."""
    signal = aisha.parse(fixture("aisha", name))
    assert (signal.action_origin, signal.origin_uncertain) == (origin, uncertain)


# --- both senders -----------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("body", [[], ["panic.ui"], "panic.ui", 42, 4.2, True, None])
def test_non_object_body_is_invalid_at_the_root(source: str, body: Any) -> None:
    """A body that is not a JSON object is invalid_payload with loc []."""
    fields = rejected(PARSERS[source], body)
    assert fields == [{"loc": [], "msg": "The body should be a JSON object"}]


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("event_type", ["foo.bar", "", "care.ack", "PANIC.UI"])
def test_unknown_type_is_unsupported_before_the_schema(source: str, event_type: str) -> None:
    """An unknown string type is unsupported_event_type even when nothing else is valid."""
    with pytest.raises(UnsupportedEventTypeError) as caught:
        PARSERS[source].parse({"type": event_type})
    assert caught.value.status == 422
    for known in PARSERS[source].EVENT_TYPES:
        assert known in caught.value.detail


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("event_type", [None, 7, ["panic.ui"]])
def test_non_string_type_is_invalid_payload(source: str, event_type: Any) -> None:
    """A null or non-string type is reported at loc ['type'], not as unsupported."""
    fields = rejected(PARSERS[source], changed(fixture(source, GOLDEN[source]), "type", event_type))
    assert locs(fields) == [["type"]]


@pytest.mark.parametrize("source", sorted(PARSERS))
def test_missing_type_is_invalid_payload(source: str) -> None:
    """A missing type is invalid_payload at loc ['type']."""
    fields = rejected(PARSERS[source], without(fixture(source, GOLDEN[source]), "type"))
    assert locs(fields) == [["type"]]


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("ts", ["2026-01-07", "1706234567", 1706234567, "yesterday", "2026-13-07T10:12:00Z", ""])
def test_ts_must_be_an_iso_datetime_string(source: str, ts: Any) -> None:
    """ts refuses dates without a time, Unix numbers, words and impossible dates."""
    fields = rejected(PARSERS[source], changed(fixture(source, GOLDEN[source]), "ts", ts))
    assert locs(fields) == [["ts"]]


@pytest.mark.parametrize("source", sorted(PARSERS))
def test_naive_ts_is_taken_as_utc(source: str) -> None:
    """A ts without an offset is read as UTC."""
    payload = changed(fixture(source, GOLDEN[source]), "ts", "2026-01-07T10:12:00")
    assert PARSERS[source].parse(payload).ts == datetime(2026, 1, 7, 10, 12, tzinfo=UTC)


@pytest.mark.parametrize("source", sorted(PARSERS))
def test_unknown_top_level_keys_are_ignored(source: str) -> None:
    """Unknown keys are allowed for forward compatibility."""
    payload = fixture(source, GOLDEN[source])
    payload.update(schema_version="2", extra_block={"anything": [1, 2]})
    assert PARSERS[source].parse(payload).type == payload["type"]


@pytest.mark.parametrize(
    ("source", "path", "value"),
    [
        ("m3", "intent.care_window_minutes", SENTINEL),
        ("m3", "intent.whisper", [SENTINEL]),
        ("m3", "audience.targets", SENTINEL),
        ("m3", "ts", SENTINEL),
        ("aisha", "tenant_id", SENTINEL),
        ("aisha", "entity_type", SENTINEL),
        ("aisha", "confidence", SENTINEL),
        ("aisha", "deep_link", SENTINEL),
        ("aisha", "meta", {"note": SENTINEL * 400}),
    ],
)
def test_error_fields_never_echo_the_input(source: str, path: str, value: Any) -> None:
    """Reported fields carry only loc and msg, and no message repeats the sender's data."""
    fields = rejected(PARSERS[source], changed(fixture(source, GOLDEN[source]), path, value))
    assert all(set(field) == {"loc", "msg"} for field in fields)
    assert SENTINEL not in json.dumps(fields)


# --- M3 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["id", "ts", "actor", "actor.id", "audience", "intent", "consent.mode"])
def test_m3_missing_required_field(path: str) -> None:
    """Each required M3 field, when left out, is reported at its own loc."""
    fields = rejected(m3, without(fixture("m3", "panic.ui__golden"), path))
    assert locs(fields) == [path.split(".")]


@pytest.mark.parametrize(
    ("path", "value", "loc"),
    [
        ("id", "", ["id"]),
        ("id", "   ", ["id"]),
        ("id", 1234, ["id"]),
        ("id", "e" * 201, ["id"]),
        ("actor", "raz", ["actor"]),
        ("actor.id", "", ["actor", "id"]),
        ("actor.id", None, ["actor", "id"]),
        ("audience", ["care-circle"], ["audience"]),
        ("audience", None, ["audience"]),
        ("intent", "signal-care", ["intent"]),
        ("audience.groups", "care-circle", ["audience", "groups"]),
        ("audience.groups", ["care-circle", 5], ["audience", "groups", 1]),
        ("audience.groups", [""], ["audience", "groups", 0]),
        ("audience.groups", ["g" * 101], ["audience", "groups", 0]),
        ("audience.groups", [f"g{i}" for i in range(51)], ["audience", "groups"]),
        ("audience.targets", [f"user:a{i}" for i in range(51)], ["audience", "targets"]),
        ("intent.whisper", "w" * 2001, ["intent", "whisper"]),
        ("intent.whisper", 42, ["intent", "whisper"]),
        ("intent.suggested_responses", [""], ["intent", "suggested_responses", 0]),
        ("intent.suggested_responses", ["ok", 3], ["intent", "suggested_responses", 1]),
        ("intent.suggested_responses", ["r" * 65], ["intent", "suggested_responses", 0]),
        ("intent.suggested_responses", [f"r{i}" for i in range(11)], ["intent", "suggested_responses"]),
        ("intent.suggested_responses", "soft-checkin", ["intent", "suggested_responses"]),
        ("consent", "explicit", ["consent"]),
        ("consent.scope", "panic.ui", ["consent", "scope"]),
        ("consent.expires_at", "soon", ["consent", "expires_at"]),
        ("security.nonce", "", ["security", "nonce"]),
        ("security.nonce", 17, ["security", "nonce"]),
    ],
)
def test_m3_wrong_value(path: str, value: Any, loc: list[str | int]) -> None:
    """A value of the wrong type, empty, or over its cap is reported at its loc."""
    fields = rejected(m3, changed(fixture("m3", "panic.ui__golden"), path, value))
    assert locs(fields) == [loc]


@pytest.mark.parametrize("value", [0, -1, 1.5, 30.0, "30", True, False, 525_601, [30]])
def test_m3_bad_care_window_minutes(value: Any) -> None:
    """care_window_minutes must be a strict positive integer up to a year."""
    fields = rejected(m3, changed(fixture("m3", "panic.ui__golden"), "intent.care_window_minutes", value))
    assert locs(fields) == [["intent", "care_window_minutes"]]


@pytest.mark.parametrize("value", [1, 30, 525_600])
def test_m3_good_care_window_minutes(value: int) -> None:
    """Positive integers up to a year are kept as the care window."""
    payload = changed(fixture("m3", "panic.ui__golden"), "intent.care_window_minutes", value)
    assert m3.parse(payload).care_window_minutes == value


@pytest.mark.parametrize("present", [False, True])
def test_m3_absent_care_window_means_unlimited(present: bool) -> None:
    """care_window_minutes absent or null gives None (unlimited)."""
    payload = fixture("m3", "panic.ui__golden")
    payload = (
        changed(payload, "intent.care_window_minutes", None)
        if present
        else without(payload, "intent.care_window_minutes")
    )
    assert m3.parse(payload).care_window_minutes is None


@pytest.mark.parametrize("value", [0, -300, 1.5, "300", True])
def test_m3_bad_ts_window_sec(value: Any) -> None:
    """security.ts_window_sec, when present, must be a strict positive integer."""
    fields = rejected(m3, changed(fixture("m3", "panic.ui__golden"), "security.ts_window_sec", value))
    assert locs(fields) == [["security", "ts_window_sec"]]


@pytest.mark.parametrize("intent", [{}, {"suggested_responses": None}, {"suggested_responses": []}])
def test_m3_suggested_responses_default(intent: dict[str, Any]) -> None:
    """Absent, null or empty suggested_responses become ['soft-checkin']."""
    payload = changed(fixture("m3", "panic.ui__golden"), "intent", intent)
    assert m3.parse(payload).suggested_responses == ("soft-checkin",)


def test_m3_suggested_responses_keep_order_without_duplicates() -> None:
    """Given responses keep their order; a repeated one is offered once."""
    payload = changed(
        fixture("m3", "panic.ui__golden"), "intent.suggested_responses", ["hold-space", "soft-checkin", "hold-space"]
    )
    assert m3.parse(payload).suggested_responses == ("hold-space", "soft-checkin")


@pytest.mark.parametrize(
    ("targets", "agents"),
    [
        ([], ()),
        (["user:ana"], ("ana",)),
        (["user:ana", "user:codex"], ("ana", "codex")),
        (["group:care-circle", "ana", "User:bo", "user:", "user:  "], ()),
        (["user:ana", "email:x@example.org", "user:ana", "user:mira"], ("ana", "mira")),
        (["user:user:odd"], ("user:odd",)),
    ],
)
def test_m3_targets_map_to_agent_ids(targets: list[str], agents: tuple[str, ...]) -> None:
    """Only user:<id> targets name agents; the prefix is stripped and other forms ignored."""
    payload = changed(fixture("m3", "panic.ui__golden"), "audience.targets", targets)
    assert m3.parse(payload).targets == agents


@pytest.mark.parametrize("audience", [{}, {"groups": None, "targets": None}])
def test_m3_audience_lists_default_to_empty(audience: dict[str, Any]) -> None:
    """groups and targets absent or null are empty."""
    signal = m3.parse(changed(fixture("m3", "panic.ui__golden"), "audience", audience))
    assert (signal.groups, signal.targets) == ((), ())


@pytest.mark.parametrize("block", ["consent", "security"])
def test_m3_optional_blocks_may_be_null(block: str) -> None:
    """consent: null and security: null read as absent."""
    signal = m3.parse(changed(fixture("m3", "panic.ui__golden"), block, None))
    assert signal.payload_consent is None if block == "consent" else signal.nonce is None


def test_m3_non_explicit_consent_is_parsed_not_judged() -> None:
    """A consent mode other than explicit is parsed as given; judging it is the router's job."""
    payload = changed(fixture("m3", "panic.ui__golden"), "consent", {"mode": "implicit"})
    assert m3.parse(payload).payload_consent == PayloadConsent(mode="implicit", scope=())


@pytest.mark.parametrize("context", [None, [], "breath", {"deep": {"nested": [1, 2, 3]}}])
def test_m3_context_and_sig_are_not_read(context: Any) -> None:
    """context and security.sig may hold anything."""
    payload = changed(fixture("m3", "panic.ui__golden"), "context", context)
    payload = changed(payload, "security.sig", {"alg": "hmac-sha256"})
    assert m3.parse(payload).event_id == "evt_01JHCARE001"


@pytest.mark.parametrize(
    ("note", "kept"),
    [
        ("low energy", "low energy"),
        ("  low energy \n", "low energy"),
        ("low\x00energy\u202e", "low energy"),
        ("\x1b[31m", "[31m"),
        ("\n\t ", None),
        ("", None),
        (7, None),
        ("x" * 900, "x" * 500),
        ("\x07" + "y" * 600, "y" * 500),
    ],
)
def test_m3_context_status_and_note_are_kept_printable_and_short(note: Any, kept: str | None) -> None:
    """context.status / context.note: control characters become spaces, the ends are trimmed, 500 at most."""
    payload = changed(fixture("m3", "panic.ui__golden"), "context", {"status": note, "note": note})
    signal = m3.parse(payload)
    assert (signal.context_status, signal.context_note) == (kept, kept)


def test_m3_several_problems_are_reported_together() -> None:
    """All problems of one body are reported at once, each at its loc."""
    payload = without(fixture("m3", "panic.ui__golden"), "actor.id")
    payload = changed(payload, "intent.care_window_minutes", 0)
    assert sorted(map(str, locs(rejected(m3, payload)))) == sorted(
        [str(["actor", "id"]), str(["intent", "care_window_minutes"])]
    )


# --- AiSHA ------------------------------------------------------------------------------

AISHA_GOLDEN = {
    "care.escalation_detected": "care.escalation_detected__golden",
    "care.trigger_detected": "care.trigger_detected__golden",
    "care.state_applied": "care.state_applied__golden",
}
AISHA_COMMON_REQUIRED = ["event_id", "ts", "tenant_id", "entity_type", "entity_id", "reason", "policy_gate_result"]
AISHA_TYPE_REQUIRED = {
    "care.escalation_detected": ["reasons", "confidence"],
    "care.trigger_detected": ["trigger_type", "signal_entity_type", "signal_entity_id"],
    "care.state_applied": ["care_state"],
}


@pytest.mark.parametrize(
    ("event_type", "field"),
    [(t, f) for t in AISHA_GOLDEN for f in AISHA_COMMON_REQUIRED + AISHA_TYPE_REQUIRED[t]],
)
def test_aisha_missing_required_field(event_type: str, field: str) -> None:
    """Each field required for the type, when left out, is reported at its own loc."""
    fields = rejected(aisha, without(fixture("aisha", AISHA_GOLDEN[event_type]), field))
    assert locs(fields) == [[field]]


@pytest.mark.parametrize(
    ("event_type", "field"),
    [(t, f) for t in AISHA_GOLDEN for f in AISHA_COMMON_REQUIRED + AISHA_TYPE_REQUIRED[t]],
)
def test_aisha_null_required_field(event_type: str, field: str) -> None:
    """A required field sent as null is reported at its own loc."""
    fields = rejected(aisha, changed(fixture("aisha", AISHA_GOLDEN[event_type]), field, None))
    assert locs(fields) == [[field]]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("entity_type", "person"),
        ("entity_type", "Contact"),
        ("entity_type", "activity"),
        ("policy_gate_result", "maybe"),
        ("policy_gate_result", "ALLOWED"),
        ("confidence", "very"),
        ("confidence", 0.9),
    ],
)
def test_aisha_wrong_enum(path: str, value: Any) -> None:
    """entity_type, policy_gate_result and confidence only take the contract's values."""
    fields = rejected(aisha, changed(fixture("aisha", "care.escalation_detected__golden"), path, value))
    assert locs(fields) == [[path]]


@pytest.mark.parametrize("value", ["lead", "contact", "account", "opportunity"])
def test_aisha_every_entity_type_is_accepted(value: str) -> None:
    """All four relationship anchors parse."""
    payload = changed(fixture("aisha", "care.escalation_detected__golden"), "entity_type", value)
    assert aisha.parse(payload).entity_type == value


@pytest.mark.parametrize(
    ("path", "value", "loc"),
    [
        ("event_id", "", ["event_id"]),
        ("event_id", "e" * 201, ["event_id"]),
        ("tenant_id", "acme", ["tenant_id"]),
        ("tenant_id", "a11dfb634b184eb8872e747af2e37c46", ["tenant_id"]),
        ("tenant_id", 42, ["tenant_id"]),
        ("entity_id", "", ["entity_id"]),
        ("entity_id", 4711, ["entity_id"]),
        ("entity_id", "x" * 201, ["entity_id"]),
        ("reason", "", ["reason"]),
        ("reason", "   ", ["reason"]),
        ("reason", "r" * 1001, ["reason"]),
        ("reasons", [], ["reasons"]),
        ("reasons", "negative_sentiment", ["reasons"]),
        ("reasons", ["negative_sentiment", ""], ["reasons", 1]),
        ("reasons", [f"r{i}" for i in range(21)], ["reasons"]),
        ("deep_link", "https://evil.example/app", ["deep_link"]),
        ("deep_link", "//evil.example/app", ["deep_link"]),
        ("deep_link", "/app/contacts/a b", ["deep_link"]),
        ("deep_link", 7, ["deep_link"]),
        ("meta", ["call_minutes", 7], ["meta"]),
        ("meta", "call_minutes=7", ["meta"]),
        ("previous_state", 3, ["previous_state"]),
    ],
)
def test_aisha_wrong_value(path: str, value: Any, loc: list[str | int]) -> None:
    """A value of the wrong type, empty, or over its cap is reported at its loc."""
    fields = rejected(aisha, changed(fixture("aisha", "care.escalation_detected__golden"), path, value))
    assert locs(fields) == [loc]


def test_aisha_empty_deep_link_reads_as_absent() -> None:
    """deep_link "" or null is no link at all."""
    for value in ("", None):
        payload = changed(fixture("aisha", "care.escalation_detected__golden"), "deep_link", value)
        assert aisha.parse(payload).deep_link is None


def _meta_of_size(size: int, char: str = "x") -> dict[str, str]:
    """A meta whose compact JSON encoding is exactly `size` bytes, mostly made of `char`."""
    room = size - len(b'{"note":""}')
    count, padding = divmod(room, len(char.encode()))
    meta = {"note": char * count + "x" * padding}
    assert len(json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode()) == size
    return meta


@pytest.mark.parametrize("char", ["x", "ă"])
def test_aisha_meta_at_the_cap_is_accepted(char: str) -> None:
    """meta of exactly 4096 bytes as compact UTF-8 JSON parses."""
    payload = changed(fixture("aisha", "care.escalation_detected__golden"), "meta", _meta_of_size(4096, char))
    assert aisha.parse(payload).type == "care.escalation_detected"


@pytest.mark.parametrize(("size", "char"), [(4097, "x"), (4097, "ă"), (20000, "x")])
def test_aisha_meta_too_big(size: int, char: str) -> None:
    """meta over 4096 bytes (counted in UTF-8, not characters) is reported at loc ['meta']."""
    payload = changed(fixture("aisha", "care.escalation_detected__golden"), "meta", _meta_of_size(size, char))
    assert locs(rejected(aisha, payload)) == [["meta"]]


@pytest.mark.parametrize("event_type", sorted(AISHA_GOLDEN))
def test_aisha_meta_is_optional(event_type: str) -> None:
    """meta absent or null is fine for every type."""
    payload = fixture("aisha", AISHA_GOLDEN[event_type])
    for body in (without(payload, "meta"), changed(payload, "meta", None)):
        assert aisha.parse(body).type == event_type


@pytest.mark.parametrize("top_level", ["absent", None, ""])
def test_aisha_legacy_meta_source_fallback(top_level: Any) -> None:
    """signal_entity_* absent, null or "" at top level fall back to meta.source_entity_*."""
    payload = fixture("aisha", "care.trigger_detected__golden")
    payload["meta"].update(source_entity_type="activity", source_entity_id="act-9")
    for field in ("signal_entity_type", "signal_entity_id"):
        payload = without(payload, field) if top_level == "absent" else changed(payload, field, top_level)
    signal = aisha.parse(payload)
    assert (signal.signal_entity_type, signal.signal_entity_id) == ("activity", "act-9")


def test_aisha_trigger_without_any_signal_source_names_both_fields() -> None:
    """A trigger with neither signal_entity_* nor meta.source_entity_* is reported at both locs."""
    payload = without(
        without(fixture("aisha", "care.trigger_detected__golden"), "signal_entity_type"), "signal_entity_id"
    )
    assert locs(rejected(aisha, payload)) == [["signal_entity_type"], ["signal_entity_id"]]


@pytest.mark.parametrize(
    ("origin", "expected", "uncertain"),
    [
        ("user_directed", "user_directed", False),
        ("care_autonomous", "care_autonomous", False),
        ("absent", "care_autonomous", True),
        (None, "care_autonomous", True),
        ("", "care_autonomous", True),
        ("autonomous", "care_autonomous", True),
        ("USER_DIRECTED", "care_autonomous", True),
        (1, "care_autonomous", True),
        ({"kind": "user_directed"}, "care_autonomous", True),
    ],
)
def test_aisha_action_origin_uncertainty(origin: Any, expected: str, uncertain: bool) -> None:
    """A missing or unknown action_origin is care_autonomous with origin_uncertain, never an error."""
    payload = fixture("aisha", "care.escalation_detected__golden")
    payload = without(payload, "action_origin") if origin == "absent" else changed(payload, "action_origin", origin)
    signal = aisha.parse(payload)
    assert (signal.action_origin, signal.origin_uncertain) == (expected, uncertain)


@pytest.mark.parametrize("event_type", sorted(AISHA_GOLDEN))
def test_aisha_subject_is_the_lower_case_tenant(event_type: str) -> None:
    """The subject is tenant:<uuid> in lower case whatever case the sender used."""
    payload = changed(fixture("aisha", AISHA_GOLDEN[event_type]), "tenant_id", "A11DFB63-4B18-4EB8-872E-747AF2E37C46")
    assert aisha.parse(payload).subject == "tenant:a11dfb63-4b18-4eb8-872e-747af2e37c46"


def test_aisha_type_specific_fields_are_not_required_elsewhere() -> None:
    """A state change needs neither reasons nor trigger_type; an escalation needs no care_state."""
    state = aisha.parse(fixture("aisha", "care.state_applied__golden"))
    escalation = aisha.parse(fixture("aisha", "care.escalation_detected__golden"))
    assert (state.trigger_type, escalation.care_state) == (None, None)


@pytest.mark.parametrize("event_id", [".", ".."])
@pytest.mark.parametrize("source", ["m3", "aisha"])
def test_event_id_that_cannot_be_a_path_segment_is_refused(source: str, event_id: str) -> None:
    """'.' and '..' would give a status URL that clients collapse; other ids with dots are fine."""
    field = "id" if source == "m3" else "event_id"
    parser = m3 if source == "m3" else aisha
    assert locs(rejected(parser, changed(fixture(source, GOLDEN[source]), field, event_id))) == [[field]]
    assert parser.parse(changed(fixture(source, GOLDEN[source]), field, "...")).event_id == "..."
