"""The argument parser every `care-relay` command uses: no abbreviations, mistakes named as typed.

argparse alone accepts `--disp` for `--display` (a later option could make it mean something
else) and answers a misspelt required option with "the following arguments are required".
This parser refuses abbreviations and names the option the user typed, with the nearest
option of that command: "unknown option --dispaly; did you mean --display?".
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

_NUMBER = re.compile(r"^-\d+(\.\d*)?$")
#: set on the namespace by the deepest parser that ran (the subcommand the user chose)
CHOSEN = "chosen_parser_"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._seen: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._seen = list(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(self._seen, namespace)
        if not hasattr(parsed, CHOSEN):
            setattr(parsed, CHOSEN, self)
        return parsed, extras

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            chosen: Parser = getattr(parsed, CHOSEN, self)
            chosen.error(chosen.unknown_option() or f"unexpected argument {extras[0]!r}")
        delattr(parsed, CHOSEN)
        return parsed

    def error(self, message: str) -> NoReturn:
        super().error(self.unknown_option() or message)

    def unknown_option(self) -> str | None:
        """The first option this parser was given but does not know, with the nearest it does."""
        known = self._option_string_actions
        takes_value = False
        for arg in self._seen:
            if takes_value:
                takes_value = False
                continue
            if arg == "--":
                return None
            if not arg.startswith("-") or arg == "-" or _NUMBER.match(arg):
                if self._subparsers is not None:
                    return None  # the subcommand: what follows is its own to judge
                continue
            name = arg.split("=", 1)[0]
            action = known.get(name)
            if action is None:
                near = difflib.get_close_matches(name, [o for o in known if o.startswith("--")], n=1)
                hint = f"; did you mean {near[0]}?" if near else f"; see {self.prog} --help"
                return f"unknown option {name}{hint}"
            takes_value = "=" not in arg and action.nargs != 0
        return None
