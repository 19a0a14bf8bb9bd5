"""The routing policy: table-driven gates and channels with a fixed clock, plus properties."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from relay.model import (
    CONFIDENCE_RANK,
    LOOP_STATUSES,
    PAGER_CHANNELS,
    Agent,
    Decision,
    Grant,
    PayloadConsent,
    PlannedInvitation,
    RoutingSettings,
    Signal,
)
from relay.router import decide
from relay.timing import in_quiet_hours, parse_quiet_hours

NOW = datetime(2026, 1, 7, 10, 20, tzinfo=UTC)
NIGHT = datetime(2026, 1, 7, 23, 30, tzinfo=UTC)
TENANT = "tenant:a11dfb63-4b18-4eb8-872e-747af2e37c46"
ESCALATION = "care.escalation_detected"
TRIGGER = "care.trigger_detected"
STATE = "care.state_applied"
ALL_CHANNELS = frozenset({"slack", "sms", "whatsapp", "console"})
SETTINGS = RoutingSettings(configured_channels=ALL_CHANNELS)
WHISPER = "Sunt aici. Nu e urgență."


def m3(**changes: Any) -> Signal:
    """An M3 panic.ui from actor:raz to care-circle that passes every gate."""
    base = Signal(
        source="m3",
        event_id="evt_01JHCARE001",
        type="panic.ui",
        ts=NOW - timedelta(minutes=5),
        subject="actor:raz",
        actor_display="Raz",
        groups=("care-circle",),
        whisper=WHISPER,
        care_window_minutes=30,
        payload_consent=PayloadConsent(mode="explicit", scope=("panic.ui",)),
    )
    return dataclasses.replace(base, **changes)


def aisha(type_: str = ESCALATION, **changes: Any) -> Signal:
    """An AiSHA C.A.R.E. event for the tenant, high confidence, escalated upstream."""
    base = Signal(
        source="aisha",
        event_id="8d6f2b1e",
        type=type_,
        ts=NOW - timedelta(minutes=10),
        subject=TENANT,
        policy_gate_result="escalated",
        reason="Caller asked for a human twice",
        confidence="high",
    )
    return dataclasses.replace(base, **changes)


def grant(**changes: Any) -> Grant:
    """A live grant for actor:raz covering panic.ui and status.set to care-circle."""
    base = Grant(
        id="g1",
        subject="actor:raz",
        scope=("panic.ui", "status.set"),
        groups=("care-circle",),
        by="admin",
        granted_at=NOW - timedelta(days=30),
    )
    return dataclasses.replace(base, **changes)


def tenant_grant(**changes: Any) -> Grant:
    """A live grant for the tenant covering escalations to care-circle."""
    return grant(**{"id": "t1", "subject": TENANT, "scope": (ESCALATION,), **changes})


def agent(id_: str = "ana", **changes: Any) -> Agent:
    """An active care-circle agent reachable on every channel, no quiet hours."""
    base = Agent(
        id=id_,
        display=id_.title(),
        groups=("care-circle",),
        slack_user=f"U{id_.upper()}",
        phone="+40700000001",
        whatsapp="+40700000002",
        verified=frozenset({"slack", "sms", "whatsapp"}),
    )
    return dataclasses.replace(base, **changes)


def run(
    signal: Signal,
    grants: Sequence[Grant] = (),
    agents: Sequence[Agent] = (),
    *,
    now: datetime = NOW,
    settings: RoutingSettings = SETTINGS,
    recent: Mapping[str, int] | None = None,
) -> Decision:
    """Call decide with the test defaults."""
    return decide(signal, grants, agents, now=now, settings=settings, recent_invites=recent)


# --- gates and statuses -----------------------------------------------------------------

OFF = dataclasses.replace(SETTINGS, sending_enabled=False)
SHADOW = dataclasses.replace(SETTINGS, shadow_mode=True)
EXPLICIT = PayloadConsent(mode="explicit", scope=("panic.ui",))

STATUS_CASES = [
    pytest.param(m3(), [grant()], [agent()], SETTINGS, "invited", (), id="m3-invited"),
    pytest.param(aisha(), [tenant_grant()], [agent()], SETTINGS, "invited", (), id="aisha-invited"),
    pytest.param(m3(), [grant()], [agent()], OFF, "paused", ("kill_switch",), id="paused"),
    pytest.param(m3(), [grant()], [agent()], SHADOW, "shadowed", ("shadow_mode",), id="shadowed"),
    pytest.param(
        m3(),
        [grant()],
        [agent()],
        dataclasses.replace(OFF, shadow_mode=True),
        "paused",
        ("kill_switch", "shadow_mode"),
        id="paused-before-shadowed",
    ),
    pytest.param(
        aisha(policy_gate_result="blocked"),
        [tenant_grant()],
        [agent()],
        SETTINGS,
        "blocked",
        ("upstream_blocked",),
        id="blocked-upstream",
    ),
    pytest.param(
        aisha(policy_gate_result="blocked"),
        [],
        [agent()],
        SHADOW,
        "shadowed",
        ("shadow_mode", "upstream_blocked", "consent"),
        id="all-failures-recorded",
    ),
    pytest.param(m3(), [], [agent()], SETTINGS, "pending_consent", ("consent",), id="no-grant"),
    pytest.param(
        m3(),
        [grant(expires_at=NOW - timedelta(seconds=1))],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="grant-expired",
    ),
    pytest.param(
        m3(),
        [grant(expires_at=NOW)],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="grant-expires-now",
    ),
    pytest.param(
        m3(),
        [grant(expires_at=NOW + timedelta(days=1))],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="grant-expires-later",
    ),
    pytest.param(
        m3(),
        [grant(revoked_at=NOW - timedelta(hours=1), revoked_by="admin")],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="grant-revoked",
    ),
    pytest.param(
        m3(),
        [grant(subject="actor:someone-else")],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="grant-other-subject",
    ),
    pytest.param(
        m3(),
        [grant(scope=("status.set",))],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="grant-scope-missing",
    ),
    pytest.param(
        m3(payload_consent=None),
        [grant()],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("payload_consent",),
        id="payload-consent-absent",
    ),
    pytest.param(
        m3(payload_consent=PayloadConsent(mode="implicit", scope=("panic.ui",))),
        [grant()],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("payload_consent",),
        id="payload-not-explicit",
    ),
    pytest.param(
        m3(payload_consent=PayloadConsent(mode="explicit", scope=("status.set",))),
        [grant()],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("payload_consent",),
        id="payload-scope-missing",
    ),
    pytest.param(
        m3(payload_consent=dataclasses.replace(EXPLICIT, expires_at=NOW - timedelta(minutes=1))),
        [grant()],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("payload_consent",),
        id="payload-consent-expired",
    ),
    pytest.param(
        m3(payload_consent=None),
        [],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent", "payload_consent"),
        id="both-consents-missing",
    ),
    pytest.param(aisha(), [], [agent()], SETTINGS, "pending_consent", ("consent",), id="escalation-no-grant"),
    pytest.param(
        aisha(confidence="medium"),
        [tenant_grant(min_confidence="high")],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="confidence-below-min",
    ),
    pytest.param(
        aisha(confidence="low"),
        [tenant_grant(min_confidence="medium")],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="confidence-low-below-medium",
    ),
    pytest.param(
        aisha(confidence=None),
        [tenant_grant(min_confidence="low")],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent",),
        id="confidence-missing",
    ),
    pytest.param(
        aisha(confidence="high"),
        [tenant_grant(min_confidence="medium")],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="confidence-above-min",
    ),
    pytest.param(
        aisha(confidence="medium"),
        [tenant_grant(min_confidence="medium")],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="confidence-equal-min",
    ),
    pytest.param(
        aisha(confidence="medium"),
        [tenant_grant(min_confidence="high"), tenant_grant(id="t2")],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="another-grant-without-min-covers",
    ),
    pytest.param(
        m3(ts=NOW - timedelta(minutes=31)),
        [grant()],
        [agent()],
        SETTINGS,
        "window_passed",
        ("care_window",),
        id="m3-window-passed",
    ),
    pytest.param(
        m3(ts=NOW - timedelta(minutes=30)),
        [grant()],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="m3-window-edge",
    ),
    pytest.param(
        m3(ts=NOW - timedelta(days=10), care_window_minutes=None),
        [grant()],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="m3-window-unlimited",
    ),
    pytest.param(
        aisha(ts=NOW - timedelta(minutes=241)),
        [tenant_grant()],
        [agent()],
        SETTINGS,
        "window_passed",
        ("care_window",),
        id="aisha-window-passed",
    ),
    pytest.param(
        aisha(ts=NOW - timedelta(minutes=20)),
        [tenant_grant()],
        [agent()],
        dataclasses.replace(SETTINGS, aisha_care_window_minutes=15),
        "window_passed",
        ("care_window",),
        id="aisha-window-from-settings",
    ),
    pytest.param(
        m3(ts=NOW - timedelta(hours=2)),
        [],
        [agent()],
        SETTINGS,
        "pending_consent",
        ("consent", "care_window"),
        id="consent-before-window",
    ),
    pytest.param(
        m3(),
        [grant()],
        [agent(groups=("other",))],
        SETTINGS,
        "unroutable",
        ("audience",),
        id="unroutable-nobody-in-group",
    ),
    pytest.param(
        m3(),
        [grant()],
        [agent(active=False)],
        SETTINGS,
        "unroutable",
        ("audience",),
        id="unroutable-inactive",
    ),
    pytest.param(
        m3(),
        [grant()],
        [agent()],
        RoutingSettings(),
        "unroutable",
        ("audience",),
        id="unroutable-no-configured-channel",
    ),
    pytest.param(m3(), [grant()], [], SETTINGS, "unroutable", ("audience",), id="unroutable-empty-directory"),
    pytest.param(aisha(TRIGGER), [], [agent()], SETTINGS, "inbox_only", (), id="trigger-inbox-only"),
    pytest.param(aisha(STATE), [], [agent()], SETTINGS, "inbox_only", (), id="state-applied-inbox-only"),
    pytest.param(
        aisha(TRIGGER),
        [tenant_grant()],
        [agent()],
        SETTINGS,
        "inbox_only",
        (),
        id="trigger-escalation-grant-only",
    ),
    pytest.param(
        aisha(TRIGGER),
        [tenant_grant(scope=(TRIGGER,), revoked_at=NOW)],
        [agent()],
        SETTINGS,
        "inbox_only",
        (),
        id="trigger-revoked-grant",
    ),
    pytest.param(
        aisha(TRIGGER, confidence=None),
        [tenant_grant(scope=(TRIGGER,))],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="trigger-invited-when-named",
    ),
    pytest.param(
        aisha(STATE, confidence=None),
        [tenant_grant(scope=(STATE,))],
        [agent()],
        SETTINGS,
        "invited",
        (),
        id="state-applied-invited-when-named",
    ),
    pytest.param(
        aisha(TRIGGER, ts=NOW - timedelta(days=1)),
        [tenant_grant(scope=(TRIGGER,))],
        [agent()],
        SETTINGS,
        "window_passed",
        ("care_window",),
        id="named-trigger-window",
    ),
    pytest.param(aisha(TRIGGER), [], [agent()], OFF, "paused", ("kill_switch",), id="trigger-paused"),
    pytest.param(
        aisha(TRIGGER, policy_gate_result="blocked"),
        [],
        [agent()],
        SETTINGS,
        "blocked",
        ("upstream_blocked",),
        id="trigger-blocked",
    ),
]


@pytest.mark.parametrize(("signal", "grants", "agents", "settings", "status", "failures"), STATUS_CASES)
def test_gates_give_status(
    signal: Signal,
    grants: list[Grant],
    agents: list[Agent],
    settings: RoutingSettings,
    status: str,
    failures: tuple[str, ...],
) -> None:
    """Each gate, in DESIGN.md order, yields its status and records every failed gate."""
    decision = run(signal, grants, agents, settings=settings)
    assert (decision.status, decision.gate_failures) == (status, failures)
    assert decision.action_origin == "care_autonomous"
    expected_result = "allowed" if status in ("invited", "inbox_only") else "blocked"
    assert decision.policy_gate_result == expected_result
    assert bool(decision.invitations) == (status == "invited")
    assert decision.reason
    for secret in (WHISPER, "Raz", "raz", TENANT, "ana", "Ana"):
        assert secret not in decision.reason


def test_invited_reason_and_grant_id() -> None:
    """An invitation carries the contract's reason sentence and the first covering grant."""
    decision = run(m3(), [grant(id="g0", subject="x"), grant(id="g1"), grant(id="g2")], [agent()])
    assert decision.reason == "explicit consent, within care window"
    assert decision.grant_id == "g1"
    assert decision.invitations == (PlannedInvitation("ana", "slack"),)


