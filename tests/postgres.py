"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``, or
``initdb`` on ``PATH``). PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` OS user; otherwise as the current user. The data directory, the unix socket and the
log live in one temporary folder that :meth:`PostgresCluster.stop` deletes.

    with PostgresCluster() as pg:
        url = pg.url            # postgresql://postgres@127.0.0.1:PORT/ssc_nas
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresCluster", "PostgresUnavailable", "find_bin_dir"]


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the OS user to run them as root) are missing."""


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb``/``pg_ctl``/``postgres``, newest version first."""
    env = os.environ.get("SSC_NAS_PG_BIN")
    candidates = [env] if env else []

    def version(path: str) -> int:
        with contextlib.suppress(ValueError):
            return int(Path(path).parent.parent.name)
        return 0

    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: -version(p + "/x"))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if folder and all((Path(folder) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """initdb + pg_ctl start on a free port; :meth:`stop` stops it and deletes every file."""

    def __init__(self, database: str = "ssc_nas", port: int | None = None,
                 durable: bool = False) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bin = bin_dir
        self.database = database
        self.port = port or _free_port()
        self.durable = durable  # False: fsync off, for tests; True: the server's defaults
        self.root: Path | None = None
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root, but there is no 'postgres' OS user "
                                          "to run the server as") from None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # The server must not inherit our cwd if postgres cannot read it (e.g. /root).
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120,
                              cwd=str(self.root or "/"))

    def start(self) -> PostgresCluster:
        self.root = Path(tempfile.mkdtemp(prefix="ssc-nas-pg-"))
        if self._as_postgres:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        data, log = self.root / "data", self.root / "server.log"
        try:
            self._run(self.bin / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C", *([] if self.durable else ["--no-sync"]))
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                       f"-c unix_socket_directories={self.root} -c max_connections=200")
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._run(self.bin / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w",
                      "-t", "60", "start")
            self._run(self.bin / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                      "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c",
                      f'CREATE DATABASE "{self.database}"')
        except subprocess.CalledProcessError as exc:
            text = (exc.stdout or "") + (exc.stderr or "")
            with contextlib.suppress(OSError):
                text += log.read_text()
            self.stop()
            raise RuntimeError(f"cannot start PostgreSQL: {' '.join(exc.cmd)}:\n{text}") from None
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._run(self.bin / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port),
                          check=False)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not become ready")

    def stop(self) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
