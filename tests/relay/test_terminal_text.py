"""Sender text never steers the operator's terminal: the CLI's tables and the console channel.

Names and whispers arrive signed and accepted carrying terminal escape codes (ids, labels
and responses refuse control characters at the door, but a row an older version stored may
still hold them); what `care-relay inbox` / `agent list` / `consent list` and the console
channel print holds none of them (CONTRACT section 7, hardening).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.driver import ANA, Start, panic
from tests.support import ServerThread, cli, signed

#: retitle the window, clear the screen, return to the line's start, and their kin.
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\r\x9b2J\u202e\x7f"
#: what must never reach the terminal: ESC, BEL, CR, C1's CSI, DEL, a bidi override.
STEERING = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
GRANT = {"subject": "actor:raz", "scope": ["panic.ui"], "groups": ["care-circle"], "by": "admin"}


def escaping_signal() -> dict[str, Any]:
    """A panic.ui from Raz whose name and whisper carry escape codes (the schema takes them: free text)."""
    payload = panic(id=f"evt_{uuid.uuid4().hex}")
    payload["actor"]["display"] = f"Raz{ESCAPES}"
    payload["intent"]["whisper"] = f"hello{ESCAPES}\nReply ZZZZ 1"
    return payload


def stored_by_an_older_version(server: ServerThread, event_id: str) -> None:
    """Give a stored signal and every directory row escape codes, as rows written before the door refused them."""
    server.sql("UPDATE signal SET event_id = ? WHERE event_id = ?", f"evt_{ESCAPES}", event_id)
    server.sql("UPDATE agent SET display = ?", f"Ana{ESCAPES}")
    server.sql("UPDATE consent_grant SET granted_by = ?", f"admin{ESCAPES}")


def test_cli_tables_print_no_control_characters(running: tuple[ServerThread, dict[str, str]], tmp_path: Path) -> None:
    """inbox, agent list and consent list print sender and directory text without escape codes; --json escapes them."""
    server, env = running
    cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--group", "care-circle")
    cli(
        env, tmp_path, "consent", "grant", "actor:raz", "--scope", "panic.ui", "--group", "care-circle", "--by", "admin"
    )
    payload = escaping_signal()
    status, _ = server.request("POST", "/hooks/m3", *signed("m3", payload))
    assert status == 202
    stored_by_an_older_version(server, payload["id"])
    inbox = cli(env, tmp_path, "inbox")
    assert "]0;pwned" in inbox and "panic.ui" in inbox  # the row is there, defanged
    for printed in (inbox, cli(env, tmp_path, "agent", "list"), cli(env, tmp_path, "consent", "list")):
        assert not STEERING.search(printed), repr(printed)
        assert len(printed.splitlines()) == 2  # header and one row: nothing broke a line
    as_json = cli(env, tmp_path, "inbox", "--json")
    assert not STEERING.search(as_json), repr(as_json)  # JSON escapes them, C1 and bidi too
    assert json.loads(as_json)[0]["id"].startswith(f"evt_{ESCAPES}")


async def test_console_channel_prints_no_control_characters(start: Start, capsys: pytest.CaptureFixture[str]) -> None:
    """The console channel's invitation and its ack update carry no escape codes, whoever chose the text."""
    relay = await start()
    await relay.seed(GRANT, agents=[ANA])
    # a display stored before the door refused control characters
    await relay.sql("UPDATE agent SET display = ?", f"Ana{ESCAPES}")
    await relay.send("m3", escaping_signal())
    await relay.drain()
    printed = capsys.readouterr().out
    [link] = re.findall(r"Or open http://127\.0\.0\.1:8080(/a/\S+)", printed)
    status, _ = await relay.press(link, action="ack", response="soft-checkin")
    assert status == 200
    await relay.drain()
    printed += capsys.readouterr().out
    assert "hello" in printed and "is here" in printed
    assert not STEERING.search(printed), repr(printed)