def test_grant_id_recorded_even_when_paused() -> None:
    """A paused decision still names the grant that would have covered it, for the audit."""
    assert run(m3(), [grant()], [agent()], settings=OFF).grant_id == "g1"
    assert run(m3(), [], [agent()]).grant_id is None


def test_confidence_reason_names_the_shortfall() -> None:
    """A grant missed only on confidence says so, without care data."""
    decision = run(aisha(confidence="low"), [tenant_grant(min_confidence="high")], [agent()])
    assert "confidence" in decision.reason


def test_naive_now_is_read_as_utc() -> None:
    """A naive clock value is not an exception: it is read as UTC."""
    assert run(m3(), [grant()], [agent()], now=NOW.replace(tzinfo=None)).status == "invited"


# --- seed 003 (C.A.R.E. action origin), translated ----------------------------------------


def test_seed003_kill_switch_blocks_autonomous() -> None:
    """Scenario 1: an autonomous invitation is blocked when the kill switch is off."""
    decision = run(m3(), [grant()], [agent()], settings=OFF)
    assert (decision.status, decision.policy_gate_result) == ("paused", "blocked")
    assert "kill_switch" in decision.gate_failures and not decision.invitations


def test_seed003_shadow_mode_blocks_autonomous() -> None:
    """Scenario 2: shadow mode records the decision and sends nothing."""
    decision = run(m3(), [grant()], [agent()], settings=SHADOW)
    assert (decision.status, decision.policy_gate_result) == ("shadowed", "blocked")
    assert decision.gate_failures == ("shadow_mode",) and not decision.invitations


