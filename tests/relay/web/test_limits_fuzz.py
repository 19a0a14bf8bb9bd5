"""Every admin and hook field, driven at and past its limits, on both databases.

Dates at the ends of the calendar, the longest ids and one character more, NUL, control
characters, lone surrogates: whatever is sent, the answer is never a 5xx, and nothing
that was stored can later break a read (the lists, the status document, the next signal).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import fresh_database
from tests.driver import ADMIN, AISHA_GRANT, ANA, GRANT, escalation, panic
from tests.support import ServerThread, aisha_headers, m3_headers, make_settings

#: lengths around every limit the relay states (ids 100/200, grant ids 64, labels 100, names 200, subjects 240)
EDGE_LENGTHS = [0, 1, 39, 40, 41, 63, 64, 65, 99, 100, 101, 199, 200, 201, 239, 240, 241, 300]
EDGE_STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\x1b]0;x\x07",
            "\x1b[2J",
            "\r",
            "\u202e",
            "\ud800",
            "x\udfff",
            "😀",
            "é",
            ".",
            "..",
        ]
    ),
    st.builds(lambda n, c: c * n, st.sampled_from(EDGE_LENGTHS), st.sampled_from(["a", "é", "😀", "\x00", "-"])),
    st.text(max_size=120),
)
OFFSETS = st.sampled_from(["Z", "+00:00", "+14:00", "-14:00", "", "+23:59"])
EDGE_DATES = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2038-01-19T03:14:08Z",
            "not a date",
            "",
        ]
    ),
    st.builds(
        lambda d, o: d.isoformat(timespec="seconds") + o,
        # naive on purpose: the offset is added as text after isoformat()
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),  # noqa: DTZ001
        OFFSETS,
    ),
)
JSON_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.one_of(EDGE_STRINGS, EDGE_DATES, JSON_ODD, st.lists(EDGE_STRINGS, max_size=3))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The real app (dev mode) on a fresh database of each kind, with Ana and the grants for Raz and the tenant."""
    with fresh_database(request.param, tmp_path_factory) as url, ServerThread(make_settings(url, dev=True)) as running:
        call(running, "POST", "/admin/agents", ANA)
        for grant in (GRANT, AISHA_GRANT):
            call(running, "POST", "/admin/consents", grant)
        yield running


