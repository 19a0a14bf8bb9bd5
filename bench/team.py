"""The bench directory: 50 agents on Slack in 25 groups of 1-3, and the subject whose grant covers them all.

An invited signal names one group, so it invites that group's 1-3 agents (2 on average).
"""

from __future__ import annotations

from typing import Any

AGENT_COUNT = 50
#: group sizes cycle 1, 2, 3; the last group takes what is left (2 agents).
_SIZES = (1, 2, 3)
BENCH_ACTOR = "bench"
SUBJECT = f"actor:{BENCH_ACTOR}"


def _groups() -> dict[str, tuple[str, ...]]:
    groups: dict[str, tuple[str, ...]] = {}
    n = 0
    while n < AGENT_COUNT:
        size = min(_SIZES[len(groups) % len(_SIZES)], AGENT_COUNT - n)
        groups[f"team-{len(groups):02d}"] = tuple(f"agent-{i:02d}" for i in range(n, n + size))
        n += size
    return groups


#: group → its agents' ids
GROUPS = _groups()


def slack_user(agent_id: str) -> str:
    return "U0BENCH" + agent_id.removeprefix("agent-")


def agents() -> list[dict[str, Any]]:
    """The agents as the admin API and the CLI take them."""
    return [
        {"id": agent, "display": f"Agent {agent[-2:]}", "groups": [group], "slack_user": slack_user(agent),
         "channels": ["slack"]}
        for group, members in GROUPS.items()
        for agent in members
    ]  # fmt: skip


def grant() -> dict[str, Any]:
    """The one consent grant: the bench subject's panics reach every group."""
    return {"subject": SUBJECT, "scope": ["panic.ui"], "groups": sorted(GROUPS), "by": "bench"}
