"""The layout rules of STYLE.md, held on every run.

No product module over 400 lines: a module that grows past this is doing two jobs; split
it where the jobs part (migrations are history, not code anyone reads for the design, and
are left out). And every module of `relay` has its place in the layers `make check` holds
(`.importlinter`): one it does not name escapes the dependency rule unnoticed.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400
PACKAGES = ("relay", "receivers", "inbox")


def _modules() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.relative_to(ROOT).parts
    )


def test_the_packages_are_found() -> None:
    assert len(_modules()) > 50


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_the_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= LIMIT, f"{path.relative_to(ROOT)} has {lines} lines: split it where its jobs part"


def _layered() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter", encoding="utf-8")
    layers = config["importlinter:contract:layers"]["layers"]
    return {name.strip() for line in layers.splitlines() for name in line.replace("|", ":").split(":") if name.strip()}


def test_every_relay_module_has_a_layer() -> None:
    named = _layered()
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "relay").glob("*.py")
        if path.name != "__init__.py"
    } | {f"relay.{p.name}" for p in (ROOT / "relay").iterdir() if (p / "__init__.py").exists()}
    # relay.demo holds the demo's payload files, imported by the command line only
    unplaced = sorted(m for m in modules - named if m != "relay.demo")
    assert not unplaced, f"not in a layer of .importlinter: {', '.join(unplaced)}"
