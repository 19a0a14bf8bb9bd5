"""One frozen settings object, read once from the environment (and `.env`).

Every variable of CONTRACT.md section 2 is a field here, named as in the environment
(case-insensitive). Secrets never appear in `repr`, and any of them may be read from a
file named by `<NAME>_FILE`. `load()` names a missing or unfit value in one line; `--dev`
fills missing secrets from `var/dev-secrets.env`.
"""

from __future__ import annotations

import os
import re
import secrets as _secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from relay.files import private_dir
from relay.labels import LOCALES, read_responses
from relay.logs import level_of
from relay.model import RoutingSettings
from relay.phones import region_code
from relay.secret_files import SecretFileError, SecretFiles, secret_fields

CommaList = Annotated[tuple[str, ...], NoDecode]
#: whole seconds, comma-separated in the environment ("5,300,1800")
Seconds = Annotated[tuple[int, ...], NoDecode]
Secrets = Annotated[tuple[str, ...], NoDecode, Field(repr=False)]
#: named admin tokens (RELAY_ADMINS, `name:token,…`): (name, token) pairs
NamedSecrets = Annotated[tuple[tuple[str, str], ...], NoDecode, Field(repr=False)]

#: Secrets the server cannot start without (outside --dev, where they are generated).
REQUIRED_SECRETS = ("RELAY_LINK_SECRETS", "RELAY_ADMIN_TOKENS", "M3_WEBHOOK_SECRETS", "AISHA_WEBHOOK_SECRETS")
DEV_SECRETS_FILE = Path("var") / "dev-secrets.env"
#: Outside --dev, no secret is shorter: a guessable key signs links and verifies senders.
MIN_SECRET_LENGTH = 16
#: an admin's name in RELAY_ADMINS: it is recorded as `by`, so it reads like one
ADMIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: a callback schedule names at most this many retries, each at most a week away
MAX_SCHEDULE_STEPS = 50
MAX_SCHEDULE_STEP_SEC = 7 * 86400
_TWILIO_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 (a command, not a secret)


