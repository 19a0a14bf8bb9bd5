"""`care-relay serve`: open the database, then run the relay until interrupted."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from relay import config, dev_secrets, logs
from relay.app import create_app
from relay.cli.db import upgrade
from relay.cli.dev import forget_address, forget_console_link, remember_address, remember_console_link
from relay.cli.problems import DATABASE_ERRORS, CliError, database_problem, listen_problem, safe_url
from relay.keys import DIRECTORY
from relay.settings import Settings
from relay.web import server
from relay.web.console import ONE_TIME, SIGN_IN


def cmd_serve(args: argparse.Namespace) -> int:
    settings = config.load(dev=args.dev)
    host = args.host or settings.relay_host
    port = args.port or settings.relay_port
    # without RELAY_PUBLIC_BASE_URL (dev), links follow the address actually listened on
    settings = settings.model_copy(update={"relay_host": host, "relay_port": port})
    # one format for the relay's lines and the libraries' (drivers and SDKs held back: relay/logs.py)
    logs.configure(settings.relay_log_format, settings.relay_log_level)
    # Open and migrate the database first, so that a bad RELAY_DATABASE_URL is one clear line
    # (the app's own start-up then finds nothing to migrate).
    asyncio.run(upgrade(settings))
    app = create_app(settings)
    if args.dev:
        app.on_startup.append(_seed_demo)
    # on_startup runs the storage (cleanup_ctx) first, then the handler above, then this:
    # a failure before it is the database's, one after it is the listening socket's.
    started = False
    console_link: list[str] = []  # the banner's one-time sign-in link, once printed

    async def mark_started(_app: web.Application) -> None:
        nonlocal started
        started = True

    app.on_startup.append(mark_started)
    listen_url = settings.model_copy(update={"relay_public_base_url": None}).public_base_url
    try:
        # the banner prints once the socket listens, so a failure to bind is not announced as a start
        banner = (
            (lambda: console_link.append(_announce_dev(app, settings, host, port, listen_url))) if args.dev else None
        )
        server.run(app, host, port, on_listening=banner)
    except DATABASE_ERRORS as exc:
        if not started:
            raise CliError(database_problem(settings.relay_database_url, exc)) from None
        if isinstance(exc, (OSError, OverflowError)):
            raise CliError(listen_problem(host, port, exc)) from None
        raise
    finally:
        if args.dev:
            forget_address(listen_url)
            for link in console_link:
                forget_console_link(link)
    return 0


def _announce_dev(app: web.Application, settings: Settings, host: str, port: int, listen_url: str) -> str:
    """The banner, and the listen address kept for `emit` in another terminal (which saw no --port),
    and the console's one-time sign-in link beside it."""
    remember_address(listen_url)
    sign_in = f"{settings.public_base_url}{SIGN_IN}?once={app[ONE_TIME].issue()}"
    remember_console_link(sign_in)
    _print_dev_banner(settings, host, port, sign_in)
    return sign_in


async def _seed_demo(app: web.Application) -> None:
    if await app[DIRECTORY].seed_demo():
        print(
            "dev mode: the directory was empty; seeded agent 'ana' (console, group care-circle)"
            " and a grant for actor:raz (panic.ui, status.set -> care-circle)",
            flush=True,
        )


def _print_dev_banner(settings: Settings, host: str, port: int, sign_in: str) -> None:
    print(
        "\n".join(
            [
                f"care-relay (dev) listening on http://{host}:{port}",
                f"  database:     {safe_url(settings.relay_database_url)}",
                f"  dev secrets:  {dev_secrets.DEV_SECRETS_FILE.resolve()} (0600)",
                "  channels:     " + ", ".join(sorted(settings.configured_channels)),
                "",
                "Next, in a second terminal (same directory):",
                "  .venv/bin/care-relay emit golden-path",
                "The invitation for Ana is then printed here, with its action link",
                f"({settings.public_base_url}/a/…): open it in a browser to answer or close the loop.",
                "emit prints the status URL, which shows the ack and the done.",
                "",
                "The console (loops, agents, consent, deliveries, audit): this link signs you in once, as admin:",
                f"  {sign_in}",
                "(after that, sign in with RELAY_ADMIN_TOKENS from the dev secrets file).",
                "",
            ]
        ),
        flush=True,
    )