def test_seed003_consent_missing_blocks_autonomous() -> None:
    """Scenario 3 (hands-off off): without consent the relay does not act."""
    decision = run(aisha(), [], [agent()])
    assert (decision.status, decision.policy_gate_result) == ("pending_consent", "blocked")
    assert decision.gate_failures == ("consent",)


def test_seed003_blocked_upstream_blocks_autonomous() -> None:
    """Scenario 4 (escalation gate): an upstream block is recorded and never invited."""
    decision = run(aisha(policy_gate_result="blocked"), [tenant_grant()], [agent()])
    assert (decision.status, decision.policy_gate_result) == ("blocked", "blocked")
    assert decision.gate_failures == ("upstream_blocked",) and not decision.invitations


def test_seed003_all_gates_pass_allows() -> None:
    """Scenario 5: when every gate passes the action is allowed and recorded as autonomous."""
    decision = run(aisha(), [tenant_grant()], [agent()])
    assert (decision.status, decision.policy_gate_result) == ("invited", "allowed")
    assert decision.action_origin == "care_autonomous" and decision.gate_failures == ()


@pytest.mark.parametrize("settings", [SETTINGS, OFF, SHADOW], ids=["open", "off", "shadow"])
def test_seed003_uncertain_origin_is_autonomous_and_recorded(settings: RoutingSettings) -> None:
    """Scenario 9: an uncertain origin is gated as autonomous and the uncertainty kept."""
    signal = aisha(action_origin="user_directed", origin_uncertain=True)
    decision = run(signal, [tenant_grant()], [agent()], settings=settings)
    certain = run(dataclasses.replace(signal, origin_uncertain=False), [tenant_grant()], [agent()], settings=settings)
    assert decision.action_origin == "care_autonomous" and decision.origin_uncertain is True
    assert dataclasses.replace(decision, origin_uncertain=False) == certain


