"""The database, its -wal and -shm, the dev secrets and their folder are readable by their owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support import clean_env, dev_server, run_cli

#: A process that writes in WAL mode and dies without closing leaves -wal and -shm behind.
CRASH_AFTER_WRITE = (
    "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL');"
    " c.execute('PRAGMA user_version=7'); os._exit(0)"
)
PRIVATE_FILES = ("care-relay.db", "care-relay.db-wal", "care-relay.db-shm", "dev-secrets.env")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_db_upgrade_creates_the_folder_0700_and_the_database_0600(tmp_path: Path) -> None:
    """`db upgrade` on the default URL creates var/ 0700 and var/care-relay.db 0600."""
    done = run_cli(clean_env(), tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "care-relay.db") == 0o600


def test_folders_made_for_a_database_url_are_0700(tmp_path: Path) -> None:
    """Every folder the relay makes on the way to RELAY_DATABASE_URL's file is 0700."""
    url = f"sqlite+aiosqlite:///{tmp_path}/data/relay/relay.db"
    done = run_cli(clean_env(RELAY_DATABASE_URL=url), tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "data") == 0o700 and mode(tmp_path / "data" / "relay") == 0o700
    assert mode(tmp_path / "data" / "relay" / "relay.db") == 0o600


def test_running_dev_server_keeps_database_wal_shm_and_secrets_0600(tmp_path: Path) -> None:
    """While `serve --dev` runs, the database, -wal, -shm and dev secrets are 0600 and var/ 0700."""
    with dev_server(clean_env(), tmp_path):
        var = tmp_path / "var"
        assert mode(var) == 0o700
        assert {name: oct(mode(var / name)) for name in PRIVATE_FILES} == dict.fromkeys(PRIVATE_FILES, "0o600")


def test_start_tightens_files_an_older_version_left_readable(tmp_path: Path) -> None:
    """A database, -wal and -shm left 0644 (an older version that crashed) are 0600 once the relay starts."""
    assert run_cli(clean_env(), tmp_path, "db", "upgrade").returncode == 0
    var = tmp_path / "var"
    database = var / "care-relay.db"
    subprocess.run([sys.executable, "-c", CRASH_AFTER_WRITE, str(database)], check=True, timeout=60)
    for name in PRIVATE_FILES[:3]:
        os.chmod(var / name, 0o644)
    with dev_server(clean_env(), tmp_path):
        assert {name: oct(mode(var / name)) for name in PRIVATE_FILES} == dict.fromkeys(PRIVATE_FILES, "0o600")
