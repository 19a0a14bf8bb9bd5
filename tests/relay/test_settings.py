"""Settings as `load()` reads them: what `serve` demands outside --dev, and secrets read from files."""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from unittest import mock

import pytest

from relay.config import ConfigError, load
from tests.support import SERVING_ENV, clean_env

#: Every secret of CONTRACT.md section 2.
SECRETS = (
    "RELAY_ADMIN_TOKENS",
    "RELAY_LINK_SECRETS",
    "M3_WEBHOOK_SECRETS",
    "AISHA_WEBHOOK_SECRETS",
    "M3_CALLBACK_SECRET",
    "AISHA_CALLBACK_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "TWILIO_AUTH_TOKEN",
    "CARE_WORKFLOW_WEBHOOK_SECRET",
)
#: Secrets that hold a comma-separated list (rotation).
LISTS = ("RELAY_ADMIN_TOKENS", "RELAY_LINK_SECRETS", "M3_WEBHOOK_SECRETS", "AISHA_WEBHOOK_SECRETS")
SHORT = "fifteen-chars-x"


@pytest.fixture
def environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MutableMapping[str, str]]:
    """No relay setting in the environment, a working directory without `.env`; both restored after."""
    monkeypatch.chdir(tmp_path)
    with mock.patch.dict(os.environ, clean_env(), clear=True):
        yield os.environ


def refusal(**kwargs: bool) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", SECRETS)
def test_a_secret_shorter_than_16_characters_stops_serve(environ: MutableMapping[str, str], name: str) -> None:
    """Outside --dev, `serve` refuses a secret under 16 characters, naming the variable, never the value."""
    environ.update(SERVING_ENV)
    environ[name] = f"{SERVING_ENV.get(name, 'another-secret-0123')},{SHORT}" if name in LISTS else SHORT
    message = refusal()
    assert message.startswith(f"{name}: ") and "at least 16 characters" in message
    assert SHORT not in message


def test_secrets_of_16_characters_are_enough(environ: MutableMapping[str, str]) -> None:
    """A secret of exactly 16 characters is accepted."""
    environ.update(SERVING_ENV, SLACK_SIGNING_SECRET=SHORT + "y")
    assert load().slack_signing_secret == SHORT + "y"


def test_serve_outside_dev_needs_the_public_base_url(environ: MutableMapping[str, str]) -> None:
    """Outside --dev, `serve` does not guess the URL the world uses: RELAY_PUBLIC_BASE_URL must be set."""
    environ.update({k: v for k, v in SERVING_ENV.items() if k != "RELAY_PUBLIC_BASE_URL"})
    assert refusal().startswith("RELAY_PUBLIC_BASE_URL is not set")
    environ["RELAY_PUBLIC_BASE_URL"] = "https://relay.example.org/"
    assert load().public_base_url == "https://relay.example.org"


def test_other_commands_need_neither_the_public_url_nor_long_secrets(environ: MutableMapping[str, str]) -> None:
    """Commands other than `serve` (agent, consent, inbox, emit) load without RELAY_PUBLIC_BASE_URL."""
    environ["M3_WEBHOOK_SECRETS"] = "short"
    settings = load(serving=False)
    assert settings.m3_webhook_secrets == ("short",)
    assert settings.public_base_url == "http://127.0.0.1:8080"


def test_dev_links_follow_the_listen_address(environ: MutableMapping[str, str]) -> None:
    """In --dev without RELAY_PUBLIC_BASE_URL, links are built on the listen address."""
    environ.update(RELAY_PORT="8081", M3_WEBHOOK_SECRETS="short")
    settings = load(dev=True)
    assert settings.public_base_url == "http://127.0.0.1:8081"
    assert settings.m3_webhook_secrets == ("short",)


@pytest.mark.parametrize("name", SECRETS)
def test_each_secret_can_be_read_from_a_file(environ: MutableMapping[str, str], tmp_path: Path, name: str) -> None:
    """`<NAME>_FILE=/path` gives the secret the file's text, its trailing newline stripped."""
    environ.update(SERVING_ENV)
    environ.pop(name, None)
    value = "from-a-file-0123456789"
    (tmp_path / "secret").write_text(value + "\n")
    environ[f"{name}_FILE"] = str(tmp_path / "secret")
    assert getattr(load(), name.lower()) == ((value,) if name in LISTS else value)


def test_a_secret_file_named_in_dotenv_is_read(environ: MutableMapping[str, str], tmp_path: Path) -> None:
    """`.env` may name the file too; a list secret's file holds the same comma-separated list."""
    environ.update({k: v for k, v in SERVING_ENV.items() if k != "RELAY_LINK_SECRETS"})
    (tmp_path / "links").write_text("link-secret-old-0123456,link-secret-new-0123456\n")
    (tmp_path / ".env").write_text(f"RELAY_LINK_SECRETS_FILE={tmp_path / 'links'}\n")
    assert load().relay_link_secrets == ("link-secret-old-0123456", "link-secret-new-0123456")


def test_dev_uses_a_secret_file_instead_of_generating(environ: MutableMapping[str, str], tmp_path: Path) -> None:
    """With --dev, a secret given by file is used as it is; only the others are generated."""
    (tmp_path / "admin").write_text("admin-from-file-0123456789\n")
    environ["RELAY_ADMIN_TOKENS_FILE"] = str(tmp_path / "admin")
    settings = load(dev=True)
    assert settings.relay_admin_tokens == ("admin-from-file-0123456789",)
    assert settings.relay_link_secrets


