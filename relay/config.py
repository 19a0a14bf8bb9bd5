"""The settings a command starts with: read, checked for what `serve` needs, errors in one line.

`load()` names a missing or unfit value in one line (`ConfigError`); `--dev` fills missing
secrets from `var/dev-secrets.env` first (`relay.dev_secrets`).
"""

from __future__ import annotations

from pydantic import ValidationError

from relay.dev_secrets import ensure_dev_secrets
from relay.secret_files import SecretFileError
from relay.setting_values import MAKE_SECRET, MIN_SECRET_LENGTH
from relay.settings import REQUIRED_SECRETS, Settings

__all__ = ["ConfigError", "check_serving", "load"]


class ConfigError(Exception):
    """A one-line, operator-facing reason the relay cannot start."""


def load(*, dev: bool = False, serving: bool = True) -> Settings:
    """Read the settings; with `dev`, generate and keep any missing secret first.

    `serving`: what `serve` needs: every required secret, and outside --dev each secret at
    least MIN_SECRET_LENGTH characters and RELAY_PUBLIC_BASE_URL set. Other commands pass False.
    Raises ConfigError with one line naming the variable when something is wrong.
    """
    if dev:
        ensure_dev_secrets()
    try:
        settings = Settings(dev=dev)
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise ConfigError(f"{name}: {str(first['msg']).removeprefix('Value error, ')}") from None
    if serving:
        check_serving(settings)
    return settings


def check_serving(settings: Settings) -> None:
    """Raise ConfigError naming the first thing `serve` cannot start with."""
    missing = settings.missing_secrets()
    if missing:
        raise ConfigError(f"{missing[0]} is not set; set it in the environment or .env (or run with --dev)")
    if settings.dev:
        return
    short = settings.short_secrets()
    if short:
        which = "each secret" if short[0] in REQUIRED_SECRETS else "the secret"
        raise ConfigError(
            f"{short[0]}: {which} must be at least {MIN_SECRET_LENGTH} characters; make one with {MAKE_SECRET}"
        )
    if not settings.relay_public_base_url:
        raise ConfigError(
            "RELAY_PUBLIC_BASE_URL is not set; set it to the URL senders, Slack and Twilio reach the relay at"
            " (e.g. https://relay.example.org), or run with --dev"
        )
