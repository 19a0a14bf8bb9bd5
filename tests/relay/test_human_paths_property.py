"""CONTRACT section 5 still holds with the human paths (section 10): random sequences of signals,
answers, "not now", "ask someone else", away and back, and invite now, against the real app on SQLite."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.keys import TOKENS
from tests.driver import ADMIN, panic
from tests.support import ServerThread, make_settings, signed

CIRCLE = ("ana", "bo")
AGENTS = (*CIRCLE, "cy")
#: each example's own actors: a fresh granted one (coalescing and throttling start clean) and one never granted
RUNS = itertools.count(1)

Op = tuple[Any, ...]
OPS = st.one_of(
    st.tuples(st.just("signal"), st.booleans(), st.booleans()),  # granted actor?, explicit payload consent?
    st.tuples(st.just("ack"), st.integers(0, 7), st.sampled_from(AGENTS)),
    st.tuples(st.just("done"), st.integers(0, 7), st.sampled_from(AGENTS)),
    st.tuples(st.just("away"), st.sampled_from(AGENTS), st.booleans()),
    st.tuples(st.just("invite"), st.integers(0, 7), st.lists(st.sampled_from(AGENTS), min_size=1, max_size=2)),
    st.tuples(st.just("pass"), st.integers(0, 7), st.sampled_from(AGENTS)),
    st.tuples(st.just("ask"), st.integers(0, 7), st.sampled_from(AGENTS), st.sampled_from(AGENTS)),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """The real app (console channel, coalescing on, no hourly limit in the way) with Ana and Bo in
    the care circle and Cy elsewhere, shared by the examples."""
    path = tmp_path_factory.mktemp("paths") / "relay.db"
    config = make_settings(
        f"sqlite+aiosqlite:///{path}", dev=True, relay_coalesce=True, relay_agent_max_invites_per_hour=100000
    )
    with ServerThread(config) as running:
        for agent in AGENTS:
            group = "care-circle" if agent in CIRCLE else "elsewhere"
            body = {"id": agent, "display": agent.title(), "groups": [group], "channels": ["console"]}
            assert running.json("POST", "/admin/agents", body, ADMIN)[0] == 201
        yield running


@dataclass
class Model:
    """What the loops of one example must be: their statuses, changed only by people's steps."""

    granted: str
    ungranted: str
    #: event id → expected status, in the order sent
    loops: dict[str, str] = field(default_factory=dict)
    #: event id → (actor, explicit payload consent)
    sent: dict[str, tuple[str, bool]] = field(default_factory=dict)
    away: set[str] = field(default_factory=set)
    instructions: int = 0
    #: (event id, agent) of every ack (a done counts as one) and every "not now"
    acked: set[tuple[str, str]] = field(default_factory=set)
    passed: set[tuple[str, str]] = field(default_factory=set)
    #: "ask someone else" that invited someone
    asks: int = 0

    def pick(self, index: int) -> str | None:
        return list(self.loops)[index % len(self.loops)] if self.loops else None

    def open_loop(self, actor: str) -> str | None:
        return next((e for e, s in self.loops.items() if s in ("invited", "acked") and self.sent[e][0] == actor), None)


def invitations(server: ServerThread, event_id: str) -> list[tuple[int, str, str, str | None]]:
    """(id, agent, status, invited_by) of a loop's invitations."""
    rows = server.sql(
        "SELECT i.id, i.agent_id, i.status, i.invited_by FROM invitation i JOIN signal s ON s.id = i.signal_id"
        " WHERE s.event_id = ? ORDER BY i.id",
        event_id,
    )
    return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def send(server: ServerThread, model: Model, granted: bool, explicit: bool) -> None:
    actor = model.granted if granted else model.ungranted
    payload = panic(actor={"id": actor, "display": "Raz"})
    if not explicit:
        payload["consent"]["mode"] = "implicit"
    body, headers = signed("m3", payload)
    status, raw = server.request("POST", "/hooks/m3", body, headers)
    assert status == 202, raw
    answer = json.loads(raw)
    opened = model.open_loop(actor)
    model.sent[answer["id"]] = (actor, explicit)
    model.loops[answer["id"]] = answer["status"]
    made = invitations(server, answer["id"])
    if not (granted and explicit):  # rule 1: no consent, no message
        assert answer["status"] == "pending_consent" and made == []
    elif opened is not None and set(CIRCLE) - model.away:
        # one loop per moment: a signal that would invite someone joins the open loop, inviting nobody
        assert answer["status"] == "joined" and answer["joined_to"] == opened and made == []
    else:  # what routing decided, as audited (the outbox may have sent or skipped some since)
        ((detail,),) = server.sql("SELECT detail FROM audit WHERE kind = 'decision' AND event_id = ?", answer["id"])
        decided = json.loads(detail)
        invited = {agent for agent, _ in decided["invited"]}
        assert invited == set(CIRCLE) - model.away  # rule 2, and away agents passed over
        assert {agent for agent, why in decided["skipped"]} == set(CIRCLE) & model.away
        assert answer["status"] == ("invited" if invited else "unroutable")
        assert {agent for _, agent, _, _ in made} == set(CIRCLE)


