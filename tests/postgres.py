"""A throwaway PostgreSQL server for the store's tests, started from Debian's binaries.

The server lives for the test session (about two seconds to start): a fresh cluster in a
temporary folder, listening on 127.0.0.1 on a free port with its unix socket in that folder,
fsync off because nothing in it needs to survive. Each test gets its own database, dropped
afterwards, so tests never see each other's rows.

PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres`` user
(created by the Debian package) and every server command runs as that user.

Without the binaries (``apt-get install postgresql``) the PostgreSQL cases are skipped with a
reason, except under ``CI=true``, where a missing server is an error: CI must test both.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int
    run_as: dict[str, Any]
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def run(self, tool: str, *args: str, timeout: float = 60) -> str:
        """Run one of the server's programs as the cluster's owner; its output on failure."""
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
            check=False,
            **self.run_as,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def client(self, tool: str, *args: str) -> str:
        return self.run(tool, "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, *args)

    def create_database(self) -> str:
        """A new empty database; returns its ``postgresql://`` URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.client("createdb", name)
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        self.client("dropdb", "--force", "--if-exists", url.rsplit("/", 1)[1])

    def restart(self) -> None:
        """Stop the server (fast: every connection is cut) and start it again with the same
        options, as an operator's restart or a failover would."""
        self.run("pg_ctl", "-D", "data", "-l", "server.log", "-m", "fast", "-w", "restart")


def postgres_bin_dir() -> Path | None:
    """The newest installed server's bin folder, if any."""
    found = [Path(p) for p in glob.glob(BIN_GLOB) if (Path(p) / "pg_ctl").exists()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def _run_as() -> dict[str, Any]:
    """subprocess options that drop root to the postgres user; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        owner = pwd.getpwnam("nobody")
    return {
        "user": owner.pw_uid,
        "group": owner.pw_gid,
        "extra_groups": [],
        "env": {**os.environ, "HOME": owner.pw_dir},
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires the PostgreSQL tests to run", pytrace=False)
    pytest.skip(f"{reason} (apt-get install postgresql, or run .ci/run)")


class PostgresMissing(RuntimeError):
    """No server binaries, or the server would not start."""


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server (benchmarks use it too), stopped and deleted on exit."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise PostgresMissing(f"no PostgreSQL server binaries in {BIN_GLOB}")
    run_as = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="imagine-pg-"))
    (folder / "socket").mkdir()
    if "user" in run_as:
        for path in (folder, folder / "socket"):
            os.chown(path, run_as["user"], run_as["group"])
    server = PostgresServer(bin_dir, folder, _free_port(), run_as)
    try:
        server.run(
            "initdb", "-D", "data", "-U", SUPERUSER, "--auth=trust", "--no-sync",
            "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -k {server.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        server.run("pg_ctl", "-D", "data", "-l", "server.log", "-o", options, "-w", "start")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        log = folder / "server.log"
        detail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise PostgresMissing(f"could not start PostgreSQL: {exc}\n{detail}") from exc
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            server.run("pg_ctl", "-D", "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, stopped and deleted at the end."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_postgres())
        except PostgresMissing as exc:
            _missing(str(exc))
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs twice: on a new SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'bot.db'}"
    return request.getfixturevalue("postgres_url")
