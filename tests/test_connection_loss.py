"""Connection loss, frozen networks, server crashes and signals (issue 10, items 5 and 6).

Every test runs the real CLI against a real server and cuts it off mid-run: the backend
terminated from another session, a TCP proxy that stops forwarding without closing, a private
server stopped with ``pg_ctl stop -m immediate``, SIGTERM during a VALIDATE that scans slowly.
What must hold: one clear error (what was running, that re-running resumes), no traceback, a
documented exit code (5 lost connection, 143 SIGTERM), the version ``interrupted`` in
``dbdeploy status``, the event in the history, no orphaned server work holding the deployment
lock or a table lock, and a re-run whose result equals an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.executor_support import make_project, write_spec

# Fast form in the default suite: every 2nd test plus CI_KEEP (the inputs);
# DBDEPLOY_FULL=1 runs every test (tests/conftest.py, README "Testing").
CI_FAST_FORM = 2
CI_KEEP = (
    "test_frozen_proxy_is_detected_and_the_server_releases_the_lock",
    "test_backend_terminated_mid_backfill_is_one_line_interrupted_and_resumes",
    "test_sigterm_cancels_the_validate_on_the_server",
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")

BACKFILL_SPEC = '''
from dbdeploy import AddColumn, Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="readings", operations=[CreateTable(
    table="public.readings", columns=[Column(name="id", type="bigint"), Column(name="value", type="integer")],
    primary_key=["id"])])
second = Migration(version="002", name="readings_scaled", operations=[
    AddColumn(table="public.readings", column=Column(name="scaled", type="bigint")),
    Backfill(table="public.readings", set={"scaled": "value * 10"}, where="scaled IS NULL", batch_size=1000)])
'''
ROWS = 200_000
PROGRESS = "dbdeploy_backup.v002_op2_readings_progress"

# A CHECK whose function is slow (declared IMMUTABLE, so nothing can tell from its signature):
# VALIDATE scans every row through it.
SLOW_CHECK_SPEC = '''
from dbdeploy import AddCheck, Check, Column, CreateTable, Migration, RawSQL
first = Migration(version="001", name="gauges", operations=[
    CreateTable(table="public.gauges", columns=[Column(name="id", type="bigint"), Column(name="level", type="integer")],
                primary_key=["id"]),
    RawSQL(forward="""CREATE FUNCTION public.slow_positive(integer) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
