"""The `[CARE_AUDIT] {json}` stdout line: one per decision, answer and refusal.

Operators ship stdout to their log store; these lines carry ids, statuses, origins and
gate names only: never a whisper, a name, a note or a phone number.
"""

from __future__ import annotations

import json
import sys
from typing import Any

_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # built once, not per line


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write("[CARE_AUDIT] " + _ENCODER.encode(record) + "\n")
