"""A pytest plugin: nothing the relay logs or audits, in any test of the session, carries care data.

Every log record (the relay's, and the libraries' it runs: aiohttp, Alembic, SQLAlchemy, the
SDKs), formatted as the relay formats it in production (relay/logs.py, JSON), and every
`[CARE_AUDIT]` line a test left in its captured stdout, is searched for the fixtures'
whispers, notes, display names and the tests' full phone numbers (tests/leaks.py). The
loggers are set up as `care-relay serve` sets them, at INFO. A find fails the session and
names the test, the logger and what leaked.

Not searched: what the console channel and the CLI print on purpose for a person (an
invitation's words, an agent list), and what a test read out of capsys itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from relay import logs
from tests.leaks import leaks


@dataclass
class _Finds:
    test: str = "(collection)"
    found: list[str] = field(default_factory=list)
    records: int = 0
    audit_lines: int = 0
    #: tests at whose start the logging had been changed (and was set up again)
    reset: list[str] = field(default_factory=list)

    def check(self, where: str, text: str) -> None:
        for what in leaks(text):
            self.found.append(f"{self.test}: {where}: {what}")


class _Scanner(logging.Handler):
    """Formats each record as the relay's JSON line and searches it."""

    def __init__(self, finds: _Finds) -> None:
        super().__init__(logging.DEBUG)
        self.finds = finds
        self.setFormatter(logs.JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("tests"):  # the fakes' and tests' own lines
            return
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is searched as it came
            line = f"{record.msg!r} {record.args!r}"
        self.finds.records += 1
        self.finds.check(f"log {record.name}", line)


_FINDS = _Finds()
_SCANNER = _Scanner(_FINDS)


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    if _SCANNER not in root.handlers:
        root.addHandler(_SCANNER)
    root.setLevel(logging.INFO)
    logs.quiet_libraries(logging.INFO)


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _FINDS.test = nodeid
    root = logging.getLogger()
    if _SCANNER not in root.handlers or root.level != logging.INFO:  # a test before this one changed them
        _FINDS.reset.append(nodeid)
        pytest_sessionstart(None)  # type: ignore[arg-type]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, text in report.sections:
        if "stdout" in title:
            for line in text.splitlines():
                if line.startswith("[CARE_AUDIT] "):
                    _FINDS.audit_lines += 1
                    _FINDS.check("audit line", line)
        elif "stderr" in title:
            _FINDS.check("stderr", text)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    searched = f"{_FINDS.records} log records and {_FINDS.audit_lines} audit lines searched for care data"
    if _FINDS.reset:
        shown = ", ".join(_FINDS.reset[:3])
        searched += f"; logging set up again before {len(_FINDS.reset)} test(s) ({shown})"
    if not _FINDS.found:
        terminalreporter.write_line(f"care scan: {searched}: none found")
        return
    terminalreporter.section("care data in logs or audit lines", red=True)
    for line in dict.fromkeys(_FINDS.found):
        terminalreporter.write_line(line)
    terminalreporter.write_line(searched)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_SCANNER)
    if _FINDS.found and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