AS $fn$ BEGIN PERFORM pg_catalog.pg_sleep(0.01); RETURN $1 > 0; END $fn$;""",
           rollback="DROP FUNCTION public.slow_positive(integer);")])
second = Migration(version="002", name="gauges_positive", operations=[
    AddCheck(table="public.gauges",
             check=Check(name="gauges_level_positive", expression="public.slow_positive(level)"))])
'''
SLOW_ROWS = 3000   # about 30 s of VALIDATE: far longer than any test waits for it


def _backfill_project(tmp_path: Path, dsn: str, extra: str = "") -> object:
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_readings.py", BACKFILL_SPEC)
    return make_project(tmp_path / "project", dsn, specs=specs, extra_env=extra)


def _with_network_timeout(project, value: str) -> None:
    toml = project.root / "dbdeploy.toml"
    toml.write_text(toml.read_text().replace("[environments.test]\n",
                                             f'[environments.test]\nnetwork_timeout = "{value}"\n'))


def _fill(conn: psycopg.Connection, rows: int = ROWS) -> None:
    conn.execute(f"INSERT INTO public.readings SELECT g, g % 1000 FROM generate_series(1, {rows}) g")
    conn.execute("ANALYZE public.readings")


def _wait_for_batches(conn: psycopg.Connection, run: subprocess.Popen, batches: int = 20) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        if conn.execute("SELECT to_regclass(%s)", [PROGRESS]).fetchone()[0]:
            done = conn.execute(f"SELECT dbdeploy_batches_done FROM {PROGRESS}").fetchone()[0]
            if done >= batches:
                return done
        time.sleep(0.02)
    raise AssertionError("the backfill did not get going")


def _assert_one_clear_error(result_stderr: str, *needles: str) -> None:
    assert "Traceback" not in result_stderr, result_stderr
    errors = [line for line in result_stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result_stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def _status(project, env: str = "test") -> dict[str, str]:
    result = project.run("status", "--env", env, "--json")
    assert result.returncode == 0, result.stderr
    return {row["version"]: row["state"] for row in json.loads(result.stdout)}


def _events(conn: psycopg.Connection, version: str) -> list[tuple]:
    return conn.execute("SELECT event, error, details FROM migrations.migration_events WHERE version = %s"
                        " ORDER BY id", [version]).fetchall()


def _table_state(conn: psycopg.Connection) -> tuple:
    """What an uninterrupted run leaves: every row's values, the cursor table's totals, the log."""
    rows = conn.execute("SELECT md5(string_agg(format('%s:%s:%s', id, value, scaled), ',' ORDER BY id)), count(*)"
                        " FROM public.readings").fetchone()
    cursor = conn.execute(f"SELECT dbdeploy_batches_done, dbdeploy_rows_done FROM {PROGRESS}").fetchone()
    log = conn.execute("SELECT version, status FROM migrations.migration_log ORDER BY version").fetchall()
    return rows, cursor, log


def _expected_state(conn: psycopg.Connection) -> tuple:
    expected = conn.execute(
        "SELECT md5(string_agg(format('%s:%s:%s', g, g % 1000, (g % 1000) * 10), ',' ORDER BY g)), count(*)"
        f" FROM generate_series(1, {ROWS}) g").fetchone()
    return expected, (ROWS // 1000, ROWS), [("001", "completed"), ("002", "completed")]


def _deploy_lock_holders(conn: psycopg.Connection) -> int:
    from dbdeploy.executor.lock import lock_key

    return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database ="
                        " (SELECT oid FROM pg_database WHERE datname = current_database())"
                        " AND ((classid::bigint << 32) | objid::bigint) = %s", [lock_key("migrations")]).fetchone()[0]


# --------------------------------------------------------------------------- a freezing proxy


class FreezingProxy:
    """A TCP proxy on a loopback port that forwards to ``upstream`` until :meth:`freeze`; then it
    forwards nothing in either direction and accepts new connections without forwarding them —
    every socket stays open, so the peers' kernels keep acknowledging (as a hung load balancer
    or a stalled NAT does). :meth:`close` closes everything."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue          # held open, never forwarded
            server = socket.create_connection(self.upstream)
            self.sockets.append(server)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while not self.closed.is_set():
            if self.frozen.is_set():
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready or self.frozen.is_set():
                    continue
                data = source.recv(65536)
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def _through(proxy: FreezingProxy, dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    params.update(host="127.0.0.1", port=str(proxy.port))
    params.pop("hostaddr", None)
    return make_conninfo(**params)


# --------------------------------------------------------------------------- a private server


class PrivateServer:
    """A PostgreSQL 15 of the test's own (initdb, pg_ctl) on a free loopback port, so it can be
    crashed (``pg_ctl stop -m immediate``) without touching the shared servers."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dbdnet-", dir="/tmp"))
        self.data = self.root / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        as_postgres = os.geteuid() == 0
        if as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._prefix = ["runuser", "-u", "postgres", "--"] if as_postgres else []
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, *args: str) -> None:
        subprocess.run([*self._prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off", "start")

    def crash(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(host="127.0.0.1", port=str(self.port), user="postgres", dbname=dbname)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_server():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("needs PostgreSQL 15's initdb/pg_ctl in /usr/lib/postgresql/15/bin")
    server = PrivateServer()
    try:
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- the tests


def test_backend_terminated_mid_backfill_is_one_line_interrupted_and_resumes(fresh_db, tmp_path) -> None:
    project = _backfill_project(tmp_path, fresh_db.dsn)
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    watcher = fresh_db.connect()
    _fill(watcher)

    run = project.start("apply", "--env", "test", "--plain")
    _wait_for_batches(watcher, run)
    killed = watcher.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                             " WHERE application_name = 'dbdeploy' AND datname = current_database()").fetchone()[0]
    assert killed == 1
    _out, err = run.communicate(timeout=120)
    assert run.returncode == 5, err
    _assert_one_clear_error(err, "lost the connection", "V002 step 3/3 (backfill public.readings)",
                            "run `dbdeploy apply --env test` again to resume")
    assert _status(project)["002"] == "interrupted"
    # The run could reach the server again at once, so it recorded the event with the error itself.
    events = _events(watcher, "002")
    assert [e[0] for e in events] == ["interrupted"]
    # libpq reports the server's FATAL when it arrives before the socket closes; on a busy machine
    # the close can come first. Either way the event names the lost connection and the step.
    assert any(text in events[0][1] for text in ("terminating connection", "server closed the connection"))
    assert events[0][2]["step"] == 3

    result = project.run("apply", "--env", "test", "--plain")
    assert result.returncode == 0, result.stderr
    assert _table_state(watcher) == _expected_state(watcher)
    assert [e[0] for e in _events(watcher, "002")] == ["interrupted", "apply"]
    watcher.close()


def test_frozen_proxy_is_detected_and_the_server_releases_the_lock(fresh_db, tmp_path) -> None:
    """The proxy stops forwarding mid-backfill without closing anything: TCP keepalives are
    acknowledged by the proxy's kernel, so only the watchdog (a second connection that cannot get
    through) sees it; the server ends the orphaned session by its idle timeouts."""
    proxy = FreezingProxy(*_host_port(fresh_db.dsn))
    try:
        project = _backfill_project(tmp_path, _through(proxy, fresh_db.dsn))
        _with_network_timeout(project, "3s")
        assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
        watcher = fresh_db.connect()
        _fill(watcher)

        run = project.start("apply", "--env", "test", "--plain")
        _wait_for_batches(watcher, run)
        proxy.freeze()
        _out, err = run.communicate(timeout=90)    # generous: network_timeout is 3 s
        assert run.returncode == 5, err
        _assert_one_clear_error(err, "lost the connection", "V002 step 3/3", "(network_timeout", "again to resume")

        deadline = time.monotonic() + 90
        while _deploy_lock_holders(watcher) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _deploy_lock_holders(watcher) == 0, "the orphaned session still holds the deployment lock"
        assert watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbdeploy'"
                               " AND datname = current_database()").fetchone()[0] == 0
    finally:
        proxy.close()

    direct = make_project(tmp_path / "direct", fresh_db.dsn, specs=tmp_path / "specs_src")
    assert _status(direct)["002"] == "interrupted"
    result = direct.run("apply", "--env", "test", "--plain")
    assert result.returncode == 0, result.stderr
    assert "V002 was interrupted" in result.stderr     # recorded by this run: the frozen one could not
    assert _table_state(watcher) == _expected_state(watcher)
    events = [e[0] for e in _events(watcher, "002")]
    assert events == ["interrupted", "apply"], events
    watcher.close()


def test_proxy_cutting_the_connection_mid_backfill_is_exit_5_and_resumes(fresh_db, tmp_path) -> None:
    """The proxy closes both sides mid-backfill (a network cut that both peers see)."""
    proxy = FreezingProxy(*_host_port(fresh_db.dsn))
    try:
        project = _backfill_project(tmp_path, _through(proxy, fresh_db.dsn))
        assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
        watcher = fresh_db.connect()
        _fill(watcher)
        run = project.start("apply", "--env", "test", "--plain")
        _wait_for_batches(watcher, run)
        proxy.close()
        _out, err = run.communicate(timeout=90)
    finally:
        proxy.close()
    assert run.returncode == 5, err
    _assert_one_clear_error(err, "lost the connection", "V002 step 3/3", "again to resume")
    deadline = time.monotonic() + 60
    while _deploy_lock_holders(watcher) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _deploy_lock_holders(watcher) == 0
    direct = make_project(tmp_path / "direct", fresh_db.dsn, specs=tmp_path / "specs_src")
    assert _status(direct)["002"] == "interrupted"
    result = direct.run("apply", "--env", "test", "--plain")
    assert result.returncode == 0, result.stderr
    assert _table_state(watcher) == _expected_state(watcher)
    assert [e[0] for e in _events(watcher, "002")] == ["interrupted", "apply"]
    watcher.close()


def test_network_and_scan_timeouts_are_validated(tmp_path) -> None:
    project = make_project(tmp_path, None)
    (project.root / "dbdeploy.toml").write_text('[environments.staging]\ndsn = "host=127.0.0.1 port=9 dbname=x"\n'
                                                'network_timeout = "fast"\n')
    result = project.run("status", "--env", "staging")
    assert result.returncode == 2
    assert "environments.staging.network_timeout must look like 5s, 500ms or 2min" in result.stderr
    assert "Traceback" not in result.stderr


def test_server_crash_mid_backfill_then_restart_resumes_to_the_same_result(private_server, tmp_path) -> None:
    admin = private_server.connect()
    admin.execute("CREATE DATABASE crashed")
    admin.execute("CREATE DATABASE reference")
    admin.close()

    reference = _backfill_project(tmp_path / "ref", private_server.dsn("reference"))
    assert reference.run("apply", "--env", "test", "--to", "1").returncode == 0
    with private_server.connect("reference") as conn:
        _fill(conn)
    assert reference.run("apply", "--env", "test").returncode == 0

    project = _backfill_project(tmp_path / "crash", private_server.dsn("crashed"))
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    watcher = private_server.connect("crashed")
    _fill(watcher)
    run = project.start("apply", "--env", "test", "--plain")
    _wait_for_batches(watcher, run)
    watcher.close()
    private_server.crash()
    _out, err = run.communicate(timeout=120)
    assert run.returncode == 5, err
    _assert_one_clear_error(err, "lost the connection", "V002 step 3/3", "again to resume")
    assert "the next run records it" in err

    private_server.start()
    assert _status(project)["002"] == "interrupted"
    result = project.run("apply", "--env", "test", "--plain")
    assert result.returncode == 0, result.stderr
    with private_server.connect("crashed") as crashed, private_server.connect("reference") as ref:
        assert _table_state(crashed) == _table_state(ref) == _expected_state(ref)
        events = _events(crashed, "002")
        assert [e[0] for e in events] == ["interrupted", "apply"]
        assert events[0][2]["step"] is not None


def _slow_check_project(tmp_path: Path, fresh_db, extra: str = "") -> object:
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_gauges.py", SLOW_CHECK_SPEC)
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=specs)
    if extra:
        toml = project.root / "dbdeploy.toml"
        toml.write_text(toml.read_text().replace("[environments.test]\n", f"[environments.test]\n{extra}\n"))
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    fresh_db.execute(f"INSERT INTO public.gauges SELECT g, g FROM generate_series(1, {SLOW_ROWS}) g")
    return project


def _validating(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state = 'active' AND query LIKE '%VALIDATE CONSTRAINT%'"
                        " AND pid <> pg_backend_pid()").fetchone()[0]


def _writers_not_blocked(conn: psycopg.Connection) -> None:
    """A lock that conflicts with VALIDATE's SHARE UPDATE EXCLUSIVE is granted at once, and a write
    goes through: nothing dbdeploy started is still running on the table."""
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '2s'")
        conn.execute("LOCK TABLE public.gauges IN SHARE UPDATE EXCLUSIVE MODE")
    conn.execute("SET lock_timeout = '2s'")
    assert conn.execute("UPDATE public.gauges SET level = level WHERE id = 1").rowcount == 1


def test_sigterm_cancels_the_validate_on_the_server(fresh_db, tmp_path) -> None:
    project = _slow_check_project(tmp_path, fresh_db)
    watcher = fresh_db.connect()
    run = project.start("apply", "--env", "test", "--plain")
    deadline = time.monotonic() + 60
    while not _validating(watcher):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    # While a run holds the deployment lock, its version is running, not interrupted.
    assert _status(project)["002"] == "running"

    run.send_signal(signal.SIGTERM)
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 143, err
    _assert_one_clear_error(err, "stopped by SIGTERM", "V002 step", "cancelled", "again to resume")
    deadline = time.monotonic() + 5
    while _validating(watcher) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _validating(watcher) == 0, "the VALIDATE still runs on the server after dbdeploy stopped"
    _writers_not_blocked(watcher)
    assert _deploy_lock_holders(watcher) == 0
    assert _status(project)["002"] == "interrupted"
    events = _events(watcher, "002")
    assert [e[0] for e in events] == ["interrupted"] and events[0][1] == "stopped by SIGTERM"
    watcher.close()


def test_a_statement_longer_than_network_timeout_is_not_cut(fresh_db, tmp_path) -> None:
    """network_timeout bounds a silent peer, never a statement: a VALIDATE of about 6 s under a
    network_timeout of 2 s completes (the watchdog sees the server working on it)."""
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_gauges.py", SLOW_CHECK_SPEC)
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=specs)
    _with_network_timeout(project, "2s")
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    fresh_db.execute("INSERT INTO public.gauges SELECT g, g FROM generate_series(1, 600) g")
    watcher = fresh_db.connect()
    run = project.start("apply", "--env", "test", "--plain")
    probed = False
    while run.poll() is None:
        probed = probed or watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbdeploy-watchdog'"
            " AND datname = current_database()").fetchone()[0] > 0
        time.sleep(0.05)
    _out, err = run.communicate()
    watcher.close()
    assert run.returncode == 0, err
    # The watchdog's probe is a short connection sampled here every 50 ms: on a busy machine the
    # sampler may miss it, so its absence is not a failure; the statement running past
    # network_timeout to completion (exit 0 above, rows validated below) is what this test proves.
    if not probed:
        print("note: the watchdog's probe was not sampled (busy machine)")
    assert fresh_db.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'gauges_level_positive'") \
        == [(True,)]


def test_scan_timeout_ends_a_runaway_validate_with_the_setting_named(fresh_db, tmp_path) -> None:
    project = _slow_check_project(tmp_path, fresh_db, 'scan_timeout = "1s"')
    result = project.run("apply", "--env", "test", "--plain", timeout=120)
    assert result.returncode == 1, result.stderr
    _assert_one_clear_error(result.stderr, "validate_constraint", "scan_timeout 1s")
    assert _validating(fresh_db.connect()) == 0
    conn = fresh_db.connect()
    _writers_not_blocked(conn)
    assert conn.execute("SELECT status FROM migrations.migration_log WHERE version = '002'").fetchone() == ("failed",)
    conn.close()


SLOW_ROLLBACK_SPEC = '''
from dbdeploy import Column, CreateTable, Migration, RawSQL
first = Migration(version="001", name="notes", operations=[
    CreateTable(table="public.notes", columns=[Column(name="id", type="bigint")], primary_key=["id"]),
    RawSQL(forward="COMMENT ON TABLE public.notes IS 'notes';",
           rollback="SELECT pg_catalog.pg_sleep(3); COMMENT ON TABLE public.notes IS NULL;")])
'''


def test_kill_9_mid_rollback_is_recorded_by_the_next_rollback(fresh_db, tmp_path) -> None:
    """kill -9 cannot be caught: the server finishes the statement, then ends the session; status
    says `rollback interrupted`, and the next rollback records the event before it finishes."""
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_notes.py", SLOW_ROLLBACK_SPEC)
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=specs)
    assert project.run("apply", "--env", "test").returncode == 0
    watcher = fresh_db.connect()
    run = project.start("rollback", "--to", "0", "--env", "test", "--plain")
    deadline = time.monotonic() + 60
    while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                              " AND application_name = 'dbdeploy' AND query LIKE '%pg_sleep%'").fetchone()[0]:
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    run.kill()
    run.communicate()
    deadline = time.monotonic() + 60
    while _deploy_lock_holders(watcher) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _deploy_lock_holders(watcher) == 0
    assert _status(project)["001"] == "rollback interrupted"
    assert [e[0] for e in _events(watcher, "001")] == ["apply"]

    result = project.run("rollback", "--to", "0", "--env", "test", "--plain")
    assert result.returncode == 0, result.stderr
    assert "V001 was interrupted (rollback step" in result.stderr
    events = _events(watcher, "001")
    assert [e[0] for e in events] == ["apply", "rollback_interrupted", "rollback"]
    assert events[1][2]["direction"] == "rollback"
    assert watcher.execute("SELECT to_regclass('public.notes')").fetchone() == (None,)
    watcher.close()


def _host_port(dsn: str) -> tuple[str, int]:
    params = conninfo_to_dict(dsn)
    host = params.get("host") or "127.0.0.1"
    if host.startswith("/"):
        pytest.skip("the proxy needs a TCP server")
    return host, int(params.get("port") or 5432)
