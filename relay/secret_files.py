"""Secrets read from files: `<NAME>_FILE=/path` beside (never with) `<NAME>`.

Keeping a secret in a file (systemd credentials, Docker or Kubernetes secrets) keeps it out
of the environment that every child process and `/proc/<pid>/environ` can show.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class SecretFileError(Exception):
    """A secret file that cannot be used; the one-line message names its variable."""


def secret_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The fields that hold secrets: those kept out of `repr`."""
    return [name for name, field in settings_cls.model_fields.items() if field.repr is False]


class SecretFiles(PydanticBaseSettingsSource):
    """`<NAME>_FILE=/path`, in the environment or `.env`, gives a secret the file's text.

    The trailing newline is stripped (`echo secret > file` and Docker secrets end with one).
    A file that cannot be read, an empty one, or one set beside `<NAME>` is a SecretFileError.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource, dotenv: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        # the environment wins over .env here as it does for the values themselves
        self._vars: dict[str, str | None] = {**getattr(dotenv, "env_vars", {}), **getattr(env, "env_vars", {})}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._vars.get(f"{field_name}_file"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in secret_fields(self.settings_cls):
            path = (self._vars.get(f"{name}_file") or "").strip()
            if not path:
                continue
            if (self._vars.get(name) or "").strip():
                raise SecretFileError(f"{name.upper()} and {name.upper()}_FILE are both set; keep only one of them")
            values[name] = read_secret_file(f"{name.upper()}_FILE", Path(path))
        return values


def read_secret_file(variable: str, path: Path) -> str:
    """The secret in `path` without its trailing newline; `variable` names it in a failure."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = os.strerror(exc.errno).lower() if isinstance(exc, OSError) and exc.errno else "it is not UTF-8 text"
        raise SecretFileError(
            f"{variable}: cannot read {path}: {reason}; check the path and that this user may read it"
        ) from None
    if not value.strip():
        raise SecretFileError(f"{variable}: {path} is empty; put the secret in it, or unset {variable}")
    return value
