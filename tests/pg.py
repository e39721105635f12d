"""A real PostgreSQL for the tests: the server at SHUKEI_TEST_POSTGRES_URL (default 127.0.0.1:5432,
user postgres), or a throwaway cluster started from PostgreSQL's binaries when none is running.
Each test gets its own uniquely named database, dropped afterwards.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from urllib.parse import urlsplit, urlunsplit

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_state: dict[str, str | None] = {}


def _reachable(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _throwaway_cluster() -> str | None:
    """initdb + pg_ctl start in a temp folder (as the postgres user when we are root)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = shutil.which("initdb") or (bins[-1] if bins else None)
    if initdb is None:
        return None
    bindir = os.path.dirname(initdb)
    root = tempfile.mkdtemp(prefix="shukei-pg-")
    data = os.path.join(root, "data")
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, initdb, "-D", data, "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            os.path.join(bindir, "pg_ctl"),
            "-D",
            data,
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "start",
            "-l",
            os.path.join(root, "log"),
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*as_user, os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def admin_url() -> str | None:
    """The URL of a reachable server's maintenance database, or None."""
    if "url" not in _state:
        url = os.environ.get("SHUKEI_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)
        _state["url"] = url if _reachable(url) else _throwaway_cluster()
    return _state["url"]


def with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + db, parts.query, parts.fragment))


def create_database() -> str:
    import psycopg

    admin = admin_url()
    assert admin is not None
    name = "shukei_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return with_db(admin, name)


def drop_database(url: str) -> None:
    import psycopg

    admin = admin_url()
    assert admin is not None
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("shukei_test_")
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
