"""Files that hold care data or secrets, readable by their owner only.

The database and the dev secrets are created 0600, in folders the relay makes 0700. A file
an older version left readable by others is tightened when the relay opens it. Folders
that already exist keep their mode: they may be shared (/tmp, a home, a volume).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

#: group and other: what a private file or folder never grants.
OTHERS = 0o077


def private_dir(path: Path) -> None:
    """Create `path` and any missing parents, each 0700; an existing folder is left as it is."""
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        # another process (a second replica starting) may make it first: theirs is 0700 too
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 if it is missing, else take group and other bits off it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        tighten(path)


def tighten(path: Path) -> None:
    """Take group and other bits off an existing file; a missing one is fine."""
    # PermissionError: a file someone else owns is not ours to change; opening it says the rest
    with contextlib.suppress(FileNotFoundError, PermissionError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & OTHERS:
            os.chmod(path, mode & ~OTHERS)
