"""Phone numbers as people write them: read into E.164, refused in one sentence, shown redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from relay.config import ConfigError, load
from relay.phones import PhoneError, to_e164
from relay.redact import redact
from relay.settings import Settings
from tests.support import ADMIN_TOKEN, SERVING_ENV, clean_env, cli, make_settings, run_cli

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize(
    ("written", "region", "e164"),
    [
        ("+40722123456", None, "+40722123456"),
        ("+40 722 123 456", None, "+40722123456"),
        ("+40 (722) 123-456", None, "+40722123456"),
        ("0722123456", "RO", "+40722123456"),
        ("0722 123 456", "RO", "+40722123456"),
        ("(0722) 123-456", "RO", "+40722123456"),
        ("0040 722 123 456", "RO", "+40722123456"),
        ("+40 722 123 456", "GB", "+40722123456"),
        ("(415) 523-8886", "US", "+14155238886"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+353 85 123 4567", None, "+353851234567"),
    ],
)
def test_numbers_as_people_write_them_read_as_e164(written: str, region: str | None, e164: str) -> None:
    """Spaces, brackets, dashes, a trunk 0 with a region, or 00 with a region all read as the same E.164."""
    assert to_e164(written, field="phone", region=region) == e164


def test_whatsapp_prefix_is_read_only_in_the_whatsapp_field() -> None:
    """`whatsapp:+40…` (Twilio's address, as people copy it) is read for WhatsApp, not for SMS."""
    assert to_e164("whatsapp:+40 722 123 456", field="whatsapp", whatsapp=True) == "+40722123456"
    with pytest.raises(PhoneError):
        to_e164("whatsapp:+40722123456", field="phone")


@pytest.mark.parametrize(
    ("written", "region", "said"),
    [
        (
            "0722 12",
            "RO",
            "phone: '0722 12' is not a valid phone number; write it with its country code, e.g. +40 722 123 456",
        ),
        ("+40 722 12", None, "phone: '+40 722 12' is not a valid phone number"),
        ("call me", "RO", "phone: 'call me' is not a valid phone number"),
        ("+", None, "phone: '+' is not a valid phone number"),
        ("+1 555 123 0001", None, "phone: '+1 555 123 0001' is not a valid"),  # 555: no such US area code
        (
            "0722123456",
            None,
            (
                "phone: '0722123456' has no country code; write it with + and its country code"
                " (e.g. +40 722 123 456), or set RELAY_DEFAULT_REGION"
            ),
        ),
    ],
)
def test_a_bad_number_is_refused_in_one_sentence_naming_the_field(written: str, region: str | None, said: str) -> None:
    """The sentence names the field, quotes what was written (shortened) and says how to write it."""
    with pytest.raises(PhoneError) as refused:
        to_e164(written, field="phone", region=region)
    assert str(refused.value).startswith(said)
    assert "\n" not in str(refused.value)


def test_a_long_or_controlled_input_is_quoted_short_and_on_one_line() -> None:
    """Garbage never comes back whole: control characters become spaces and the quote is cut."""
    with pytest.raises(PhoneError) as refused:
        to_e164("\x1b[2J" + "9" * 60, field="whatsapp", region="RO")
    message = str(refused.value)
    assert "\x1b" not in message and "9" * 30 not in message and message.startswith("whatsapp: ")


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        ("+40722123456", "+40…3456"),
        ("whatsapp:+40722123456", "+40…3456"),
        ("+14155238886", "+1…8886"),
        ("+442079460958", "+44…0958"),
        ("+353851234567", "+353…4567"),
        ("+8613912345678", "+86…5678"),
        ("+3712345678", "+371…78"),  # a short national number: only its last two
        ("", ""),
        (None, None),
        ("garbage", "…ge"),
        ("+", "…+"),
        ("whatsapp:", "…"),
        ("0722123456", "…56"),
        ("+40" + "7" * 60, "…77"),
    ],
)
def test_redaction_shows_the_country_calling_code_and_the_last_four(number: str | None, shown: str | None) -> None:
    """`+40…1234`, `+1…4567`: never more; garbage shows at most its last two characters and never raises."""
    assert redact(number) == shown