# --- audience ------------------------------------------------------------------------------


def test_m3_audience_is_payload_groups_within_grant_groups() -> None:
    """M3 invites members of payload groups that are also granted, never other members."""
    agents = [
        agent("ana"),
        agent("bo", groups=("care-circle", "night")),
        agent("cy", groups=("night",)),
        agent("dan", groups=("family",)),
    ]
    signal = m3(groups=("care-circle", "family"))
    decision = run(signal, [grant(groups=("care-circle", "night"))], agents)
    assert [i.agent_id for i in decision.invitations] == ["ana", "bo"]


def test_m3_targets_in_granted_group_are_invited() -> None:
    """A target is invited when in a granted group, even outside the payload's groups."""
    agents = [agent("ana", groups=("night",)), agent("bo", groups=("family",))]
    signal = m3(groups=(), targets=("ana", "bo", "stranger"))
    decision = run(signal, [grant(groups=("night",))], agents)
    assert [i.agent_id for i in decision.invitations] == ["ana"]
    assert decision.skipped == (("bo", "outside_grant"),)


def test_aisha_audience_is_grant_groups() -> None:
    """An AiSHA escalation invites every active member of the tenant grant's groups."""
    agents = [agent("cy"), agent("ana"), agent("bo", groups=("other",)), agent("dan", active=False)]
    decision = run(aisha(), [tenant_grant()], agents)
    assert [i.agent_id for i in decision.invitations] == ["ana", "cy"]
    assert decision.skipped == (("dan", "inactive"),)


def test_union_of_grants_keeps_each_grants_channels() -> None:
    """With several covering grants each agent is reached only on its own grant's channels."""
    grants = [grant(id="ga", groups=("a",), channels=("sms",)), grant(id="gb", groups=("b",), channels=("slack",))]
    agents = [agent("ana", groups=("a",)), agent("bo", groups=("b",)), agent("cy", groups=("a", "b"))]
    decision = run(m3(groups=("a", "b")), grants, agents)
    assert decision.invitations == (
        PlannedInvitation("ana", "sms"),
        PlannedInvitation("bo", "slack"),
        PlannedInvitation("cy", "slack"),
    )
    assert decision.grant_id == "ga"


def test_repeated_agent_id_is_invited_once() -> None:
    """A directory listing an id twice still yields one invitation, from its first entry."""
    decision = run(m3(), [grant()], [agent(), agent(channels=("sms",))])
    assert decision.invitations == (PlannedInvitation("ana", "slack"),)


def test_invitations_sorted_by_agent_id() -> None:
    """Invitations come out in agent-id order, whatever the directory order."""
    agents = [agent(name) for name in ("zoe", "ana", "mia", "bo")]
    decision = run(m3(), [grant()], agents)
    assert [i.agent_id for i in decision.invitations] == ["ana", "bo", "mia", "zoe"]


# --- channel choice ------------------------------------------------------------------------