class ConfigError(Exception):
    """A one-line, operator-facing reason the relay cannot start."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True, case_sensitive=False)

    relay_database_url: str = "sqlite+aiosqlite:///./var/care-relay.db"
    relay_host: str = "127.0.0.1"
    relay_port: int = 8080
    #: unset: links follow the listen address (`--dev` and local commands; `serve` needs it otherwise)
    relay_public_base_url: str | None = None
    relay_max_body_bytes: int = Field(262144, gt=0)
    relay_admin_tokens: Secrets = ()
    #: named admin tokens, `name:token,…`: the console's sign-in, and the admin API, record the name as `by`
    relay_admins: NamedSecrets = ()
    relay_link_secrets: Secrets = ()
    relay_link_max_age_sec: int = Field(604800, gt=0)
    relay_sending_enabled: bool = True
    relay_shadow_mode: bool = False
    #: an address is invited only once its owner confirmed it (JOIN, the Join button; CONTRACT section 8)
    relay_verify_addresses: bool = True
    relay_agent_max_invites_per_hour: int = Field(6, ge=0)
    #: one loop per moment: a signal about the subject of an open loop joins it (CONTRACT section 10)
    relay_coalesce: bool = True
    relay_unknown_sender_max_per_hour: int = Field(10, ge=0)
    relay_retention_days: int = Field(90, gt=0)
    relay_outbox_max_attempts: int = Field(8, gt=0)
    #: seconds before each retry of a callback to a sender (CONTRACT section 6); failed after the last
    relay_callback_schedule: Seconds = (5, 300, 1800, 7200, 18000, 36000, 36000)
    relay_body_timeout_sec: float = Field(10, gt=0)
    relay_idle_timeout_sec: float = Field(30, gt=0)
    relay_max_connections_per_client: int = Field(64, ge=0)
    relay_sqlite_busy_timeout_ms: int = Field(5000, ge=0)
    relay_shutdown_grace_sec: float = Field(10, ge=0, le=3600)
    #: bearer tokens for GET /metrics (admin tokens are accepted too)
    relay_metrics_tokens: Secrets = ()
    #: json, text, or auto: JSON when stderr is not a terminal
    relay_log_format: Literal["json", "text", "auto"] = "auto"
    relay_log_level: str = "info"
    #: ISO country code for phone numbers written without + (`RO` reads `0722 123 456`)
    relay_default_region: str | None = None
    #: the language of agents who have none (CONTRACT section 9)
    relay_default_locale: str = "en"
    #: a TOML file of response labels and descriptions per language (relay.labels)
    relay_responses_file: Path | None = None

    m3_webhook_secrets: Secrets = ()
    m3_max_window_sec: int = Field(300, gt=0)
    m3_callback_url: str | None = None
    m3_callback_secret: str | None = Field(None, repr=False)

    aisha_webhook_secrets: Secrets = ()
    aisha_max_window_sec: int = Field(300, gt=0)
    aisha_care_window_minutes: int = Field(240, gt=0)
    aisha_app_base_url: str | None = None
    aisha_suggested_responses: CommaList = ("on-it",)
    aisha_callback_url: str | None = None
    aisha_callback_secret: str | None = Field(None, repr=False)

    slack_bot_token: str | None = Field(None, repr=False)
    slack_signing_secret: str | None = Field(None, repr=False)
    #: an app-level token (xapp-…): Slack over Socket Mode, no public URL or signing secret needed
    slack_app_token: str | None = Field(None, repr=False)
    slack_api_url: str = "https://slack.com/api/"

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = Field(None, repr=False)
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    #: `MG…`: SMS goes through this Messaging Service (Twilio picks the sender) instead of TWILIO_SMS_FROM
    twilio_messaging_service_sid: str | None = None
    #: `HX…`: the approved WhatsApp template for invitations outside the 24-hour session
    twilio_whatsapp_content_sid: str | None = None

    care_workflow_triggers_enabled: bool = False
    care_workflow_escalation_webhook_url: str | None = None
    care_workflow_webhook_secret: str | None = Field(None, repr=False)
    care_workflow_webhook_timeout_ms: int = Field(3000, gt=0)
    care_workflow_webhook_max_retries: int = Field(2, ge=0)

    #: not an environment variable: set by `serve --dev`.
    dev: bool = Field(False, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = SecretFiles(settings_cls, env_settings, dotenv_settings)
        return init_settings, files, env_settings, dotenv_settings, file_secret_settings

    @field_validator(
        "relay_admin_tokens",
        "relay_metrics_tokens",
        "relay_link_secrets",
        "m3_webhook_secrets",
        "aisha_webhook_secrets",
        "aisha_suggested_responses",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("relay_default_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        wanted = value.strip().lower().replace("_", "-")
        if wanted not in LOCALES:
            raise ValueError(f"'{value[:20]}' is not a language the relay speaks; use one of {', '.join(LOCALES)}")
        return wanted

    @field_validator("relay_responses_file", mode="before")
    @classmethod
    def _no_blank_path(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("relay_responses_file")
    @classmethod
    def _responses(cls, value: Path | None) -> Path | None:
        read_responses(value)  # a ResponsesFileError (a ValueError) says what to fix, in one line
        return value

    @field_validator("relay_admins", mode="before")
    @classmethod
    def _named_admins(cls, value: Any) -> Any:
        """`name:token,…`; every message names the entry by position or name, never by its token."""
        if not isinstance(value, str):
            return value
        pairs: list[tuple[str, str]] = []
        for position, part in enumerate((p.strip() for p in value.split(",")), start=1):
            if not part:
                continue
            name, colon, token = (piece.strip() for piece in part.partition(":"))
            if not colon or not name or not token:
                raise ValueError(f"entry {position} is not name:token; write RELAY_ADMINS=ana:<token>,bo:<token>")
            pairs.append((name, token))
        return tuple(pairs)

    @field_validator("relay_admins")
    @classmethod
    def _admins_fit(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        names: set[str] = set()
        tokens: set[str] = set()
        for position, (name, token) in enumerate(value, start=1):
            if not ADMIN_NAME.fullmatch(name):
                raise ValueError(
                    f"entry {position}: a name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                )
            if len(token) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"the token of '{name}' must be at least {MIN_SECRET_LENGTH} characters; make one with {MAKE_SECRET}"
                )
            if name.lower() in names:
                raise ValueError(f"'{name}' is named twice; each admin has one entry")
            if token in tokens:
                raise ValueError(f"the token of '{name}' is also another admin's; each admin has their own")
            names.add(name.lower())
            tokens.add(token)
        return value

    @field_validator("relay_log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("relay_log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level_of(value)  # a ValueError names the choices
        return value.strip().lower()

    @field_validator("relay_callback_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        example = "e.g. 5,300,1800,7200"
        parts = [part.strip() for part in value.split(",")]
        if not any(parts):
            raise ValueError(f"name the seconds before each retry, comma-separated ({example})")
        if len(parts) > MAX_SCHEDULE_STEPS:
            raise ValueError(f"name at most {MAX_SCHEDULE_STEPS} retries")
        steps = []
        for part in parts:
            if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_SCHEDULE_STEP_SEC:
                raise ValueError(
                    f"{part[:20]!r} is not a number of seconds from 1 to {MAX_SCHEDULE_STEP_SEC};"
                    f" give whole seconds before each retry, comma-separated ({example})"
                )
            steps.append(int(part))
        return tuple(steps)

    @field_validator("relay_callback_schedule")
    @classmethod
    def _schedule_bounds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(value) > MAX_SCHEDULE_STEPS or not all(1 <= v <= MAX_SCHEDULE_STEP_SEC for v in value):
            raise ValueError(
                f"name 1 to {MAX_SCHEDULE_STEPS} retries, each from 1 to {MAX_SCHEDULE_STEP_SEC} seconds away"
            )
        return value

    @field_validator(
        "m3_callback_url",
        "m3_callback_secret",
        "aisha_callback_url",
        "aisha_callback_secret",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_sms_from",
        "twilio_whatsapp_from",
        "twilio_messaging_service_sid",
        "twilio_whatsapp_content_sid",
        "relay_default_region",
        "care_workflow_escalation_webhook_url",
        "care_workflow_webhook_secret",
        "aisha_app_base_url",
        "relay_public_base_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().startswith("xapp-"):
            # the value itself is a secret: never echoed
            raise ValueError(
                "an app-level token starts with xapp- (Basic Information → App-Level Tokens, scope"
                " connections:write); a bot token (xoxb-) goes in SLACK_BOT_TOKEN"
            )
        return None if value is None else value.strip()

    @field_validator("relay_default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else region_code(value)

    @field_validator("twilio_messaging_service_sid", "twilio_whatsapp_content_sid")
    @classmethod
    def _twilio_sid(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        prefix = "MG" if info.field_name == "twilio_messaging_service_sid" else "HX"
        if not _TWILIO_SID.fullmatch(value) or not value.startswith(prefix):
            raise ValueError(f"a Twilio sid is {prefix} followed by 32 hexadecimal digits ({prefix}0123…)")
        return value

    @model_validator(mode="after")
    def _callbacks_need_secrets(self) -> Settings:
        if self.aisha_callback_url and not self.aisha_callback_secret:
            raise ValueError("AISHA_CALLBACK_URL is set but AISHA_CALLBACK_SECRET is not")
        return self

    # Derived values -------------------------------------------------------------

    @property
    def public_base_url(self) -> str:
        """Where links and Twilio's signatures point: RELAY_PUBLIC_BASE_URL, else the listen address."""
        if self.relay_public_base_url:
            return self.relay_public_base_url.rstrip("/")
        # a wildcard listen address is reached through loopback, never bound here
        host = "127.0.0.1" if self.relay_host in ("", "0.0.0.0", "::") else self.relay_host  # noqa: S104
        return f"http://[{host}]:{self.relay_port}" if ":" in host else f"http://{host}:{self.relay_port}"

    @property
    def m3_callback_key(self) -> str | None:
        return self.m3_callback_secret or (self.m3_webhook_secrets[0] if self.m3_webhook_secrets else None)

    @property
    def slack_enabled(self) -> bool:
        """A bot token, and a way for Slack to reach the relay: signed HTTP requests or Socket Mode."""
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))

    @property
    def slack_socket_mode(self) -> bool:
        """Slack's presses, modals, commands and events arrive over Socket Mode (SLACK_APP_TOKEN)."""
        return self.slack_enabled and bool(self.slack_app_token)

    @property
    def slack_mode(self) -> str:
        """How Slack is set up, in words for `care-relay check`."""
        if not self.slack_enabled:
            return "off"
        if self.slack_app_token and self.slack_signing_secret:
            return "Socket Mode (SLACK_APP_TOKEN), with POST /slack/events also verified by SLACK_SIGNING_SECRET"
        if self.slack_app_token:
            return "Socket Mode (SLACK_APP_TOKEN): no public URL needed"
        return "HTTP: Slack posts to /slack/events, verified by SLACK_SIGNING_SECRET"

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def configured_channels(self) -> frozenset[str]:
        channels = set()
        if self.slack_enabled:
            channels.add("slack")
        if self.twilio_enabled and (self.twilio_sms_from or self.twilio_messaging_service_sid):
            channels.add("sms")
        if self.twilio_enabled and self.twilio_whatsapp_from:
            channels.add("whatsapp")
        if self.dev:
            channels.add("console")
        return frozenset(channels)

    def routing(self) -> RoutingSettings:
        """The part of the settings the router reads."""
        return RoutingSettings(
            sending_enabled=self.relay_sending_enabled,
            shadow_mode=self.relay_shadow_mode,
            agent_max_invites_per_hour=self.relay_agent_max_invites_per_hour,
            aisha_care_window_minutes=self.aisha_care_window_minutes,
            configured_channels=self.configured_channels,
            verify_addresses=self.relay_verify_addresses,
        )

    def missing_secrets(self) -> list[str]:
        return [name for name in REQUIRED_SECRETS if not getattr(self, name.lower())]

    def short_secrets(self) -> list[str]:
        """The secrets (variable names) with a value under MIN_SECRET_LENGTH characters."""
        return [
            name.upper()
            for name in secret_fields(type(self))
            if any(len(value) < MIN_SECRET_LENGTH for value in as_values(getattr(self, name)))
        ]


def as_values(value: tuple[str, ...] | tuple[tuple[str, str], ...] | str | None) -> tuple[str, ...]:
    """A secret setting's values; of named tokens (RELAY_ADMINS), the tokens."""
    if isinstance(value, tuple):
        return tuple(v[1] if isinstance(v, tuple) else v for v in value)
    return (value,) if value else ()


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


def ensure_dev_secrets(path: Path = DEV_SECRETS_FILE) -> Path:
    """Create (0600) or top up the dev secrets file and export its values where unset."""
    known = read_env_file(path)
    dotenv = read_env_file(Path(".env"))
    changed = False
    for name in REQUIRED_SECRETS:
        if name not in known:
            known[name] = _secrets.token_urlsafe(32)
            changed = True
    if changed or not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# generated by care-relay --dev; keep private\n")
            fh.writelines(f"{k}={v}\n" for k, v in known.items())
    os.chmod(path, 0o600)
    for name, value in known.items():
        # a secret given by file is the operator's: exporting ours beside it would be "both set"
        if not any(os.environ.get(key) or dotenv.get(key) for key in (name, f"{name}_FILE")):
            os.environ[name] = value
    return path


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values
