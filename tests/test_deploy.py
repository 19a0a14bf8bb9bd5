"""deploy/: what can be checked without Docker or systemd running — the files say what they must."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.app import create_app
from relay.channels.slack import scopes
from relay.channels.slack.lookup import user_id_by_email
from tests.fakes.slack import APP_TOKEN, DEFAULT_TOKEN, FakeSlack, app_home_opened, slash_command_fields
from tests.relay.channels.test_slack import ADMIN, AGENTS, ANA, GRANT, STRANGER, drain
from tests.relay.channels.test_slack_socket_mode import invited, press, submit
from tests.support import make_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _instructions(name: str) -> list[str]:
    return [line[len(name) :].strip() for line in _dockerfile() if line.upper().startswith(name + " ")]


def test_base_image_is_pinned_by_digest() -> None:
    """Every FROM names its image by sha256 digest."""
    froms = _instructions("FROM")
    assert froms
    assert all(re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}( AS \w+)?", f) for f in froms), froms


def test_dependencies_come_from_the_hashed_lock_only() -> None:
    """The lock is installed with --require-hashes --no-deps; the project itself fetches nothing."""
    runs = " ".join(_instructions("RUN"))
    assert re.search(r"pip install --require-hashes --no-deps -r \S*requirements\.lock", runs)
    assert re.search(r"pip install --no-deps --no-build-isolation --no-index \.", runs)
    assert "deploy/requirements.lock" in " ".join(_instructions("COPY"))


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """Each dependency of pyproject.toml is pinned (==) with at least one sha256 in the lock, and says how to regenerate."""
    lock = (DEPLOY / "requirements.lock").read_text(encoding="utf-8")
    assert "pip-compile --generate-hashes" in lock.split("\n\n")[0]
    entries = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock, re.MULTILINE))
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", lock)
    assert all("--hash=sha256:" in block for block in blocks[1:])
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in {key.lower() for key in entries}, name
    assert "setuptools" in entries  # the build backend, so the image builds with --no-index


def test_runs_as_a_user_that_is_not_root() -> None:
    """The last USER is a named, non-root user."""
    users = _instructions("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_healthcheck_follows_the_configured_port() -> None:
    """HEALTHCHECK asks /readyz on RELAY_PORT as the container runs, not a port fixed at build."""
    (check,) = _instructions("HEALTHCHECK")
    assert "/readyz" in check and "RELAY_PORT" in check and ":8080/" not in check


def test_compose_restarts_and_puts_a_tls_proxy_in_front() -> None:
    """Every service restarts; Caddy alone publishes ports; the relay knows its public https URL."""
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    services = re.split(r"\n  (?=[a-z]+:\n)", compose.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0])
    by_name = {block.split(":", 1)[0].strip(): block for block in services}
    assert {"db", "relay", "proxy"} <= set(by_name)
    assert all(re.search(r"restart: (unless-stopped|always|on-failure)", block) for block in by_name.values())
    assert "image: caddy" in by_name["proxy"] and "443:443" in by_name["proxy"]
    assert "./Caddyfile:/etc/caddy/Caddyfile" in by_name["proxy"]
    assert "ports:" not in by_name["relay"]
    assert re.search(r"RELAY_PUBLIC_BASE_URL: https://", by_name["relay"])
    caddyfile = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy" in caddyfile and "relay 8080" in caddyfile


UNIT = DEPLOY / "care-relay.service"


def test_systemd_unit_is_hardened_as_the_contract_says() -> None:
    """Own or dynamic user, NoNewPrivileges, ProtectSystem=strict, StateDirectory 0700, UMask=0077, address families."""
    settings = dict(
        line.split("=", 1) for line in UNIT.read_text(encoding="utf-8").splitlines() if "=" in line and line[0] != "#"
    )
    assert settings.get("DynamicUser") == "yes" or settings.get("User") not in (None, "root")
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["StateDirectory"] and settings["StateDirectoryMode"] == "0700"
    assert settings["UMask"] == "0077"
    assert set(settings["RestrictAddressFamilies"].split()) <= {"AF_INET", "AF_INET6", "AF_UNIX"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_unit_scores_ok_in_systemd_analyze_security() -> None:
    """`systemd-analyze security --offline=true` rates the unit's exposure OK (at most 3.0)."""
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    if found is None:
        pytest.skip(f"systemd-analyze here cannot judge a unit offline: {(done.stderr or done.stdout).strip()[:200]}")
    assert float(found.group(1)) <= 3.0 and found.group(2) == "OK", done.stdout[-2000:]


MANIFEST = DEPLOY / "slack-app-manifest.yaml"


async def _methods_the_relay_calls(aiohttp_client: Any, database_url: str, fake: FakeSlack) -> set[str]:
    """Every Web API method FakeSlack saw on one loop over Socket Mode, the Home tab, a refusal and a lookup."""
    settings = make_settings(
        database_url, slack_bot_token=DEFAULT_TOKEN, slack_app_token=APP_TOKEN, slack_api_url=fake.api_url
    )
    client = await aiohttp_client(create_app(settings, run_outbox=False))
    for agent in ("ana", "bo"):
        assert (await client.post("/admin/agents", json=AGENTS[agent], headers=ADMIN)).status == 201
    assert (await client.post("/admin/consents", json=GRANT, headers=ADMIN)).status == 201
    await fake.wait_connected()
    answer, invitation = await invited(client, fake)
    await press(fake, ANA, "care_ack_1", f"{invitation}:1")
    await press(fake, STRANGER, "care_ack_1", f"{invitation}:1")
    await press(fake, ANA, "care_done", str(invitation))
    await submit(fake, ANA, invitation, "held-space")
    await drain(client)
    await fake.push("slash_commands", slash_command_fields(user_id=ANA))
    await fake.push("events_api", app_home_opened(ANA))
    fake.add_user(ANA, "ana@example.org")
    assert await user_id_by_email(settings, "ana@example.org") == ANA
    assert answer["status"] == "invited"
    return set(fake.methods())


async def test_slack_manifest_asks_for_exactly_the_scopes_the_relay_uses(
    slack: FakeSlack, aiohttp_client: Any, database_url: str
) -> None:
    """The manifest's bot scopes are those of the methods the relay was seen calling; events and surfaces match."""
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    called = await _methods_the_relay_calls(aiohttp_client, database_url, slack)
    assert "apps.connections.open" in called  # Socket Mode, with the app-level token (connections:write)
    bot_methods = called - {"apps.connections.open"}
    assert bot_methods == set(scopes.METHOD_SCOPES), (
        "the scope table names a method the relay does not call, or misses one"
    )
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == scopes.bot_scopes(frozenset(bot_methods))
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == list(scopes.BOT_EVENTS)
    assert settings["interactivity"]["is_enabled"] is True and "socket_mode_enabled" in settings
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/care"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