CHANNEL_CASES = [
    pytest.param({}, {}, ALL_CHANNELS, NOW, "slack", id="default-order"),
    pytest.param({"channels": ("sms", "slack")}, {}, ALL_CHANNELS, NOW, "sms", id="agent-preference"),
    pytest.param({}, {"channels": ("whatsapp",)}, ALL_CHANNELS, NOW, "whatsapp", id="grant-restriction"),
    pytest.param({}, {}, frozenset({"sms", "whatsapp"}), NOW, "sms", id="slack-unconfigured"),
    pytest.param({"slack_user": None}, {}, ALL_CHANNELS, NOW, "sms", id="no-slack-address"),
    pytest.param({"slack_user": None, "phone": None}, {}, ALL_CHANNELS, NOW, "whatsapp", id="no-phone"),
    pytest.param({"opted_out": frozenset({"slack", "sms"})}, {}, ALL_CHANNELS, NOW, "whatsapp", id="opted-out"),
    pytest.param(
        {"channels": ("console",), "slack_user": None, "phone": None, "whatsapp": None},
        {},
        ALL_CHANNELS,
        NOW,
        "console",
        id="console-needs-no-address",
    ),
    pytest.param({"channels": ("pigeon", "sms")}, {}, ALL_CHANNELS, NOW, "sms", id="unknown-channel-ignored"),
    pytest.param({"quiet_hours": "22:00-07:00"}, {}, ALL_CHANNELS, NIGHT, "slack", id="slack-in-quiet-hours"),
    pytest.param(
        {"channels": ("sms", "whatsapp", "slack"), "quiet_hours": "22:00-07:00"},
        {},
        ALL_CHANNELS,
        NIGHT,
        "slack",
        id="pagers-skipped-in-quiet-hours",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00"},
        {},
        ALL_CHANNELS,
        NIGHT,
        "quiet_hours",
        id="quiet-hours-wrap-before-midnight",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00"},
        {},
        ALL_CHANNELS,
        datetime(2026, 1, 8, 6, 59, tzinfo=UTC),
        "quiet_hours",
        id="quiet-hours-wrap-after-midnight",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00"},
        {},
        ALL_CHANNELS,
        datetime(2026, 1, 8, 7, 0, tzinfo=UTC),
        "sms",
        id="quiet-hours-end-exclusive",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00"}, {}, ALL_CHANNELS, NOW, "sms", id="quiet-hours-daytime"
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00", "tz": "Europe/Bucharest"},
        {},
        ALL_CHANNELS,
        datetime(2026, 1, 7, 20, 30, tzinfo=UTC),
        "quiet_hours",
        id="quiet-hours-time-zone",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00"},
        {},
        ALL_CHANNELS,
        datetime(2026, 1, 7, 20, 30, tzinfo=UTC),
        "sms",
        id="quiet-hours-utc-default",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "13:00-14:00"},
        {},
        ALL_CHANNELS,
        datetime(2026, 1, 7, 13, 30, tzinfo=UTC),
        "quiet_hours",
        id="quiet-hours-same-day",
    ),
    pytest.param({"quiet_hours": "garbage"}, {}, ALL_CHANNELS, NOW, "slack", id="bad-quiet-hours-slack-still-goes"),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "garbage"},
        {},
        ALL_CHANNELS,
        NOW,
        "quiet_hours",
        id="bad-quiet-hours-hold-pagers",
    ),
    pytest.param(
        {"channels": ("sms",), "quiet_hours": "22:00-07:00", "tz": "Mars/Olympus"},
        {},
        ALL_CHANNELS,
        NOW,
        "quiet_hours",
        id="bad-time-zone-holds-pagers",
    ),
    pytest.param(
        {"slack_user": None, "phone": None, "whatsapp": None},
        {},
        ALL_CHANNELS,
        NOW,
        "no_channel",
        id="no-address-at-all",
    ),
    pytest.param({}, {"channels": ("sms",)}, frozenset({"slack"}), NOW, "no_channel", id="grant-and-config-disjoint"),
]


@pytest.mark.parametrize(("agent_changes", "grant_changes", "configured", "now", "expected"), CHANNEL_CASES)
def test_channel_choice(
    agent_changes: dict[str, Any],
    grant_changes: dict[str, Any],
    configured: frozenset[str],
    now: datetime,
    expected: str,
) -> None:
    """The first of the agent's channels that is allowed, configured, addressed and not quiet wins."""
    settings = RoutingSettings(configured_channels=configured)
    signal = m3(ts=now - timedelta(minutes=1))
    decision = run(signal, [grant(**grant_changes)], [agent(**agent_changes)], now=now, settings=settings)
    if expected in ("quiet_hours", "no_channel"):
        assert decision.status == "unroutable"
        assert decision.skipped == (("ana", expected),)
    else:
        assert decision.status == "invited"
        assert decision.invitations == (PlannedInvitation("ana", expected),)


# --- throttle ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recent", "limit", "invited"),
    [
        ({"ana": 5}, 6, ["ana", "bo"]),
        ({"ana": 6}, 6, ["bo"]),
        ({"ana": 9, "bo": 6}, 6, []),
        ({}, 0, []),
        (None, 1, ["ana", "bo"]),
    ],
    ids=["under", "at-limit", "all-throttled", "zero-limit", "no-counts"],
)
def test_throttle(recent: dict[str, int] | None, limit: int, invited: list[str]) -> None:
    """An agent at the hourly limit is skipped as throttled; others are still invited."""
    settings = dataclasses.replace(SETTINGS, agent_max_invites_per_hour=limit)
    decision = run(m3(), [grant()], [agent("ana"), agent("bo")], settings=settings, recent=recent)
    assert [i.agent_id for i in decision.invitations] == invited
    assert {a for a, why in decision.skipped if why == "throttled"} == {"ana", "bo"} - set(invited)
    assert decision.status == ("invited" if invited else "unroutable")


# --- quiet-hours helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00-07:00", (time(22), time(7))),
        ("00:00-23:59", (time(0), time(23, 59))),
        (" 09:30-17:45 ", (time(9, 30), time(17, 45))),
    ],
)
def test_parse_quiet_hours_accepts(text: str, expected: tuple[time, time]) -> None:
    """Well-formed HH:MM-HH:MM parses to a (start, end) pair."""
    assert parse_quiet_hours(text) == expected


