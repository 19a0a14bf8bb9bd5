"""`care-relay agent away|back` and `care-relay invite` against a running server (CONTRACT section 10)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import ServerThread, cli


def mine(printed: str) -> str:
    """What a command printed for its user, without the `[CARE_AUDIT]` lines every command leaves on stdout."""
    return "\n".join(line for line in printed.splitlines() if not line.startswith("[CARE_AUDIT] "))


def test_agent_away_and_back_and_invite_now(running: tuple[ServerThread, dict[str, str]], tmp_path: Path) -> None:
    """An away agent is passed over by the next signal and shown away in `agent list`; `invite` asks
    for them by name once they are back, through the same service as the admin API, and names why it
    cannot when it cannot."""
    server, env = running
    cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--group", "care-circle", "--channels", "console")
    cli(
        env, tmp_path, "consent", "grant", "actor:raz", "--scope", "panic.ui", "--group", "care-circle", "--by", "admin"
    )
    assert "ana is away" in cli(env, tmp_path, "agent", "away", "ana", "--by", "lead")
    listed = cli(env, tmp_path, "agent", "list")
    assert "AWAY" in listed.splitlines()[0] and json.loads(cli(env, tmp_path, "agent", "list", "--json"))[0]["away"]
    emitted = cli(env, tmp_path, "emit", "golden-path")
    assert '"status": "unroutable"' in emitted
    event_id = json.loads(emitted[emitted.index("{") : emitted.rindex("}") + 1])["id"]

    refused = cli(env, tmp_path, "invite", event_id, "--dev", "--agent", "ana", "--by", "lead", ok=False)
    assert "'ana' is away" in refused and len(refused.strip().splitlines()) == 1
    assert "ana is back" in cli(env, tmp_path, "agent", "back", "ana")
    said = mine(cli(env, tmp_path, "invite", event_id, "--dev", "--agent", "ana", "--by", "lead"))
    assert said == f"{event_id} is invited: invited ana (console)"
    again = json.loads(
        mine(cli(env, tmp_path, "invite", event_id, "--dev", "--agent", "ana", "--by", "lead", "--json"))
    )
    assert again["invited"] == [] and again["already_invited"] == ["ana"]
    ((status, invited_by),) = server.sql(
        "SELECT s.status, i.invited_by FROM signal s JOIN invitation i ON i.signal_id = s.id WHERE s.event_id = ?",
        event_id,
    )
    assert (status, invited_by) == ("invited", "admin:lead")
    instructions = [
        json.loads(r[0])["user_instruction"]
        for r in server.sql("SELECT detail FROM audit WHERE kind IN ('agent_away', 'agent_back') ORDER BY id")
    ]
    assert instructions == ["lead set ana away by the command line", "operator set ana back by the command line"]
