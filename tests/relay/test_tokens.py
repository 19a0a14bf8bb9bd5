"""Signed tokens: rotation, tampering, and one purpose never opening another."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from relay.errors import ForbiddenError, LinkExpiredError
from relay.tokens import ACTION_SALT, CLOCK_SKEW_SEC, CONSENT_SALT, Tokens
from relay.web.form import TOKEN_MAX_CHARS


def test_status_token_survives_key_rotation_and_refuses_tampering() -> None:
    """A status token signed before a new key was added still opens; a changed one does not."""
    before = Tokens(("key-2025",), 600)
    token = before.status_token("aisha", "8d6f2b1e-4c3a-4f7e-9a10-2b5c6d7e8f90")
    after = Tokens(("key-2025", "key-2026"), 600)
    assert after.read_status_token(token) == ("aisha", "8d6f2b1e-4c3a-4f7e-9a10-2b5c6d7e8f90")
    assert after.read_status_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert Tokens(("key-2026",), 600).read_status_token(token) is None
    assert after.status_token("m3", "x") != before.status_token("m3", "x")  # the newest key signs


def test_status_and_action_tokens_do_not_open_each_other() -> None:
    """Each purpose has its own salt: an action link is not a status token, nor the reverse."""
    tokens = Tokens(("k",), 600)
    assert tokens.read_status_token(tokens.action_token(7)) is None
    import pytest

    from relay.errors import ForbiddenError

    with pytest.raises(ForbiddenError):
        tokens.read_action_token(tokens.status_token("m3", "evt_1"))


def test_links_issued_by_the_stock_serializer_still_open() -> None:
    """Action links and consent pages are made without itsdangerous' zlib try; a token made
    with it (compressed when that is shorter: a leading ".") still opens, after a rotation too."""
    old, new = "an-older-secret-0123456789", "the-newest-secret-0123456789"
    tokens = Tokens((old, new), link_max_age_sec=3600)
    stock_action = URLSafeTimedSerializer([old, new], salt=ACTION_SALT)
    stock_consent = URLSafeTimedSerializer([old], salt=CONSENT_SALT)
    long_event = "evt_" + "a" * 200  # long and repetitive: the stock serializer compresses it
    compressed = stock_consent.dumps({"s": "m3", "e": long_event})
    assert compressed.startswith(".")
    assert tokens.read_consent_token(compressed) == ("m3", long_event)
    assert tokens.read_action_token(stock_action.dumps({"i": 42})) == 42
    assert tokens.read_consent_token(tokens.consent_token("m3", long_event, time.time())) == ("m3", long_event)
    assert tokens.read_action_token(tokens.action_token(2**40)) == 2**40


def test_small_tokens_are_what_the_stock_serializer_makes() -> None:
    """Nothing a sender or an agent holds changes form: for an ordinary invitation id the stock
    serializer's compression does not win, so both make the same payload part."""
    tokens = Tokens(("the-newest-secret-0123456789",), link_max_age_sec=3600)
    stock = URLSafeTimedSerializer(["the-newest-secret-0123456789"], salt=ACTION_SALT)
    ours, theirs = tokens.action_token(123456), stock.dumps({"i": 123456})
    assert ours.split(".")[0] == theirs.split(".")[0]  # the payload part


def test_a_long_event_ids_consent_token_stays_under_the_pages_cap() -> None:
    """A payload past the small size is compressed when that is shorter, as before: a 200-character
    event id that repeats itself still makes a consent link the page accepts."""
    tokens = Tokens(("the-newest-secret-0123456789",), link_max_age_sec=3600)
    event = "ёлка-" * 40
    token = tokens.consent_token("m3", event, time.time())
    assert len(token) <= TOKEN_MAX_CHARS
    assert tokens.read_consent_token(token) == ("m3", event)


def test_a_consent_link_is_the_signals_own_and_ages_on_the_relays_clock() -> None:
    """A consent token is stamped with its signal's arrival, not with the moment it is made: the
    202's link and a later status read's are one link. Its age, like an action link's, is read on
    the relay's clock: it opens until RELAY_LINK_MAX_AGE_SEC after the signal, then answers 410."""
    now = [1_790_000_000.0]
    tokens = Tokens(("the-newest-secret-0123456789",), link_max_age_sec=3600, clock=lambda: now[0])
    received = now[0] - 5.25
    first = tokens.consent_token("m3", "evt_1", received)
    now[0] += 7
    assert tokens.consent_token("m3", "evt_1", received) == first
    assert tokens.consent_token("m3", "evt_1", received + 1) != first
    stock = URLSafeTimedSerializer(["the-newest-secret-0123456789"], salt=CONSENT_SALT)
    assert stock.loads(first, return_timestamp=True)[1].timestamp() == int(received)  # itsdangerous' own format
    action = tokens.action_token(9)
    now[0] = received + 3600
    assert tokens.read_consent_token(first) == ("m3", "evt_1") and tokens.read_action_token(action) == 9
    now[0] = received + 3602
    with pytest.raises(LinkExpiredError):
        tokens.read_consent_token(first)
    now[0] += 3600 + 2
    with pytest.raises(LinkExpiredError):
        tokens.read_action_token(action)


def test_a_link_stamped_a_little_ahead_of_this_relays_clock_opens() -> None:
    """Replicas' clocks differ: a link another relay stamped up to CLOCK_SKEW_SEC ahead of this
    one's clock opens; one stamped further ahead is refused as expired, as is a tampered one as
    not valid. A signal stored with a time before 1970 still gets a link, not an error."""
    now = [1_790_000_000.0]
    ahead = Tokens(("the-newest-secret-0123456789",), link_max_age_sec=3600, clock=lambda: now[0] + CLOCK_SKEW_SEC)
    here = Tokens(("the-newest-secret-0123456789",), link_max_age_sec=3600, clock=lambda: now[0])
    assert here.read_action_token(ahead.action_token(5)) == 5
    assert here.read_consent_token(ahead.consent_token("m3", "evt_2", now[0] + CLOCK_SKEW_SEC)) == ("m3", "evt_2")
    too_far = Tokens(("the-newest-secret-0123456789",), 3600, clock=lambda: now[0] + CLOCK_SKEW_SEC + 2)
    with pytest.raises(LinkExpiredError):
        here.read_action_token(too_far.action_token(5))
    token = ahead.action_token(5)
    with pytest.raises(ForbiddenError):
        here.read_action_token(token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"))
    old = here.consent_token("m3", "evt_3", -5.0)
    assert not here.consent_open(-5.0)
    with pytest.raises(LinkExpiredError):
        here.read_consent_token(old)
