"""One frozen settings object, read once from the environment (and `.env`).

Every variable of CONTRACT.md section 2 is a field here, named as in the environment
(case-insensitive). Secrets never appear in `repr`, and any of them may be read from a
file named by `<NAME>_FILE`. Composite values are parsed and checked by
`relay.setting_values`; `relay.config.load()` reads this object and names a missing or
unfit value in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from relay.labels import LOCALES, read_responses
from relay.logs import level_of
from relay.model import RoutingSettings
from relay.phones import region_code
from relay.secret_files import SecretFiles, secret_fields
from relay.setting_values import (
    MIN_SECRET_LENGTH,
    as_values,
    check_admins,
    check_app_token,
    check_schedule,
    check_twilio_sid,
    comma_list,
    parse_named_admins,
    parse_schedule,
)

CommaList = Annotated[tuple[str, ...], NoDecode]
#: whole seconds, comma-separated in the environment ("5,300,1800")
Seconds = Annotated[tuple[int, ...], NoDecode]
Secrets = Annotated[tuple[str, ...], NoDecode, Field(repr=False)]
#: named admin tokens (RELAY_ADMINS, `name:token,…`): (name, token) pairs
NamedSecrets = Annotated[tuple[tuple[str, str], ...], NoDecode, Field(repr=False)]

#: Secrets the server cannot start without (outside --dev, where they are generated).
REQUIRED_SECRETS = ("RELAY_LINK_SECRETS", "RELAY_ADMIN_TOKENS", "M3_WEBHOOK_SECRETS", "AISHA_WEBHOOK_SECRETS")


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
        return comma_list(value) if isinstance(value, str) else value

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
        return parse_named_admins(value) if isinstance(value, str) else value

    @field_validator("relay_admins")
    @classmethod
    def _admins_fit(cls, value: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return check_admins(value)

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
        return parse_schedule(value) if isinstance(value, str) else value

    @field_validator("relay_callback_schedule")
    @classmethod
    def _schedule_bounds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return check_schedule(value)

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
        return None if value is None else check_app_token(value)

    @field_validator("relay_default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else region_code(value)

    @field_validator("twilio_messaging_service_sid", "twilio_whatsapp_content_sid")
    @classmethod
    def _twilio_sid(cls, value: str | None, info: ValidationInfo) -> str | None:
        prefix = "MG" if info.field_name == "twilio_messaging_service_sid" else "HX"
        return None if value is None else check_twilio_sid(value, prefix)

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
