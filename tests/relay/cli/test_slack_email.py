"""`care-relay agent add --slack-email`: the Slack user id found with users.lookupByEmail at FakeSlack,
before the directory is touched; and `check` says which way Slack is set up."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.cli.check import findings, slack_mode_line
from tests.fakes.slack import APP_TOKEN, DEFAULT_TOKEN, FakeSlack
from tests.support import SERVING_ENV, clean_env, make_settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        server.add_user("U0ANA", "ana@example.org")
        yield server


async def care_relay(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """`care-relay ARGS` in its own process, while this test's event loop keeps serving the fake."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.cli",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    return clean_env(RELAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/relay.db", **values)


NOW = datetime(2026, 6, 1, tzinfo=UTC)
ADD = ("agent", "add", "ana", "--display", "Ana", "--group", "care-circle")


async def test_slack_email_finds_the_user_id(fake: FakeSlack, tmp_path: Path) -> None:
    """The email is looked up with the bot token at SLACK_API_URL; the agent is added with that id."""
    env = environment(tmp_path, SLACK_BOT_TOKEN=DEFAULT_TOKEN, SLACK_API_URL=fake.api_url)
    status, out, err = await care_relay(env, tmp_path, *ADD, "--slack-email", "Ana@example.org", "--json")
    assert status == 0, err
    assert json.loads(out)["slack_user"] == "U0ANA"
    (call,) = [c for c in fake.calls if c.method == "users.lookupByEmail"]
    assert call.params["email"] == "Ana@example.org" and call.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("unknown email", "No Slack user has the email bob@example.org."),
        ("not configured", "Slack is not configured: set SLACK_BOT_TOKEN"),
        ("unreachable", "Slack could not be reached at http://127.0.0.1:"),
        ("refused token", "Slack did not accept SLACK_BOT_TOKEN (invalid_auth)"),
        ("not an email", "'bob' is not an email address"),
    ],
)
async def test_slack_email_failures_are_one_sentence_and_add_nobody(
    case: str, said: str, fake: FakeSlack, tmp_path: Path
) -> None:
    """Unknown email, no bot token, Slack unreachable or refusing: one line, exit 2, no agent added."""
    env = environment(tmp_path, SLACK_BOT_TOKEN=DEFAULT_TOKEN, SLACK_API_URL=fake.api_url)
    email = "bob" if case == "not an email" else "bob@example.org"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused, and the port stays ours
        if case == "not configured":
            del env["SLACK_BOT_TOKEN"]
        elif case == "unreachable":
            env["SLACK_API_URL"] = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
        elif case == "refused token":
            env["SLACK_BOT_TOKEN"] = "xoxb-not-the-installed-one"
        status, out, err = await care_relay(env, tmp_path, *ADD, "--slack-email", email)
    assert status == 2 and out == ""
    assert err.strip().startswith(f"care-relay: {said}") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and DEFAULT_TOKEN not in err
    status, out, _ = await care_relay(env | {"SLACK_BOT_TOKEN": DEFAULT_TOKEN}, tmp_path, "agent", "list", "--json")
    assert status == 0 and json.loads(out) == []


async def test_slack_email_and_slack_user_exclude_each_other(fake: FakeSlack, tmp_path: Path) -> None:
    """Both at once is a usage error (exit 2) that names them; Slack is not asked."""
    env = environment(tmp_path, SLACK_BOT_TOKEN=DEFAULT_TOKEN, SLACK_API_URL=fake.api_url)
    status, _, err = await care_relay(env, tmp_path, *ADD, "--slack-user", "U0ANA", "--slack-email", "ana@example.org")
    assert status == 2 and "--slack-email" in err and "--slack-user" in err
    assert fake.calls == []


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        ({}, None),
        ({"slack_bot_token": "xoxb-1", "slack_signing_secret": "s" * 20}, "slack: HTTP"),
        (
            {"slack_bot_token": "xoxb-1", "slack_app_token": APP_TOKEN},
            "slack: Socket Mode (SLACK_APP_TOKEN): no public",
        ),
        (
            {"slack_bot_token": "xoxb-1", "slack_app_token": APP_TOKEN, "slack_signing_secret": "s" * 20},
            "slack: Socket Mode (SLACK_APP_TOKEN), with POST /slack/events",
        ),
    ],
)
def test_check_says_which_way_slack_is_set_up(values: dict[str, str], mode: str | None) -> None:
    """An app token alone is a whole Slack set-up (no signing secret needed), and `check` names the mode."""
    settings = make_settings("sqlite+aiosqlite:///unused.db", **values)
    line = slack_mode_line(settings)
    assert line == mode if mode is None else (line or "").startswith(mode)
    assert not [f for f in findings(settings, [], [], now=NOW) if f.kind.startswith("slack")]


def test_an_app_token_without_a_bot_token_is_half_a_set_up() -> None:
    """SLACK_APP_TOKEN alone: one finding naming SLACK_BOT_TOKEN; the channel stays off."""
    settings = make_settings("sqlite+aiosqlite:///unused.db", slack_app_token=APP_TOKEN)
    (finding,) = [f for f in findings(settings, [], [], now=NOW) if f.kind.startswith("slack")]
    assert "SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not" in finding.message
    assert not settings.slack_enabled and "slack" not in settings.configured_channels


async def test_check_prints_the_slack_mode(tmp_path: Path) -> None:
    """`care-relay check` with Socket Mode: its first line says so, and nothing is found."""
    served = {**SERVING_ENV, "RELAY_VERIFY_ADDRESSES": "true"}  # as deployed: nothing else to report
    env = environment(tmp_path, **served, SLACK_BOT_TOKEN=DEFAULT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN)
    status, out, err = await care_relay(env, tmp_path, "check")
    assert status == 0, err
    first, ok = out.strip().splitlines()
    assert first.startswith("slack: Socket Mode") and ok.startswith("ok: 0 agents")
    assert APP_TOKEN not in out + err