def answer(server: ServerThread, model: Model, kind: str, index: int, agent: str) -> None:
    event_id = model.pick(index)
    if event_id is None:
        return
    mine = [i for i in invitations(server, event_id) if i[1] == agent and i[2] != "skipped"]
    if not mine:
        return  # only an agent holding an invitation can answer: nothing to press
    token = server.app[TOKENS].action_token(mine[0][0])
    form = (
        {"action": "ack", "response": "soft-checkin"} if kind == "ack" else {"action": "done", "outcome": "held-space"}
    )
    status, _ = server.request(
        "POST", f"/a/{token}", urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    if model.loops[event_id] == "done":
        assert status in (200, 409)  # a kind "already closed", whatever the form; nothing changes
        return
    assert status == 200
    model.loops[event_id] = "done" if kind == "done" else "acked"
    model.acked.add((event_id, agent))


def post_form(server: ServerThread, invitation: int, form: dict[str, str]) -> int:
    token = server.app[TOKENS].action_token(invitation)
    status, _ = server.request(
        "POST", f"/a/{token}", urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status


def held(server: ServerThread, event_id: str, agent: str) -> int | None:
    return next((i[0] for i in invitations(server, event_id) if i[1] == agent and i[2] != "skipped"), None)


def pass_on(server: ServerThread, model: Model, index: int, agent: str) -> None:
    """ "Not now": kept and thanked, or 409 once the agent acked or the loop closed; nothing moves."""
    event_id = model.pick(index)
    invitation = held(server, event_id, agent) if event_id is not None else None
    if event_id is None or invitation is None:
        return
    before = invitations(server, event_id)
    status = post_form(server, invitation, {"action": "pass"})
    if model.loops[event_id] == "done" or (event_id, agent) in model.acked:
        assert status == 409  # already_done, or already_answered
    else:
        assert status == 200
        model.passed.add((event_id, agent))
    assert invitations(server, event_id) == before  # nobody is re-routed, nothing is sent


def ask(server: ServerThread, model: Model, index: int, agent: str, target: str) -> None:
    """ "Ask someone else": the agent's instruction, bound by consent and the directory (rules 1 and 2)."""
    event_id = model.pick(index)
    invitation = held(server, event_id, agent) if event_id is not None else None
    if event_id is None or invitation is None:
        return
    before = {i[1]: i[2] for i in invitations(server, event_id)}
    status = post_form(server, invitation, {"action": "ask", "agent": target})
    holds = before.get(target, "skipped") != "skipped"
    if model.loops[event_id] == "done":
        assert status == 409
    elif holds:
        assert status == 200  # they already hold one: nothing changes
    elif target == "cy" or target in model.away:
        assert status == 400  # outside the granted groups, or away
    else:
        assert status == 200
        model.asks += 1
        assert {i[1]: i[3] for i in invitations(server, event_id)}[target] == f"agent:{agent}"
        if model.loops[event_id] not in ("invited", "acked"):
            model.loops[event_id] = "invited"
    if status != 200 or holds:
        assert {i[1]: i[2] for i in invitations(server, event_id)} == before


def set_away(server: ServerThread, model: Model, agent: str, away: bool) -> None:
    status, changed = server.json("PATCH", f"/admin/agents/{agent}?by=lead", {"away": away}, ADMIN)
    assert status == 200 and changed["away"] is away
    (model.away.add if away else model.away.discard)(agent)


def invite(server: ServerThread, model: Model, index: int, agents: list[str]) -> None:
    event_id = model.pick(index)
    if event_id is None:
        return
    before = {i[1]: i[2] for i in invitations(server, event_id)}
    status, answer = server.json("POST", f"/admin/events/{event_id}/invite", {"agents": agents, "by": "lead"}, ADMIN)
    actor, explicit = model.sent[event_id]
    if model.loops[event_id] == "done":
        assert (status, answer["error"]) == (409, "already_done")
    elif model.loops[event_id] == "joined":  # invite people on the open loop it joined, not here
        assert (status, answer["error"]) == (400, "bad_request")
    elif actor == model.ungranted or not explicit:
        assert (status, answer["error"]) == (409, "consent_required")  # rule 1 binds a person's instruction too
    elif any(a == "cy" or (a in model.away and before.get(a, "skipped") == "skipped") for a in agents):
        assert status == 400  # rule 2: outside the granted groups; and away agents are not invited
    else:
        assert status == 202, answer
        model.instructions += 1
        if answer["invited"] and model.loops[event_id] not in ("invited", "acked"):
            model.loops[event_id] = "invited"
    after = invitations(server, event_id)
    if status != 202:
        assert {i[1]: i[2] for i in after} == before  # a refusal changes nothing
    # who asked is on what they asked for
    assert {i[3] for i in after} <= {None, "admin:lead", *(f"agent:{a}" for a in CIRCLE)}


def check(server: ServerThread, model: Model) -> None:
    """Nothing moved by itself; every invitation is a circle agent's; every decision is audited."""
    for event_id, expected in model.loops.items():
        ((status,),) = server.sql("SELECT status FROM signal WHERE event_id = ?", event_id)
        assert status == expected, (event_id, status, expected)
        actor, explicit = model.sent[event_id]
        for _, agent, state, _ in invitations(server, event_id):
            assert agent in CIRCLE  # only directory agents of the granted groups
            if actor == model.ungranted or not explicit:
                pytest.fail("an invitation for a signal without consent")
            if status == "joined":
                assert state == "skipped", "a joined signal invites nobody"
        audited = server.sql(
            "SELECT action_origin, policy_gate_result FROM audit WHERE kind = 'decision' AND event_id = ?", event_id
        )
        assert audited and audited[0][0] == "care_autonomous"
    ids = list(model.loops)
    if ids:
        marks = ", ".join("?" * len(ids))
        rows = server.sql(
            f"SELECT detail FROM audit WHERE kind = 'invite_now' AND event_id IN ({marks})",  # noqa: S608 (marks)
            *ids,
        )
        assert len(rows) == model.instructions
        assert all(json.loads(r[0])["user_instruction"].startswith("lead invited ") for r in rows)
        asked = server.sql(
            f"SELECT action_origin FROM audit WHERE kind = 'ask_someone_else' AND event_id IN ({marks})",  # noqa: S608
            *ids,
        )
        assert len(asked) == model.asks and {r[0] for r in asked} <= {"user_directed"}
        passes = server.sql(
            "SELECT s.event_id, p.agent_id FROM loop_pass p JOIN signal s ON s.id = p.signal_id"  # noqa: S608 (marks)
            f" WHERE s.event_id IN ({marks})",
            *ids,
        )
        assert {(str(e), str(a)) for e, a in passes} == model.passed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=16))
def test_the_rules_hold_along_any_path(server: ServerThread, ops: list[Op]) -> None:
    """Signals, acks, dones, passes, asks, away/back and invite now in any order: no message without consent, only
    circle agents invited, away agents passed over by routing, one open loop per moment, nothing
    closing or moving by itself, every decision and every instruction audited."""
    run = next(RUNS)
    model = Model(granted=f"raz-{run}", ungranted=f"zed-{run}")
    grant = {"subject": f"actor:{model.granted}", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}
    assert server.json("POST", "/admin/consents", grant, ADMIN)[0] == 201
    for agent in AGENTS:  # each example starts with everyone back
        set_away(server, model, agent, False)
    for op in ops:
        match op:
            case ("signal", granted, explicit):
                send(server, model, granted, explicit)
            case ("ack" | "done" as kind, index, agent):
                answer(server, model, kind, index, agent)
            case ("away", agent, away):
                set_away(server, model, agent, away)
            case ("invite", index, agents):
                invite(server, model, index, agents)
            case ("pass", index, agent):
                pass_on(server, model, index, agent)
            case ("ask", index, agent, target):
                ask(server, model, index, agent, target)
        check(server, model)
