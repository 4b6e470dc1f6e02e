"""A throwaway PostgreSQL server for the tests: initdb in a temporary directory, loopback only,
a password, stopped at the end. Uses Debian's server binaries (postgresql-15), run as the
``postgres`` user when the tests run as root (the server refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "hptune"
PASSWORD = "s3cret-Pw-4-tests"


def find_bindir() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``with PostgresServer() as url:`` a ``postgresql://`` URL with a password."""

    def __init__(self) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="hptune-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def __enter__(self) -> str:
        self.root.chmod(0o777)
        password_file = self.root / "pw"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o644)
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
                  "--auth=scram-sha-256", "-E", "UTF8")  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "server.log"), "-w", "start")  # fmt: skip
        self.url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        return self.url

    def create_database(self, name: str) -> str:
        """A fresh database on the server; its URL."""
        import sqlalchemy

        from hptune.storage import driver_url  # psycopg 3, under SQLAlchemy 2.0 too

        engine = sqlalchemy.create_engine(driver_url(self.url), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def __exit__(self, *exc: object) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