@pytest.mark.parametrize("region", ["ro", " RO ", "GB"])
def test_default_region_is_a_country_code(region: str) -> None:
    """RELAY_DEFAULT_REGION is read case-insensitively as an ISO country code."""
    settings: Settings = make_settings("sqlite+aiosqlite:///unused.db", relay_default_region=region)
    assert settings.relay_default_region == region.strip().upper()


def test_unknown_default_region_stops_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An unknown RELAY_DEFAULT_REGION is named in one line with what to write instead."""
    monkeypatch.chdir(tmp_path)
    for key, value in clean_env(RELAY_DEFAULT_REGION="Romania").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as stopped:
        load(serving=False)
    assert str(stopped.value) == (
        "RELAY_DEFAULT_REGION: 'Romania' is not a country code; use two letters such as RO, GB or US"
    )


async def _start(make_client: Any, database_url: str, **overrides: Any) -> TestClient:
    client: TestClient = await make_client(make_settings(database_url, **overrides))
    return client


async def test_admin_api_stores_spaced_and_local_numbers_in_e164(make_client: Any, database_url: str) -> None:
    """POST and PATCH take `+40 722 123 456` and, with RELAY_DEFAULT_REGION, `(0722) 123-457`; E.164 is stored."""
    client = await _start(make_client, database_url, relay_default_region="RO")
    agent = {"id": "ana", "display": "Ana", "phone": "+40 722 123 456", "whatsapp": "(0722) 123-457"}
    response = await client.post("/admin/agents", json=agent, headers=ADMIN)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert (body["phone"], body["whatsapp"]) == ("+40722123456", "+40722123457")
    response = await client.patch("/admin/agents/ana", json={"phone": "0722 000 111"}, headers=ADMIN)
    assert response.status == 200, await response.text()
    stored = await (await client.get("/admin/agents/ana", headers=ADMIN)).json()
    assert (stored["phone"], stored["whatsapp"]) == ("+40722000111", "+40722123457")


async def test_admin_api_refuses_a_bad_number_naming_the_field(make_client: Any, database_url: str) -> None:
    """A number that is not one is 422 invalid_payload with the field named; a local one without a region too."""
    client = await _start(make_client, database_url)
    agent = {"id": "ana", "display": "Ana", "whatsapp": "0722 12"}
    response = await client.post("/admin/agents", json=agent, headers=ADMIN)
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "invalid_payload"
    [field] = body["fields"]
    assert field["loc"] == ["whatsapp"]
    assert field["msg"].startswith("whatsapp: '0722 12' has no country code;")
    assert "RELAY_DEFAULT_REGION" in field["msg"]
    response = await client.post("/admin/agents", json={"id": "ana", "display": "Ana", "phone": "+40 7"}, headers=ADMIN)
    assert response.status == 422
    assert (await response.json())["fields"][0]["msg"].startswith("phone: '+40 7' is not a valid phone number;")
    assert (await (await client.get("/admin/agents", headers=ADMIN)).json())["items"] == []


def test_cli_reads_local_numbers_with_the_default_region(tmp_path: Path) -> None:
    """`agent add --phone "0722 123 456"` with RELAY_DEFAULT_REGION=RO stores +40722123456; without a region, one line."""
    url = f"sqlite+aiosqlite:///{tmp_path}/relay.db"
    env = clean_env(**SERVING_ENV, RELAY_DATABASE_URL=url, RELAY_DEFAULT_REGION="RO")
    added = cli(env, tmp_path, "agent", "add", "ana", "--display", "Ana", "--phone", "0722 123 456", "--json")
    assert json.loads(added)["phone"] == "+40722123456"
    cli(env, tmp_path, "agent", "add", "bo", "--display", "Bo", "--whatsapp", "+44 20 7946 0958")
    listed = {a["id"]: a for a in json.loads(cli(env, tmp_path, "agent", "list", "--json"))}
    assert listed["bo"]["whatsapp"] == "+442079460958"
    table = cli(env, tmp_path, "agent", "list")
    assert "+40…3456" in table and "+44…0958" in table and "722123456" not in table
    no_region = clean_env(**SERVING_ENV, RELAY_DATABASE_URL=url)
    done = run_cli(no_region, tmp_path, "agent", "add", "cy", "--display", "Cy", "--phone", "0722 000 111")
    assert done.returncode != 0
    assert "phone: '0722 000 111' has no country code" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