def call(
    server: ServerThread, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """A call with the admin bearer (a hook ignores it): the status and the JSON answer (or raw bytes)."""
    return server.json(method, path, body, {**ADMIN, **(headers or {})})


def assert_reads(server: ServerThread) -> None:
    """Every list still reads, and the next ordinary signal is taken and its status read."""
    for path in ("/admin/agents", "/admin/consents", "/admin/inbox?limit=200", "/admin/audit?limit=200"):
        status, body = call(server, "GET", path)
        assert status == 200, (path, body)
    payload = panic()
    body = json.dumps(payload).encode()
    status, answer = call(server, "POST", "/hooks/m3", body, m3_headers(body, "panic.ui"))
    assert status == 202, answer
    status, document = call(server, "GET", answer["status_url"])
    assert status == 200, document


def path_segment(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


AGENT_FIELDS = ["id", "display", "groups", "slack_user", "phone", "whatsapp", "channels", "quiet_hours", "tz", "active"]
GRANT_FIELDS = ["id", "subject", "scope", "groups", "channels", "min_confidence", "expires_at", "by"]
PROFILE = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@PROFILE
@given(field=st.sampled_from(AGENT_FIELDS), value=VALUES, patch=st.booleans())
def test_agent_fields_at_their_limits(server: ServerThread, field: str, value: Any, patch: bool) -> None:
    """POST and PATCH /admin/agents with one field at or past its limit: a 2xx or a 4xx, and every read still works."""
    if patch and field != "id":
        status, body = call(server, "PATCH", "/admin/agents/ana", {field: value})
    else:
        agent = {"id": f"a{abs(hash((field, repr(value)))) % 10**9}", "display": "Someone", field: value}
        status, body = call(server, "POST", "/admin/agents", agent)
        if status == 201:
            assert call(server, "GET", f"/admin/agents/{path_segment(body['id'])}")[0] == 200
            assert call(server, "DELETE", f"/admin/agents/{path_segment(body['id'])}")[0] == 204
    assert status < 500, body
    assert_reads(server)


@PROFILE
@given(field=st.sampled_from(GRANT_FIELDS), value=VALUES, by=EDGE_STRINGS)
def test_grant_fields_at_their_limits(server: ServerThread, field: str, value: Any, by: str) -> None:
    """POST /admin/consents with one field at or past its limit, then DELETE with an odd `by`: never a 5xx."""
    grant = {"subject": "actor:someone", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin", field: value}
    status, body = call(server, "POST", "/admin/consents", grant)
    assert status < 500, body
    if status == 201:
        revoked, answer = call(server, "DELETE", f"/admin/consents/{path_segment(body['id'])}?by={path_segment(by)}")
        assert revoked < 500, answer
    assert_reads(server)


M3_PLACES = [
    ("id",),
    ("ts",),
    ("actor", "id"),
    ("actor", "display"),
    ("audience", "groups"),
    ("audience", "targets"),
    ("intent", "whisper"),
    ("intent", "why"),
    ("intent", "suggested_responses"),
    ("intent", "care_window_minutes"),
    ("security", "nonce"),
    ("security", "ts_window_sec"),
    ("consent", "expires_at"),
    ("consent", "scope"),
]
AISHA_PLACES = [
    ("event_id",),
    ("ts",),
    ("entity_id",),
    ("reason",),
    ("reasons",),
    ("deep_link",),
    ("meta",),
    ("signal_entity_id",),
]


def _placed(payload: dict[str, Any], place: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = payload
    for key in place[:-1]:
        target = target.setdefault(key, {})
    target[place[-1]] = value
    return payload


@PROFILE
@given(place=st.sampled_from(M3_PLACES), value=VALUES, window=st.sampled_from([None, 1, 525_600]))
def test_m3_fields_at_their_limits(
    server: ServerThread, place: tuple[str, ...], value: Any, window: int | None
) -> None:
    """A signed panic.ui with one field at or past its limit: 202, 200, 409 or 422, never a 5xx; reads go on."""
    payload = panic()
    if window is not None:
        payload["intent"]["care_window_minutes"] = window
    _placed(payload, place, value)
    body = json.dumps(payload, ensure_ascii=True).encode()
    status, answer = call(server, "POST", "/hooks/m3", body, m3_headers(body, "panic.ui"))
    assert status < 500, answer
    if status in (200, 202):
        assert call(server, "GET", answer["status_url"])[0] == 200
    assert_reads(server)


@PROFILE
@given(place=st.sampled_from(AISHA_PLACES), value=VALUES)
def test_aisha_fields_at_their_limits(server: ServerThread, place: tuple[str, ...], value: Any) -> None:
    """A signed escalation with one field at or past its limit: never a 5xx; reads go on."""
    payload = escalation()
    _placed(payload, place, value)
    event_id = payload.get("event_id")
    body = json.dumps(payload, ensure_ascii=True).encode()
    header_id = event_id if isinstance(event_id, str) and event_id.isprintable() and event_id.isascii() else "x"
    status, answer = call(server, "POST", "/hooks/aisha", body, aisha_headers(body, header_id))
    assert status < 500, answer
    if status in (200, 202):
        assert call(server, "GET", answer["status_url"])[0] == 200
    assert_reads(server)


@PROFILE
@given(segment=EDGE_STRINGS, query=EDGE_STRINGS)
def test_ids_in_urls_at_their_limits(server: ServerThread, segment: str, query: str) -> None:
    """Status, agent and grant URLs with odd ids and query values: never a 5xx."""
    seg, q = path_segment(segment), path_segment(query)
    for method, path in (
        ("GET", f"/v1/events/{seg}?source=m3"),
        ("GET", f"/v1/events/{seg}?token={q}"),
        ("GET", f"/admin/agents/{seg}"),
        ("PATCH", f"/admin/agents/{seg}"),
        ("DELETE", f"/admin/agents/{seg}"),
        ("DELETE", f"/admin/consents/{seg}?by={q}"),
        ("GET", f"/admin/consents?subject={q}"),
        ("GET", f"/admin/inbox?status={q}&cursor={q}"),
        ("GET", f"/a/{seg}"),
    ):
        status, body = call(server, method, path, {} if method == "PATCH" else None)
        assert status < 500, (method, path, body)
