"""What an operator meets first: --version, help on everything, mistakes named, and `care-relay check`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from relay.cli import build_parser, main
from relay.cli.check import findings
from tests.support import SERVING_ENV, clean_env, cli, make_settings, run_cli

NOW = datetime(2026, 1, 7, 10, 0, tzinfo=UTC)


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    """`care-relay --version` prints the installed version."""
    assert cli(clean_env(), tmp_path, "--version").strip() == f"care-relay {metadata.version('care-relay')}"


def test_every_option_and_subcommand_has_help_and_the_root_an_example() -> None:
    """No option, argument or subcommand is left without help text; the root help shows examples."""
    root = build_parser()
    assert "care-relay serve --dev --port 8081" in (root.epilog or "")
    for parser in _parsers(root):
        assert not parser.allow_abbrev, parser.prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), parser.prog
            else:
                assert action.help, f"{parser.prog} {action.option_strings or action.dest}"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["agent", "add", "ana", "--dispaly", "Ana"], "unknown option --dispaly; did you mean --display?"),
        (["agent", "add", "ana", "--display", "Ana", "--grup", "g"], "unknown option --grup; did you mean --group?"),
        (["agent", "add", "ana", "--disp", "Ana"], "unknown option --disp; did you mean --display?"),
        (["inbox", "--opn"], "unknown option --opn; did you mean --open?"),
        (["--verison"], "unknown option --verison; did you mean --version?"),
        (["consent", "list", "--subject=actor:raz", "--jsn"], "unknown option --jsn; did you mean --json?"),
    ],
)
def test_a_mistyped_option_is_named_as_typed_with_the_nearest(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt or abbreviated option is refused (exit 2), named as typed, with the option meant."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def _agent(id: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "display": id, "groups": [], "channels": [], "active": True} | fields


def _grant(id: str, groups: list[str], **fields: Any) -> dict[str, Any]:
    return {"id": id, "subject": "actor:raz", "groups": groups, "expires_at": None, "revoked_at": None} | fields


CHECKS = [
    ("clean", {}, [_agent("ana", groups=["g"], phone="+40722123456")], [_grant("gr_1", ["g"])], []),
    (
        "channel not configured",
        {},
        [_agent("ana", groups=["g"], channels=["slack"], slack_user="U1")],
        [],
        ["agent_unreachable"],
    ),
    ("no address", {}, [_agent("ana", channels=["sms"])], [], ["agent_unreachable"]),
    ("console outside dev", {}, [_agent("ana", channels=["console"])], [], ["agent_unreachable"]),
    ("inactive agents are not judged", {}, [_agent("ana", active=False)], [], []),
    (
        "group nobody is in",
        {},
        [_agent("ana", groups=["g"], phone="+40722123456")],
        [_grant("gr_1", ["g", "h"])],
        ["group_empty"],
    ),
    ("inactive member", {}, [_agent("ana", groups=["g"], active=False)], [_grant("gr_1", ["g"])], ["group_empty"]),
    ("expired grant", {}, [], [_grant("gr_1", ["g"], expires_at="2026-01-01T00:00:00Z")], ["grant_expired"]),
    ("revoked grants are history", {}, [], [_grant("gr_1", ["g"], revoked_at="2026-01-01T00:00:00Z")], []),
    ("plain http", {"relay_public_base_url": "http://relay.example.org"}, [], [], ["public_url_plain_http"]),
    ("http on loopback", {"relay_public_base_url": "http://127.0.0.1:8080"}, [], [], []),
    ("no public url", {"relay_public_base_url": None}, [], [], ["public_url_unset"]),
    ("slack half", {"slack_bot_token": "xoxb-1"}, [], [], ["slack_half_configured"]),
    ("twilio half", {"twilio_auth_token": "t" * 20}, [], [], ["twilio_half_configured"]),
    ("verification off", {"relay_verify_addresses": False}, [], [], ["verification_off"]),
    (
        "an address waiting for its owner",
        {},
        [_agent("ana", groups=["g"], phone="+40722123456", verified={"sms": False})],
        [_grant("gr_1", ["g"])],
        ["address_unconfirmed"],
    ),
    (
        "twilio with no sender",
        {"twilio_account_sid": "AC1", "twilio_auth_token": "t" * 20, "twilio_sms_from": None},
        [],
        [],
        ["twilio_half_configured"],
    ),
    (
        "a messaging service is a sender",
        {"twilio_sms_from": None, "twilio_messaging_service_sid": "MG" + "0" * 32},
        [],
        [],
        [],
    ),
    (
        "sms from beside a messaging service",
        {"twilio_messaging_service_sid": "MG" + "0" * 32},
        [],
        [],
        ["sms_from_ignored"],
    ),
    (
        "a template without whatsapp",
        {"twilio_whatsapp_content_sid": "HX" + "0" * 32},
        [],
        [],
        ["whatsapp_template_unused"],
    ),
    ("whatsapp without a template", {"twilio_whatsapp_from": "+14155238886"}, [], [], ["whatsapp_no_template"]),
    (
        "whatsapp with a template",
        {"twilio_whatsapp_from": "+14155238886", "twilio_whatsapp_content_sid": "HX" + "0" * 32},
        [],
        [],
        [],
    ),
]


@pytest.mark.parametrize(("case", "overrides", "agents", "grants", "kinds"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check_names_what_would_surprise_an_operator(
    case: str, overrides: dict[str, Any], agents: list[dict[str, Any]], grants: list[dict[str, Any]], kinds: list[str]
) -> None:
    """Each surprising configuration or directory entry is one finding of its kind; a sound one none."""
    values = {
        "relay_public_base_url": "https://relay.example.org",
        "twilio_sms_from": "+15005550006",
        "relay_verify_addresses": True,
        **overrides,
    }
    if "twilio_account_sid" not in overrides and "twilio_auth_token" not in overrides:
        values |= {"twilio_account_sid": "AC1", "twilio_auth_token": "t" * 20}
    settings = make_settings("sqlite+aiosqlite:///unused.db", **values)
    assert [f.kind for f in findings(settings, agents, grants, now=NOW)] == kinds


def test_check_reads_the_directory_and_exits_1_with_one_line_per_finding(tmp_path: Path) -> None:
    """`care-relay check` on a real database: exit 0 when sound, 1 with one line per finding (or JSON)."""
    env = clean_env(
        **{**SERVING_ENV, "RELAY_VERIFY_ADDRESSES": "true"},
        RELAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/relay.db",
    )
    assert cli(env, tmp_path, "check").startswith("ok: 0 agents and 0 grants")
    cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--group", "g", "--phone", "+40722123456")
    cli(env, tmp_path, "consent", "grant", "actor:raz", "--scope", "panic.ui", "--group", "g,h", "--by", "admin")
    done = run_cli({**env, "SLACK_BOT_TOKEN": "xoxb-only-half"}, tmp_path, "check")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("Slack is half-configured: SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not")
    assert lines[1].startswith("agent ana has not confirmed their sms address")
    assert lines[2].startswith("agent ana has no usable channel")
    assert "names group h, which no active agent is in" in lines[3]
    as_json = json.loads(run_cli(env, tmp_path, "check", "--json").stdout)
    assert [f["kind"] for f in as_json] == ["address_unconfirmed", "agent_unreachable", "group_empty"]
    off = json.loads(run_cli({**env, "RELAY_VERIFY_ADDRESSES": "false"}, tmp_path, "check", "--json").stdout)
    assert [f["kind"] for f in off] == ["verification_off", "agent_unreachable", "group_empty"]
