"""The executor against real PostgreSQL: apply, idempotency, rollback, status, verify, baseline,
integrity refusals, guards, secrets, retries on locks, concurrency and resumable backfills."""

from __future__ import annotations

import json
import time

import psycopg

from tests import catalog
from tests.executor_support import make_project, write_spec

LOG = "SELECT version, status FROM migrations.migration_log ORDER BY version"


def _events(db, event: str) -> dict[str, int]:
    return dict(db.execute("SELECT version, count(*) FROM migrations.migration_events WHERE event = %s"
                           " GROUP BY version ORDER BY version", [event]))


def test_apply_twice_status_verify_and_rollback_to_zero(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    conn = fresh_db.connect()
    before = catalog.snapshot(conn)

    first = project.run("apply", "--env", "test")
    assert first.returncode == 0, first.stderr
    assert "applied V001, V002, V003" in first.stdout
    assert fresh_db.execute(LOG) == [("001", "completed"), ("002", "completed"), ("003", "completed")]
    applied = catalog.snapshot(conn)
    steps = fresh_db.execute("SELECT count(*) FROM migrations.performance_log")[0][0]
    assert steps == sum(len(json.loads((f / "manifest.json").read_text())["steps"])
                        for f in project.generated.iterdir() if f.is_dir())

    again = project.run("apply", "--env", "test")
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    assert catalog.snapshot(conn) == applied
    assert fresh_db.execute("SELECT count(*) FROM migrations.performance_log")[0][0] == steps
    assert _events(fresh_db, "apply") == {"001": 1, "002": 1, "003": 1}

    status = project.run("status", "--env", "test", "--json")
    assert status.returncode == 0, status.stderr
    assert [(r["version"], r["state"]) for r in json.loads(status.stdout)] == [
        ("001", "applied"), ("002", "applied"), ("003", "applied")]
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    back = project.run("rollback", "--env", "test", "--to", "0")
    assert back.returncode == 0, back.stderr
    assert "rolled back V003, V002, V001" in back.stdout
    assert catalog.snapshot(conn) == before, catalog.diff(before, catalog.snapshot(conn))
    assert _events(fresh_db, "rollback") == {"001": 1, "002": 1, "003": 1}
    status = json.loads(project.run("status", "--env", "test", "--json").stdout)
    assert {r["state"] for r in status} == {"rolled back"}

    # and forward again after a full rollback
    assert project.run("apply", "--env", "test").returncode == 0
    assert catalog.snapshot(conn) == applied


def test_dry_run_changes_nothing(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    conn = fresh_db.connect()
    before = catalog.snapshot(conn, exclude_schemas=())
    result = project.run("apply", "--env", "test", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "CREATE INDEX CONCURRENTLY" in result.stdout
    assert "lock SHARE UPDATE EXCLUSIVE, in autocommit" in result.stdout
    assert catalog.snapshot(conn, exclude_schemas=()) == before
    assert fresh_db.execute("SELECT to_regnamespace('migrations')") == [(None,)]
    # after a partial apply, dry-run lists only what is pending and still changes nothing
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    events_before = fresh_db.execute("SELECT count(*) FROM migrations.migration_events")
    planned = project.run("apply", "--env", "test", "--dry-run")
    assert "-- V002" in planned.stdout and "-- V001" not in planned.stdout
    assert fresh_db.execute("SELECT count(*) FROM migrations.migration_events") == events_before
    assert fresh_db.execute(LOG) == [("001", "completed")]


def test_to_version_and_baseline(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    assert project.run("apply", "--env", "test", "--to", "001").returncode == 0
    assert fresh_db.execute(LOG) == [("001", "completed")]
    back = project.run("rollback", "--env", "test", "--to", "0")
    assert back.returncode == 0
    assert fresh_db.execute("SELECT to_regclass('raw.site_tracking_events_r')") == [(None,)]

    # Adopt a database that already has V001's objects: baseline records without running.
    other = make_project(tmp_path / "other", fresh_db.dsn)
    fresh_db.psql_file(next((other.generated).glob("V001__*/V001__create_*.sql")))
    fresh_db.execute("DELETE FROM migrations.migration_log")
    result = other.run("baseline", "--env", "test", "--version", "1")
    assert result.returncode == 0, result.stderr
    assert fresh_db.execute(LOG) == [("001", "baseline")]
    assert _events(fresh_db, "baseline") == {"001": 1}
    result = other.run("apply", "--env", "test")
    assert result.returncode == 0, result.stderr
    assert "applied V002, V003" in result.stdout


def test_edited_bundle_is_refused_with_exit_3(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    assert project.run("apply", "--env", "test").returncode == 0
    forward = next(project.generated.glob("V002__*/V002__evolve*.sql"))
    original = forward.read_text()
    forward.write_text(original.replace("batches of 5000", "batches of 50"))
    result = project.run("apply", "--env", "test")
    assert result.returncode == 3
    assert "edited after it was generated" in result.stderr
    forward.write_text(original)

    # A regenerated bundle (spec changed after apply) has a consistent manifest but a new checksum.
    spec = next((tmp_path / "specs").glob("V002_*.py"))
    spec.write_text(spec.read_text().replace("batch_size=5000", "batch_size=4000"))
    assert project.run("generate").returncode == 0
    result = project.run("apply", "--env", "test")
    assert result.returncode == 3
    assert "V002 was applied with checksum" in result.stderr
    assert "Traceback" not in result.stderr


def _table_spec(version: str, table: str) -> str:
    return (
        "from dbdeploy import Column, CreateTable, Migration\n"
        f"m = Migration(version={version!r}, name='t_{table}', operations=[CreateTable(\n"
        f"    table='public.{table}', columns=[Column(name='id', type='bigint')], primary_key=['id'])])\n")


def test_missing_and_out_of_order_bundles_are_refused(fresh_db, tmp_path) -> None:
    specs = tmp_path / "specs_in"
    write_spec(specs, "V010_a.py", _table_spec("010", "a"))
    write_spec(specs, "V020_b.py", _table_spec("020", "b"))
    project = make_project(tmp_path / "p", fresh_db.dsn, specs=specs)
    assert project.run("apply", "--env", "test").returncode == 0
    # a new migration numbered below an applied one
    write_spec(project.root / "specs", "V015_c.py", _table_spec("015", "c"))
    assert project.run("generate").returncode == 0
    result = project.run("apply", "--env", "test")
    assert result.returncode == 3
    assert "V015 is pending but V020 is already applied" in result.stderr
    assert fresh_db.execute("SELECT to_regclass('public.c')") == [(None,)]
    (project.root / "specs" / "V015_c.py").unlink()
    assert project.run("generate").returncode == 0
    # an applied bundle that disappeared
    import shutil

    shutil.rmtree(next(project.generated.glob("V020__*")))
    result = project.run("status", "--env", "test", "--json")
    assert ("020", "bundle missing") in [(r["version"], r["state"]) for r in json.loads(result.stdout)]
    result = project.run("apply", "--env", "test")
    assert result.returncode == 3
    assert "V020 is completed in the database but its bundle is missing" in result.stderr


def test_protected_environment_needs_yes_and_destructive_flag(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, None, extra_env=(
        "[environments.production]\n"
        f"dsn = {json.dumps(fresh_db.dsn)}\n"
        "protected = true\n"))
    refused = project.run("apply", "--env", "production")
    assert refused.returncode == 2
    assert "protected" in refused.stderr and "--yes" in refused.stderr
    assert fresh_db.execute("SELECT to_regnamespace('migrations')") == [(None,)]

    destructive = project.run("apply", "--env", "production", "--yes")
    assert destructive.returncode == 2
    assert "V003" in destructive.stderr and "--allow-destructive" in destructive.stderr
    assert fresh_db.execute("SELECT count(*) FROM migrations.migration_log") == [(0,)]

    ok = project.run("apply", "--env", "production", "--yes", "--allow-destructive")
    assert ok.returncode == 0, ok.stderr
    assert project.run("rollback", "--env", "production", "--to", "0").returncode == 2


def test_password_never_printed_or_stored(fresh_db, tmp_path) -> None:
    secret = "s3cret-Pa55word"
    role = f"dbdeploy_pw_{fresh_db.name[-12:]}"   # roles are cluster-wide: one per test database
    fresh_db.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{secret}'")
    try:
        params = psycopg.conninfo.conninfo_to_dict(fresh_db.dsn)
        params.update(user=role, password=secret)
        dsn = psycopg.conninfo.make_conninfo(**params)
        project = make_project(tmp_path, dsn)
        outputs = []
        for args in (("apply", "--env", "test", "--plain"), ("status", "--env", "test"),
                     ("verify", "--env", "test"), ("apply", "--env", "test", "--dry-run")):
            result = project.run(*args)
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout + result.stderr)
        bad = dict(params, port="1")  # nothing listens there: the error must not echo the DSN's password
        failing = project.run("status", "--dsn", psycopg.conninfo.make_conninfo(**bad))
        assert failing.returncode != 0
        outputs.append(failing.stdout + failing.stderr)
        assert all(secret not in out for out in outputs)
        assert "***" in failing.stderr
        stored = fresh_db.execute("SELECT string_agg(t::text, ' ') FROM migrations.migration_events t")[0][0]
        stored += fresh_db.execute("SELECT string_agg(t::text, ' ') FROM migrations.migration_log t")[0][0]
        assert secret not in stored
    finally:
        fresh_db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role])
        fresh_db.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}")
        fresh_db.execute(f"DROP ROLE {role}")


def test_dsn_env_unset_is_refused(tmp_path) -> None:
    project = make_project(tmp_path, None, extra_env='[environments.staging]\ndsn_env = "DBDEPLOY_NOT_SET_X"\n')
    result = project.run("apply", "--env", "staging")
    assert result.returncode == 2
    assert "DBDEPLOY_NOT_SET_X" in result.stderr and "unset" in result.stderr


def test_verify_reports_invalid_and_missing_objects(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    assert project.run("apply", "--env", "test").returncode == 0
    fresh_db.execute("DROP INDEX raw.idx_site_tracking_events_r_type_time")
    fresh_db.execute("ALTER TABLE raw.site_tracking_events_r DROP CONSTRAINT chk_site_tracking_events_r_event_type")
    fresh_db.execute("ALTER TABLE raw.site_tracking_events_r ADD CONSTRAINT chk_site_tracking_events_r_event_type"
                     " CHECK (event_type <> '') NOT VALID")
    result = project.run("verify", "--env", "test")
    assert result.returncode == 1
    assert "index raw.idx_site_tracking_events_r_type_time is missing" in result.stderr
    assert "chk_site_tracking_events_r_event_type on raw.site_tracking_events_r is NOT VALID" in result.stderr


LOCK_SPEC = '''
from dbdeploy import AddColumn, Column, CreateTable, Migration
first = Migration(version="001", name="accounts", operations=[CreateTable(
    table="public.accounts", columns=[Column(name="id", type="bigint"), Column(name="name", type="text")],
    primary_key=["id"])])
second = Migration(version="002", name="accounts_email", operations=[
    AddColumn(table="public.accounts", column=Column(name="email", type="text"))])
'''


def test_lock_contention_retries_then_fails_cleanly_and_recovers(fresh_db, tmp_path) -> None:
    specs = tmp_path / "lockspecs"
    write_spec(specs, "V001_accounts.py", LOCK_SPEC)
    project = make_project(tmp_path / "p", fresh_db.dsn, specs=specs, lock_timeout="300ms", retries=2)
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    fresh_db.execute("INSERT INTO public.accounts SELECT g, 'n' || g FROM generate_series(1, 100) g")

    blocker = fresh_db.connect(autocommit=False)
    blocker.execute("SELECT count(*) FROM public.accounts")   # holds ACCESS SHARE until rollback
    apply = project.start("apply", "--env", "test", "--plain")
    # While apply waits for its ACCESS EXCLUSIVE lock, other sessions keep working: with a
    # lock_timeout of 3s of their own, their reads and writes must never time out behind it.
    reader = fresh_db.connect()
    reader.execute("SET lock_timeout = '3s'")
    for i in range(10):
        reader.execute("SELECT count(*) FROM public.accounts")
        reader.execute("UPDATE public.accounts SET name = name WHERE id = %s", [i + 1])
        time.sleep(0.1)
    out, err = apply.communicate(timeout=120)
    assert apply.returncode == 1, out + err
    assert err.count("retry") == 2, err
    assert "lock timeout" in err
    assert fresh_db.execute(LOG) == [("001", "completed"), ("002", "failed")]
    columns = {r[0] for r in fresh_db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass AND attnum > 0")}
    assert "email" not in columns     # nothing half-applied
    failure = fresh_db.execute("SELECT statement, error FROM migrations.migration_events WHERE event = 'fail'")
    assert failure and "ALTER TABLE" in failure[0][0] and "lock timeout" in failure[0][1]

    blocker.rollback()
    blocker.close()
    result = project.run("apply", "--env", "test")
    assert result.returncode == 0, result.stderr
    assert fresh_db.execute(LOG) == [("001", "completed"), ("002", "completed")]


def test_concurrent_applies_apply_each_version_once(fresh_db, tmp_path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    runs = [project.start("apply", "--env", "test", "--plain", "--lock-wait", "120") for _ in range(4)]
    results = [(r.wait(timeout=300), r.communicate()) for r in runs]
    codes = [code for code, _ in results]
    assert all(code in (0, 3) for code in codes), results
    assert codes.count(0) >= 1
    assert _events(fresh_db, "apply") == {"001": 1, "002": 1, "003": 1}
    assert fresh_db.execute(LOG) == [("001", "completed"), ("002", "completed"), ("003", "completed")]
    waited = [out + err for _, (out, err) in results if "waiting up to" in err]
    assert waited, "at least one run should have reported waiting for the lock holder"
    assert all("held by pid" in text for text in waited)


def test_lock_wait_timeout_exits_3(fresh_db, tmp_path) -> None:
    from dbdeploy.executor.lock import lock_key

    project = make_project(tmp_path, fresh_db.dsn)
    holder = fresh_db.connect()
    holder.execute("SELECT pg_advisory_lock(%s)", [lock_key("migrations")])
    result = project.run("apply", "--env", "test", "--lock-wait", "1")
    assert result.returncode == 3
    assert "holds the deployment lock" in result.stderr and "pid" in result.stderr
    holder.close()   # the session ends: PostgreSQL releases the lock, nothing to clear by hand
    assert project.run("apply", "--env", "test").returncode == 0


BIG_SPEC = '''
from dbdeploy import AddColumn, Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="readings", operations=[CreateTable(
    table="public.readings", columns=[Column(name="id", type="bigint"), Column(name="value", type="integer")],
    primary_key=["id"])])
second = Migration(version="002", name="readings_scaled", operations=[
    AddColumn(table="public.readings", column=Column(name="scaled", type="bigint")),
    Backfill(table="public.readings", set={"scaled": "value * 10"}, where="scaled IS NULL", batch_size=1000)])
'''

ROWS = 200_000


def test_kill_9_mid_backfill_then_apply_resumes(fresh_db, tmp_path) -> None:
    specs = tmp_path / "bigspecs"
    write_spec(specs, "V001_readings.py", BIG_SPEC)
    project = make_project(tmp_path / "p", fresh_db.dsn, specs=specs)
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    fresh_db.execute(f"INSERT INTO public.readings SELECT g, g % 1000 FROM generate_series(1, {ROWS}) g")
    fresh_db.execute("ANALYZE public.readings")

    run = project.start("apply", "--env", "test", "--plain")
    progress = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = fresh_db.execute("SELECT to_regclass('dbdeploy_backup.v002_op2_readings_progress')")[0][0]
        if row:
            progress = fresh_db.execute(
                "SELECT dbdeploy_batches_done FROM dbdeploy_backup.v002_op2_readings_progress")[0][0]
            if progress >= 20:
                break
        time.sleep(0.02)
    run.kill()   # SIGKILL: no cleanup of any kind
    run.wait()
    done_at_kill = fresh_db.execute("SELECT dbdeploy_batches_done FROM dbdeploy_backup.v002_op2_readings_progress")
    assert 20 <= done_at_kill[0][0] < ROWS // 1000, "the kill should land in the middle of the backfill"
    assert fresh_db.execute(LOG)[-1] == ("002", "running")

    result = project.run("apply", "--env", "test", "--plain")
    assert result.returncode == 0, result.stderr
    batches, rows_done = fresh_db.execute(
        "SELECT dbdeploy_batches_done, dbdeploy_rows_done FROM dbdeploy_backup.v002_op2_readings_progress")[0]
    assert batches == ROWS // 1000        # every batch exactly once: none redone after the restart
    assert rows_done == ROWS
    assert fresh_db.execute("SELECT count(*) FROM public.readings WHERE scaled IS DISTINCT FROM value * 10") == [(0,)]
    assert fresh_db.execute("SELECT status, count(*) FROM migrations.migration_log WHERE version = '002'"
                            " GROUP BY status") == [("completed", 1)]
    assert _events(fresh_db, "apply") == {"001": 1, "002": 1}


def test_protected_environment_accepts_the_typed_name_on_a_terminal(fresh_db, tmp_path) -> None:
    import os
    import subprocess

    from tests.executor_support import DBDEPLOY

    project = make_project(tmp_path, None, extra_env=(
        "[environments.production]\n"
        f"dsn = {json.dumps(fresh_db.dsn)}\n"
        "protected = true\n"))

    def typed(answer: str) -> subprocess.CompletedProcess:
        leader, follower = os.openpty()        # stdin is a terminal, as for a DBA at a shell
        try:
            os.write(leader, answer.encode() + b"\n")
            return subprocess.run([DBDEPLOY, "apply", "--env", "production", "--to", "2", "--plain"],
                                  cwd=project.root, stdin=follower, capture_output=True, text=True, timeout=120,
                                  check=False)
        finally:
            os.close(follower)
            os.close(leader)

    wrong = typed("staging")
    assert wrong.returncode == 2
    assert "confirmation did not match" in wrong.stderr
    assert fresh_db.execute("SELECT to_regnamespace('migrations')") == [(None,)]
    right = typed("production")
    assert right.returncode == 0, right.stderr
    assert fresh_db.execute(LOG) == [("001", "completed"), ("002", "completed")]


def test_progress_is_reported_through_the_callback(fresh_db, tmp_path) -> None:
    from dbdeploy.executor.config import load_config
    from dbdeploy.executor.deploy import Deployment
    from dbdeploy.executor.progress import BackfillProgress, StepFinished, StepStarted

    specs = tmp_path / "bigspecs"
    write_spec(specs, "V001_readings.py", BIG_SPEC)
    project = make_project(tmp_path / "p", fresh_db.dsn, specs=specs)
    config = load_config(project.root)
    events = []
    deployment = Deployment(config=config, env=config.environment("test"), dsn=fresh_db.dsn,
                            progress=events.append)
    deployment.apply(to="1")
    fresh_db.execute("INSERT INTO public.readings SELECT g, g FROM generate_series(1, 5500) g")
    deployment.apply()
    backfill = [e for e in events if isinstance(e, BackfillProgress)]
    assert [e.rows_done for e in backfill] == [1000, 2000, 3000, 4000, 5000, 5500]
    assert all(e.rows_total >= e.rows_done for e in backfill)
    started = [e for e in events if isinstance(e, StepStarted)]
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [(e.label, e.number) for e in started] == [(e.label, e.number) for e in finished]
    assert ("V002", "backfill") in {(e.label, e.kind) for e in started}


def test_index_build_progress_comes_from_pg_stat_progress_create_index(fresh_db) -> None:
    from dbdeploy.executor.bundles import ExecStep
    from dbdeploy.executor.progress import IndexProgress
    from dbdeploy.executor.runner import ScriptRunner

    fresh_db.execute("CREATE TABLE public.big (id bigint PRIMARY KEY, v text);"
                     " INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g;"
                     " ANALYZE public.big")
    events = []
    conn = fresh_db.connect()
    runner = ScriptRunner(conn, label="V009", retries=0, lock_timeout="5s", statement_timeout="0",
                          progress=events.append)
    step = ExecStep(1, "create_index", False, "SHARE UPDATE EXCLUSIVE", "public.big", "build",
                    ("CREATE INDEX CONCURRENTLY big_v_idx ON public.big (v)",))
    runner.run_step(step)
    seen = [e for e in events if isinstance(e, IndexProgress)]
    assert seen, "a 1M-row concurrent build should be observed at least once"
    assert all(e.label == "V009" and e.number == 1 and e.phase for e in seen)
    assert any(e.total > 0 and 0 <= e.done <= e.total for e in seen), seen
    assert fresh_db.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.big_v_idx'::regclass") == [
        (True,)]


INDEX_SPEC = '''
from dbdeploy import Column, CreateIndex, CreateTable, Index, Migration
first = Migration(version="001", name="items", operations=[CreateTable(
    table="public.items", columns=[Column(name="id", type="bigint"), Column(name="sku", type="text")],
    primary_key=["id"])])
second = Migration(version="002", name="items_sku", operations=[
    CreateIndex(table="public.items", index=Index(columns=["sku"]))])
'''


def test_concurrent_steps_outwait_a_lock_that_blocking_steps_would_give_up_on(fresh_db, tmp_path) -> None:
    """lock_timeout bounds how long others queue behind a blocking step; a concurrent index build
    blocks nobody while it waits, so it gets concurrent_lock_timeout and needs no retry."""
    import threading

    specs = tmp_path / "indexspecs"
    write_spec(specs, "V001_items.py", INDEX_SPEC)
    project = make_project(tmp_path / "p", None, specs=specs, extra_env=(
        "[environments.test]\n"
        f"dsn = {json.dumps(fresh_db.dsn)}\n"
        'lock_timeout = "100ms"\nconcurrent_lock_timeout = "60s"\nretries = 0\n'))
    assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
    holder = fresh_db.connect(autocommit=False)
    holder.execute("LOCK TABLE public.items IN SHARE UPDATE EXCLUSIVE MODE")   # conflicts with the build
    release = threading.Timer(1.5, holder.commit)
    release.start()
    try:
        result = project.run("apply", "--env", "test", "--plain")
    finally:
        release.join()
        holder.close()
    assert result.returncode == 0, result.stderr      # with retries = 0, a 100 ms wait would have failed it
    attempts = fresh_db.execute("SELECT kind, attempts FROM migrations.performance_log WHERE version = '002'"
                                " ORDER BY step")
    assert attempts == [("drop_invalid_index", 1), ("create_index", 1)]