FILE_FAILURES = {
    # id: (what the file is, the variable set beside it, what the one line says)
    "missing": (None, None, "RELAY_ADMIN_TOKENS_FILE: cannot read {path}"),
    "a-folder": ("folder", None, "RELAY_ADMIN_TOKENS_FILE: cannot read {path}"),
    "empty": ("\n", None, "RELAY_ADMIN_TOKENS_FILE: {path} is empty"),
    "both-set": (
        "admin-from-file-0123456789",
        "admin-token-0123456789",
        "RELAY_ADMIN_TOKENS and RELAY_ADMIN_TOKENS_FILE are both set",
    ),
    "both-set-in-dev": (
        "admin-from-file-0123456789",
        "admin-token-0123456789",
        "RELAY_ADMIN_TOKENS and RELAY_ADMIN_TOKENS_FILE are both set",
    ),
}


@pytest.mark.parametrize("case", FILE_FAILURES)
def test_secret_file_failures_are_one_line(environ: MutableMapping[str, str], tmp_path: Path, case: str) -> None:
    """A secret file that cannot be read, is empty, or is set beside the variable stops start-up in one line."""
    content, beside, expected = FILE_FAILURES[case]
    environ.update({k: v for k, v in SERVING_ENV.items() if k != "RELAY_ADMIN_TOKENS"})
    path = tmp_path / "admin"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    environ["RELAY_ADMIN_TOKENS_FILE"] = str(path)
    if beside:
        environ["RELAY_ADMIN_TOKENS"] = beside
    message = refusal(dev=case.endswith("-in-dev"))
    assert message.startswith(expected.format(path=path)), message
    assert "0123456789" not in message


def test_the_callback_schedule_defaults_to_about_27_hours(environ: MutableMapping[str, str]) -> None:
    """RELAY_CALLBACK_SCHEDULE: seven retries by default, 5 s to 10 h apart; spaces around commas are fine."""
    assert load(serving=False).relay_callback_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    environ["RELAY_CALLBACK_SCHEDULE"] = " 10, 60 ,600"
    assert load(serving=False).relay_callback_schedule == (10, 60, 600)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("", "name the seconds"),
        ("5,,300", "'' is not a number of seconds"),
        ("5,x", "'x' is not a number of seconds"),
        ("5,-1", "'-1' is not a number of seconds"),
        ("0", "'0' is not a number of seconds"),
        ("1.5", "'1.5' is not a number of seconds"),
        ("604801", "'604801' is not a number of seconds"),
        ("\u0665", "is not a number of seconds"),  # an Arabic-Indic five: a digit to str.isdigit, not here
        (",".join(["5"] * 51), "at most 50 retries"),
    ],
)
def test_a_malformed_callback_schedule_stops_start_up_in_one_line(
    environ: MutableMapping[str, str], value: str, named: str
) -> None:
    """A schedule that is not whole seconds from 1 to a week, comma-separated, is refused naming the variable."""
    environ.update(SERVING_ENV, RELAY_CALLBACK_SCHEDULE=value)
    message = refusal()
    assert message.startswith("RELAY_CALLBACK_SCHEDULE: ") and named in message, message
    assert "Value error" not in message


def test_named_admins_are_read_as_name_token_pairs(environ: MutableMapping[str, str]) -> None:
    """RELAY_ADMINS=name:token,… holds each admin's name and token; repr shows neither token."""
    environ.update(SERVING_ENV)
    environ["RELAY_ADMINS"] = "ann:ann-token-0123456789, bo.night:bo-token-0123456789"
    settings = load()
    assert settings.relay_admins == (("ann", "ann-token-0123456789"), ("bo.night", "bo-token-0123456789"))
    assert "ann-token" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("ann:short-token", "the token of 'ann' must be at least 16 characters"),
        ("ann-token-0123456789", "entry 1 is not name:token"),
        ("ann smith:ann-token-0123456789", "entry 1: a name is 1 to 64 letters"),
        ("ann:ann-token-0123456789,Ann:other-token-0123456789", "'Ann' is named twice"),
        ("ann:same-token-0123456789,bo:same-token-0123456789", "the token of 'bo' is also another admin's"),
    ],
)
def test_unfit_named_admins_stop_start_up_in_one_line_without_the_token(
    environ: MutableMapping[str, str], value: str, says: str
) -> None:
    """A RELAY_ADMINS entry that is not name:token, a bad name, a short or shared token: one line naming the
    variable and the entry, never a token."""
    environ.update(SERVING_ENV)
    environ["RELAY_ADMINS"] = value
    message = refusal(dev=True)
    assert message.startswith("RELAY_ADMINS: ") and says in message
    for token in ("short-token", "ann-token-0123456789", "same-token-0123456789", "other-token-0123456789"):
        assert token not in message


def test_named_admins_can_be_read_from_a_file(environ: MutableMapping[str, str], tmp_path: Path) -> None:
    """RELAY_ADMINS_FILE names a file holding name:token,…."""
    environ.update(SERVING_ENV)
    (tmp_path / "admins").write_text("ann:ann-token-0123456789\n")
    environ["RELAY_ADMINS_FILE"] = str(tmp_path / "admins")
    assert load().relay_admins == (("ann", "ann-token-0123456789"),)
