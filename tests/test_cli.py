"""The CLI against a running server: directory and consent changes take effect live."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import M3_SECRETS, ServerThread, make_settings


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[ServerThread, dict[str, str]]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/relay.db"
    with ServerThread(make_settings(url, dev=True)) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "M3_", "AISHA_"))},
            "RELAY_DATABASE_URL": url,
            "RELAY_PUBLIC_BASE_URL": server.url,
            "M3_WEBHOOK_SECRETS": ",".join(M3_SECRETS),
        }
        yield server, env


def cli(env: dict[str, str], cwd: Path, *args: str, ok: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "relay.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done.stdout if ok else done.stderr


def test_new_user_walk(running: tuple[ServerThread, dict[str, str]], tmp_path: Path) -> None:
    """agent add + consent grant make the next emit `invited`; revoking makes it pending_consent."""
    server, env = running
    cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--group", "care-circle", "--channels", "console")
    grant_id = cli(
        env, tmp_path, "consent", "grant", "actor:raz", "--scope", "panic.ui", "--group", "care-circle", "--by", "admin"
    ).splitlines()[0]
    assert grant_id.startswith("gr_")

    first = cli(env, tmp_path, "emit", "golden-path")
    assert '"status": "invited"' in first and "status: http://" in first

    inbox = cli(env, tmp_path, "inbox")
    # the running server's outbox may already have printed it
    assert "panic.ui" in inbox and "invited" in inbox and re.search(r"ana/console:(queued|sent)", inbox)
    rows = json.loads(cli(env, tmp_path, "inbox", "--open", "--json"))
    assert len(rows) == 1 and rows[0]["status"] == "invited"

    cli(env, tmp_path, "consent", "revoke", grant_id, "--by", "admin")
    assert '"status": "pending_consent"' in cli(env, tmp_path, "emit", "golden-path")
    grants = json.loads(cli(env, tmp_path, "consent", "list", "--json"))
    assert grants[0]["revoked_by"] == "admin"


def test_agent_list_redacts_numbers_and_errors_are_one_line(running: tuple[ServerThread, dict[str, str]], tmp_path: Path) -> None:
    """Tables never show a full phone number; bad input is one actionable line."""
    _, env = running
    cli(env, tmp_path, "agent", "add", "bob", "--display", "Bob", "--phone", "+40722123456", "--group", "g")
    table = cli(env, tmp_path, "agent", "list")
    assert "+40…3456" in table and "+40722123456" not in table
    full: list[dict[str, Any]] = json.loads(cli(env, tmp_path, "agent", "list", "--json"))
    assert full[0]["phone"] == "+40722123456"
    error = cli(env, tmp_path, "agent", "add", "eve", "--display", "Eve", "--phone", "0722", ok=False)
    assert error.startswith("care-relay: invalid input: phone") and len(error.strip().splitlines()) == 1
    assert "already exists" in cli(env, tmp_path, "agent", "add", "bob", "--display", "B", ok=False)
    assert "No agent" in cli(env, tmp_path, "agent", "remove", "nobody", ok=False)


def test_serve_without_secrets_names_the_variable(tmp_path: Path) -> None:
    """Outside --dev, a missing secret stops start-up with one line naming it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "M3_", "AISHA_"))}
    done = subprocess.run(
        [sys.executable, "-m", "relay.cli", "serve", "--port", "0"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "care-relay: RELAY_LINK_SECRETS is not set; set it in the environment or .env (or run with --dev)"
    )


def test_emit_file_fresh_by_default_and_as_is_for_replays(running: tuple[ServerThread, dict[str, str]], tmp_path: Path) -> None:
    """emit FILE makes each send a new event; --as-is keeps the file's id and nonce, so a resend is a duplicate."""
    _, env = running
    source = Path(__file__).parent / "fixtures" / "m3" / "panic.ui__golden.json"
    payload = json.loads(source.read_text("utf-8"))
    first = cli(env, tmp_path, "emit", "m3", str(source))
    assert "-> 202" in first and payload["id"] not in first
    assert "-> 202" in cli(env, tmp_path, "emit", "m3", str(source))
    sent = cli(env, tmp_path, "emit", "m3", str(source), "--as-is")
    assert "-> 202" in sent and f'"id": "{payload["id"]}"' in sent
    again = cli(env, tmp_path, "emit", "m3", str(source), "--as-is")
    assert "-> 200" in again and '"duplicate": true' in again