@pytest.mark.parametrize(
    "text", ["", "22-07", "24:00-07:00", "22:60-07:00", "7:00-9:00", "22:00 - 07:00", "22:00-22:00", "22:00-07:00x"]
)
def test_parse_quiet_hours_rejects(text: str) -> None:
    """Anything but two distinct zero-padded 24 h times raises ValueError."""
    with pytest.raises(ValueError, match="quiet hours must"):
        parse_quiet_hours(text)


@pytest.mark.parametrize(
    ("quiet", "tz", "now", "expected"),
    [
        (None, None, NIGHT, False),
        ("", "Europe/Bucharest", NIGHT, False),
        ("22:00-07:00", None, NIGHT, True),
        ("22:00-07:00", None, NOW, False),
        ("22:00-07:00", "Europe/Bucharest", datetime(2026, 1, 7, 4, 59, tzinfo=UTC), True),
        ("22:00-07:00", "Europe/Bucharest", datetime(2026, 1, 7, 5, 0, tzinfo=UTC), False),
        ("22:00-07:00", "America/New_York", datetime(2026, 1, 8, 2, 0, tzinfo=UTC), False),
        ("22:00-07:00", "America/New_York", datetime(2026, 1, 8, 3, 0, tzinfo=UTC), True),
        ("nonsense", None, NOW, True),
        ("22:00-07:00", "Not/AZone", NOW, True),
    ],
)
def test_in_quiet_hours(quiet: str | None, tz: str | None, now: datetime, expected: bool) -> None:
    """Quiet hours are read in the agent's zone, wrap midnight, and fail safe when unreadable."""
    assert in_quiet_hours(quiet, tz, now) is expected


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 1439))
def test_in_quiet_hours_matches_minute_set(start: int, end: int, at: int) -> None:
    """Quiet hours agree with the explicit set of minutes [start, end) around the clock."""
    if start == end:
        return
    text = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    quiet_minutes = {(start + k) % 1440 for k in range((end - start) % 1440)}
    now = datetime(2026, 1, 7, tzinfo=UTC) + timedelta(minutes=at)
    assert in_quiet_hours(text, None, now) is (at in quiet_minutes)


# --- properties ----------------------------------------------------------------------------

IDS = ["ana", "bo", "cy", "dan", "eve"]
GROUPS = ["a", "b", "c"]
SUBJECTS = ["actor:raz", TENANT]
TYPES = ["panic.ui", "status.set", ESCALATION, TRIGGER, STATE]
CHANNEL_NAMES = ["slack", "sms", "whatsapp", "console", "pigeon"]


def subset(items: list[str]) -> st.SearchStrategy[tuple[str, ...]]:
    """Tuples of distinct items drawn from `items`."""
    return st.lists(st.sampled_from(items), unique=True, max_size=len(items)).map(tuple)


moments = st.integers(-600, 600).map(lambda m: NOW + timedelta(minutes=m))
maybe_moment = st.none() | moments
agents_st = st.builds(
    Agent,
    id=st.sampled_from(IDS),
    display=st.just("Someone"),
    groups=subset(GROUPS).filter(bool),
    slack_user=st.none() | st.just("U1"),
    phone=st.none() | st.just("+40700000001"),
    whatsapp=st.none() | st.just("+40700000002"),
    channels=st.just(()) | st.lists(st.sampled_from(CHANNEL_NAMES), max_size=4).map(tuple),
    quiet_hours=st.sampled_from([None, "22:00-07:00", "09:00-17:00", "bad"]),
    tz=st.sampled_from([None, "Europe/Bucharest", "America/New_York", "Nowhere/X"]),
    active=st.sampled_from([True, True, True, False]),
    opted_out=st.frozensets(st.sampled_from(CHANNEL_NAMES)),
)
grants_st = st.builds(
    Grant,
    id=st.sampled_from(["g1", "g2", "g3"]),
    subject=st.sampled_from(SUBJECTS),
    scope=subset(TYPES),
    groups=subset(GROUPS),
    by=st.just("admin"),
    granted_at=st.just(NOW - timedelta(days=1)),
    channels=st.just(()) | subset(CHANNEL_NAMES),
    min_confidence=st.none() | st.sampled_from(["low", "medium", "high", "bogus"]),
    expires_at=maybe_moment,
    revoked_at=st.none() | st.none() | st.just(NOW - timedelta(hours=1)),
)
signals_st = st.builds(
    Signal,
    source=st.sampled_from(["m3", "aisha"]),
    event_id=st.just("evt"),
    type=st.sampled_from(TYPES),
    ts=moments,
    subject=st.sampled_from(SUBJECTS),
    groups=subset(GROUPS),
    targets=subset([*IDS, "stranger"]),
    care_window_minutes=st.none() | st.integers(1, 600),
    payload_consent=st.none()
    | st.builds(
        PayloadConsent, mode=st.sampled_from(["explicit", "implicit", ""]), scope=subset(TYPES), expires_at=maybe_moment
    ),
    origin_uncertain=st.booleans(),
    policy_gate_result=st.sampled_from([None, "allowed", "escalated", "blocked"]),
    confidence=st.sampled_from([None, "low", "medium", "high"]),
)
settings_st = st.builds(
    RoutingSettings,
    sending_enabled=st.sampled_from([True, True, True, False]),
    shadow_mode=st.sampled_from([False, False, False, True]),
    agent_max_invites_per_hour=st.integers(0, 6),
    aisha_care_window_minutes=st.integers(1, 600),
    configured_channels=st.just(ALL_CHANNELS) | st.frozensets(st.sampled_from(CHANNEL_NAMES)),
)


