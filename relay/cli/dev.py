"""`care-relay emit`: sign a payload as a sender would and POST it to a running relay."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp

from receivers import SENDERS
from receivers.json_body import dumps
from relay import config, dev_secrets
from relay.cli.output import fail as _fail
from relay.files import private_dir
from relay.settings import Settings

#: where `serve --dev` leaves the address it listens on, so that `emit` in a second terminal
#: (which did not see `--port`) finds it
DEV_ADDRESS_FILE = Path("var") / "dev-server.url"


def remember_address(base_url: str, path: Path = DEV_ADDRESS_FILE) -> None:
    """Keep the dev server's address for `emit` (removed again by `forget_address`)."""
    private_dir(path.parent)
    path.write_text(base_url + "\n", encoding="utf-8")


def forget_address(base_url: str, path: Path = DEV_ADDRESS_FILE) -> None:
    """Remove the kept address, if it is still this server's (another dev server may have taken over)."""
    try:
        if path.read_text(encoding="utf-8").strip() == base_url:
            path.unlink()
    except OSError:
        pass


#: the console's one-time sign-in link of the dev server in this directory (0600; a secret that works once)
DEV_CONSOLE_FILE = Path("var") / "dev-console.url"


def remember_console_link(link: str, path: Path = DEV_CONSOLE_FILE) -> None:
    """Keep the banner's one-time console link beside the address, readable by its owner only."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"{link}\n")
    os.chmod(path, 0o600)


def forget_console_link(link: str, path: Path = DEV_CONSOLE_FILE) -> None:
    """Remove the kept console link, if it is still this server's."""
    try:
        if path.read_text(encoding="utf-8").strip() == link:
            path.unlink()
    except OSError:
        pass


def default_base_url(settings: Settings, path: Path = DEV_ADDRESS_FILE) -> str:
    """Where `emit` posts without --url: RELAY_PUBLIC_BASE_URL or RELAY_HOST/RELAY_PORT when set,
    else the address a dev server in this directory listens on, else the default listen address."""
    if settings.relay_public_base_url or {"relay_host", "relay_port"} & settings.model_fields_set:
        return settings.public_base_url
    try:
        remembered = path.read_text(encoding="utf-8").strip()
    except OSError:
        remembered = ""
    return remembered if remembered.startswith("http://") else settings.public_base_url


def _secret_for(settings: Settings, source: str) -> str | None:
    sender = SENDERS[source]
    configured = sender.secrets(settings)
    if configured:
        return configured[0]
    # The dev server keeps generated secrets here; emit reads them, it never creates them.
    dev = dev_secrets.read_env_file(dev_secrets.DEV_SECRETS_FILE)
    value = dev.get(sender.secrets_env, "")
    return value.split(",")[-1].strip() or None


def freshen(source: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A fresh id, timestamp and nonce, so each emit is a new event."""
    return SENDERS[source].freshen(payload, now)


def signed_request(source: str, payload: dict[str, Any], secret: str, now: int) -> tuple[bytes, dict[str, str]]:
    body = dumps(payload)
    headers = {"Content-Type": "application/json"}
    headers.update(SENDERS[source].sign(body, secret, ts=now, payload=payload))
    return body, headers


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def cmd_emit(args: argparse.Namespace) -> int:
    settings = config.load(serving=False)
    if args.what == "golden-path":
        source = "m3"
        payload = json.loads(resources.files("relay.demo").joinpath("panic_ui.json").read_text(encoding="utf-8"))
    else:
        source = args.what
        if not args.file:
            return _fail(f"emit {source} needs a FILE.json")
        try:
            payload = json.loads(Path(args.file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read {args.file}: {exc}")
        if not isinstance(payload, dict):
            return _fail(f"{args.file} must hold one JSON object")
    secret = _secret_for(settings, source)
    if not secret:
        name = SENDERS[source].secrets_env
        return _fail(
            f"{name} is not set (and no {dev_secrets.DEV_SECRETS_FILE} here); set it or run from the dev server's directory"
        )
    base = default_base_url(settings)
    url = args.url or f"{base}/hooks/{source}"
    if not args.as_is:
        payload = freshen(source, payload, datetime.now(UTC))
    body, headers = signed_request(source, payload, secret, int(time.time()))
    try:
        status, answer = asyncio.run(_post(url, body, headers))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _fail(f"could not reach {url}: {exc or type(exc).__name__}; is the relay running (make run)?")
    print(f"POST {url} -> {status}")
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    if isinstance(answer, dict) and answer.get("status_url"):
        origin = url.split("/hooks/")[0] if "/hooks/" in url else base
        print(f"\nstatus: {origin}{answer['status_url']}")
    return 0 if status < 400 else 1
