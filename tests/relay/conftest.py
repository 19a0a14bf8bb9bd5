"""Fixtures the human paths' tests share (tests/relay/test_human_paths*.py)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.app import create_app
from tests.conftest import Clock
from tests.driver import Relay
from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.relay.test_human_paths import GRANT, PUBLIC, SECRET, SMS_FROM, Begin
from tests.support import make_settings


@pytest.fixture
def begin(aiohttp_client: Any, database_url: str, clock: Clock, slack: FakeSlack, twilio: FakeTwilio) -> Begin:
    """The real app on the fake Slack and the fake Twilio, outbox driven by hand; agents and GRANT seeded."""

    async def run(*agents: dict[str, Any], **overrides: Any) -> Relay:
        settings = make_settings(
            database_url,
            slack_bot_token=DEFAULT_TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_sms_from=SMS_FROM,
            twilio_api_base_url=twilio.base_url,
            relay_public_base_url=PUBLIC,
            **overrides,
        )
        relay = Relay(await aiohttp_client(create_app(settings, clock=clock, run_outbox=False)))
        await relay.seed(GRANT, agents=list(agents))
        return relay

    return run