#: The one rule a near-miss case breaks ("none": every gate set up to pass).
SPOILS = [
    "none",
    "grant_revoked",
    "grant_expired",
    "grant_subject",
    "grant_scope",
    "grant_confidence",
    "consent_absent",
    "consent_mode",
    "consent_scope",
    "consent_expired",
    "window",
    "audience",
    "upstream",
    "kill_switch",
    "shadow_mode",
    "agent",
]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """decide() arguments: a quarter fully random, the rest near misses breaking at most one rule."""
    signal = draw(signals_st)
    grants = draw(st.lists(grants_st, max_size=4))
    settings = draw(settings_st)
    now = draw(moments)
    agents = draw(st.lists(agents_st, min_size=1, max_size=5, unique_by=lambda a: a.id))
    if draw(st.integers(0, 3)) > 0:
        # Pure chance almost never lines every gate up, so most cases pass all but one.
        spoil = draw(st.sampled_from(SPOILS))
        covering = draw(grants_st)
        covering = dataclasses.replace(
            covering,
            subject="actor:other" if spoil == "grant_subject" else signal.subject,
            scope=covering.scope if spoil == "grant_scope" else (*covering.scope, signal.type),
            groups=covering.groups or ("a",),
            revoked_at=now - timedelta(hours=1) if spoil == "grant_revoked" else None,
            expires_at=now if spoil == "grant_expired" else None,
            min_confidence=draw(st.sampled_from(["high", "bogus"])) if spoil == "grant_confidence" else None,
        )
        if spoil == "grant_confidence":
            signal = dataclasses.replace(signal, confidence=draw(st.sampled_from([None, "low", "medium"])))
        if spoil in ("grant_scope", "grant_subject"):
            grants = [g for g in grants if g.subject != signal.subject]
        grants.insert(draw(st.integers(0, len(grants))), covering)
        consent = PayloadConsent(
            mode=draw(st.sampled_from(["implicit", "Explicit", ""])) if spoil == "consent_mode" else "explicit",
            scope=() if spoil == "consent_scope" else (signal.type,),
            expires_at=now - timedelta(minutes=1) if spoil == "consent_expired" else None,
        )
        groups = tuple(g for g in signal.groups if g not in covering.groups)
        signal = dataclasses.replace(
            signal,
            payload_consent=None if spoil == "consent_absent" else consent,
            care_window_minutes=None if spoil != "window" else signal.care_window_minutes or 30,
            ts=now if spoil != "window" else now - timedelta(minutes=601),
            groups=groups if spoil == "audience" else (*groups, *covering.groups),
            policy_gate_result="blocked" if spoil == "upstream" else None,
        )
        settings = dataclasses.replace(
            settings,
            configured_channels=ALL_CHANNELS,
            sending_enabled=spoil != "kill_switch",
            shadow_mode=spoil == "shadow_mode",
        )
        if spoil != "agent":
            agents[0] = dataclasses.replace(
                agents[0],
                groups=covering.groups,
                active=True,
                slack_user="U1",
                phone="+40700000001",
                whatsapp="+40700000002",
                channels=tuple(draw(st.permutations(["slack", "sms", "whatsapp"]))),
                opted_out=agents[0].opted_out - {"slack"},
            )
    return {
        "signal": signal,
        "grants": grants,
        "agents": agents,
        "now": now,
        "settings": settings,
        "recent_invites": draw(st.none() | st.dictionaries(st.sampled_from(IDS), st.integers(0, 4))),
    }


ADDRESS = {"slack": "slack_user", "sms": "phone", "whatsapp": "whatsapp"}


def explicit_grants(case: dict[str, Any]) -> list[Grant]:
    """The grants that, read straight from the contract, cover the case's signal."""
    signal, now = case["signal"], case["now"]
    return [
        g
        for g in case["grants"]
        if g.subject == signal.subject
        and signal.type in g.scope
        and g.revoked_at is None
        and (g.expires_at is None or g.expires_at > now)
        and (
            g.min_confidence is None
            or CONFIDENCE_RANK.get(signal.confidence or "", -1) >= CONFIDENCE_RANK.get(g.min_confidence, 99)
        )
    ]


