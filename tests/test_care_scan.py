"""The care-data search itself (tests/leaks.py, tests/care_scan.py) finds what it must and only that."""

from __future__ import annotations

import logging

from tests.care_scan import _Finds, _Scanner
from tests.leaks import leaks
from tests.support import fixture

WHISPER = fixture("m3", "panic.ui__golden")["intent"]["whisper"]


def test_finds_whispers_names_and_numbers() -> None:
    """A whisper (whole or cut), a display name, a full number with or without its plus are found."""
    assert leaks(f"said: {WHISPER}")
    assert leaks(f'"{WHISPER[:22]}…"')
    assert leaks("invited Ana on slack")
    assert leaks("from +40722000111") and leaks("to 40722000111")
    assert leaks('{"note": "low energy"}')


def test_ids_and_redacted_numbers_are_not_care_data() -> None:
    """Agent ids, words that merely contain a name, and redacted numbers pass."""
    assert leaks("agent=ana via=sms from +40…0111 Analyzed Bobcat outbox") == []
    assert leaks("Context impl SQLiteImpl.") == []


def test_the_session_scanner_reads_formatted_records() -> None:
    """A record is searched as the relay's JSON line, its request fields included; the tests' own loggers are not."""
    finds = _Finds(test="t")
    scanner = _Scanner(finds)
    make = logging.getLogger("care_relay.request").makeRecord
    scanner.handle(
        make(
            "care_relay.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None, extra={"event_id": "+40722000333"}
        )
    )
    scanner.handle(make("tests.fakes", logging.INFO, __file__, 1, WHISPER, (), None))
    scanner.handle(make("care_relay.http", logging.INFO, __file__, 1, "nothing here", (), None))
    assert {f.split(": ")[1] for f in finds.found} == {"log care_relay.request"}
    assert finds.records == 2
