"""Signed tokens: rotation, tampering, and one purpose never opening another."""

from __future__ import annotations

from relay.tokens import Tokens


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