@hypothesis_settings(max_examples=400)
@given(cases())
def test_property_invites_only_directory_agents_in_granted_groups(case: dict[str, Any]) -> None:
    """No one outside the active directory or the covering grants' groups and channels is invited."""
    decision = decide(**case)
    signal, settings = case["signal"], case["settings"]
    directory = {a.id: a for a in case["agents"]}
    for invitation in decision.invitations:
        assert invitation.agent_id in directory
        member = directory[invitation.agent_id]
        assert member.active
        assert any(
            set(member.groups) & set(g.groups) and (not g.channels or invitation.channel in g.channels)
            for g in explicit_grants(case)
        )
        if signal.source == "m3":
            assert set(member.groups) & set(signal.groups) or member.id in signal.targets
        assert invitation.channel in settings.configured_channels
        assert invitation.channel not in member.opted_out
        if invitation.channel in ADDRESS:
            assert getattr(member, ADDRESS[invitation.channel])
        else:
            assert invitation.channel == "console"
        if invitation.channel in PAGER_CHANNELS:
            assert not in_quiet_hours(member.quiet_hours, member.tz, case["now"])
        assert (case["recent_invites"] or {}).get(member.id, 0) < settings.agent_max_invites_per_hour


@hypothesis_settings(max_examples=400)
@given(cases())
def test_property_no_invitation_without_explicit_consent(case: dict[str, Any]) -> None:
    """Invitations need a live explicit grant, M3 payload consent, open gates and an open window."""
    decision = decide(**case)
    if not decision.invitations:
        return
    signal, settings, now = case["signal"], case["settings"], case["now"]
    assert explicit_grants(case)
    assert settings.sending_enabled and not settings.shadow_mode
    assert signal.policy_gate_result != "blocked"
    if signal.source == "m3":
        consent = signal.payload_consent
        assert consent is not None and consent.mode == "explicit" and signal.type in consent.scope
        assert consent.expires_at is None or consent.expires_at > now
        window = signal.care_window_minutes
    else:
        window = settings.aisha_care_window_minutes
    assert window is None or now <= signal.ts + timedelta(minutes=window)


@hypothesis_settings(max_examples=400)
@given(cases())
def test_property_each_agent_invited_once_in_order(case: dict[str, Any]) -> None:
    """Every invited agent appears once, and invitations are sorted by agent id."""
    ids = [i.agent_id for i in decide(**case).invitations]
    assert ids == sorted(set(ids))


@hypothesis_settings(max_examples=400)
@given(cases())
def test_property_decision_is_well_formed(case: dict[str, Any]) -> None:
    """Every decision is autonomous, deterministic and consistent in status, result and gates."""
    decision = decide(**case)
    assert decision == decide(**case)
    assert decision.status in LOOP_STATUSES and decision.status not in ("acked", "done")
    assert decision.action_origin == "care_autonomous"
    assert decision.origin_uncertain == case["signal"].origin_uncertain
    assert decision.reason
    assert (decision.status == "invited") == bool(decision.invitations)
    allowed = decision.status in ("invited", "inbox_only")
    assert decision.policy_gate_result == ("allowed" if allowed else "blocked")
    assert bool(decision.gate_failures) == (not allowed)
    first_gate_status = {
        "kill_switch": "paused",
        "shadow_mode": "shadowed",
        "upstream_blocked": "blocked",
        "consent": "pending_consent",
        "payload_consent": "pending_consent",
        "care_window": "window_passed",
        "audience": "unroutable",
    }
    if decision.gate_failures:
        assert first_gate_status[decision.gate_failures[0]] == decision.status


# Checked again at send time (CONTRACT section 6) ------------------------------------

SEND_TIME_CASES = [
    ("still covered", {}, {}, "sms", NOW, None),
    ("agent switched off", {}, {"active": False}, "sms", NOW, "agent_inactive"),
    ("grant revoked", {"revoked_at": NOW - timedelta(minutes=1)}, {}, "sms", NOW, "consent_revoked"),
    ("grant expired since", {"expires_at": NOW - timedelta(seconds=1)}, {}, "sms", NOW, "consent_revoked"),
    ("agent left the granted group", {}, {"groups": ("elsewhere",)}, "sms", NOW, "consent_revoked"),
    ("grant no longer allows the channel", {"channels": ("slack",)}, {}, "sms", NOW, "consent_revoked"),
    ("pager in quiet hours", {}, {"quiet_hours": "22:00-07:00"}, "sms", NIGHT, "quiet_hours"),
    ("slack in quiet hours still goes", {}, {"quiet_hours": "22:00-07:00"}, "slack", NIGHT, None),
    ("a care window that passed since does not stop it", {}, {}, "sms", NOW + timedelta(days=30), None),
]


@pytest.mark.parametrize(
    ("grant_changes", "agent_changes", "channel", "now", "expected"),
    [case[1:] for case in SEND_TIME_CASES],
    ids=[case[0] for case in SEND_TIME_CASES],
)
def test_send_time_refusal(
    grant_changes: dict[str, Any], agent_changes: dict[str, Any], channel: str, now: datetime, expected: str | None
) -> None:
    """Just before a send: active agent, live covering grant for this agent and channel, pagers outside quiet hours."""
    from relay.send_time import send_time_refusal

    who = agent(**agent_changes)
    assert send_time_refusal(m3(), who, channel, [grant(**grant_changes)], now=now) == expected
    assert send_time_refusal(m3(), who, channel, [], now=now) == (
        "agent_inactive" if not who.active else "consent_revoked"
    )
