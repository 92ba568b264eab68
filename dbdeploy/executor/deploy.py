"""apply / rollback / baseline: the orchestration around the step runner.

Order of a run: guards that need no database (protected environment), connect, take the
deployment lock, create the history tables, check integrity (every applied version's bundle
present and unchanged, nothing pending below an applied version), then run bundles one by one,
recording every event. A failure marks the version failed and stops; re-running continues,
because every step checks before it changes anything and backfills resume from their cursor.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from dbdeploy import __version__
from dbdeploy.errors import IntegrityError, MigrationFailed, UsageError
from dbdeploy.executor import history, lock
from dbdeploy.executor.bundles import BundleOnDisk, Script, load_bundles
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.connection import connect, redact
from dbdeploy.executor.progress import Message, ProgressCallback, ignore
from dbdeploy.executor.runner import ScriptRunner, StepFailed

APPLIED = ("completed", "baseline")
TOUCHED = ("completed", "baseline", "failed", "running", "rolling_back")


@dataclass
class RunResult:
    applied: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    planned: list[tuple[str, list[str]]] = field(default_factory=list)   # dry run: (label, lines)


@dataclass
class Deployment:
    config: Config
    env: Environment
    dsn: str
    progress: ProgressCallback = ignore
    lock_wait: float = 60.0

    # --- helpers ------------------------------------------------------------------------

    @property
    def schema(self) -> str:
        return self.config.history_schema

    def _bundles(self) -> list[BundleOnDisk]:
        bundles = load_bundles(self.config.generated)
        problems = [p for b in bundles for p in b.problems()]
        if problems:
            raise IntegrityError("bundle files do not match their manifests:\n  " + "\n  ".join(problems)
                                 + "\nrun `dbdeploy generate` (never edit generated files by hand)")
        return bundles

    def _event(self, conn, version: str, event: str, **details) -> None:
        history.record_event(conn, self.schema, version=version, event=event, environment=self.env.name,
                             os_user=_os_user(), host=socket.gethostname(), tool_version=__version__, **details)

    def _runner(self, conn, label: str) -> ScriptRunner:
        return ScriptRunner(conn, label=label, retries=self.env.retries, lock_timeout=self.env.lock_timeout,
                            concurrent_lock_timeout=self.env.concurrent_lock_timeout,
                            statement_timeout=self.env.statement_timeout, progress=self.progress)

    def _session(self):
        conn = connect(self.dsn, self.env.name)

        def relay(diag: psycopg.errors.Diagnostic) -> None:
            text = diag.message_primary or ""
            severity = (diag.severity_nonlocalized or "NOTICE").lower()
            if text.startswith("dbdeploy") or severity == "warning":
                self.progress(Message(text, "warning" if severity == "warning" else "notice"))

        conn.add_notice_handler(relay)
        conn.execute(sql.SQL("SELECT pg_catalog.set_config('dbdeploy.environment', %s, false),"
                             " pg_catalog.set_config('dbdeploy.version', %s, false)"), [self.env.name, __version__])
        return conn

    def _locked(self, conn) -> int:
        key = lock.lock_key(self.schema)
        lock.acquire(conn, key, self.lock_wait, on_wait=lambda text: self.progress(Message(text, "warning")))
        return key

    # --- integrity ----------------------------------------------------------------------

    def check_integrity(self, bundles: list[BundleOnDisk], log: dict[str, history.LogRow]) -> None:
        by_version = {history.int_key(b.version): b for b in bundles}
        problems = []
        for key, row in sorted(log.items(), key=lambda kv: int(kv[0])):
            if row.status not in TOUCHED:
                continue
            bundle = by_version.get(key)
            if bundle is None:
                problems.append(f"V{row.version} is {row.status} in the database but its bundle is missing from "
                                f"{self.config.generated}; restore it from version control")
            elif row.checksum and row.checksum != bundle.checksum:
                problems.append(f"{bundle.label} was applied with checksum {row.checksum[:12]}… but the bundle now has "
                                f"{bundle.checksum[:12]}…; restore the applied spec and put the change in a new "
                                "migration")
        applied = [int(k) for k, r in log.items() if r.status in APPLIED]
        if applied:
            highest = max(applied)
            for bundle in bundles:
                row = log.get(history.int_key(bundle.version))
                if int(bundle.version) < highest and (row is None or row.status == "rolled_back"):
                    problems.append(f"{bundle.label} is pending but V{highest:03d} is already applied; give the new "
                                    "migration a version above every applied one")
        if problems:
            raise IntegrityError("refusing to run:\n  " + "\n  ".join(problems))

    # --- apply --------------------------------------------------------------------------

    def apply(self, *, to: str | None = None, dry_run: bool = False, yes: bool = False,
              allow_destructive: bool = False) -> RunResult:
        bundles = self._bundles()
        if to is not None:
            bundles = [b for b in bundles if int(b.version) <= int(to)]
        if self.env.protected and not yes and not dry_run:
            raise UsageError(f"environment {self.env.name!r} is protected: pass --yes to apply (nothing was run)")
        if dry_run:
            return self._dry_run(bundles)
        result = RunResult()
        with self._session() as conn:
            key = self._locked(conn)
            try:
                history.ensure_history(conn, self.schema)
                log = history.read_log(conn, self.schema)
                self.check_integrity(load_bundles(self.config.generated), log)
                pending = [b for b in bundles if _state(log, b) not in APPLIED]
                destructive = [b.label for b in pending if b.destructive]
                if destructive and self.env.protected and not allow_destructive:
                    raise UsageError(f"{', '.join(destructive)} drop tables or columns; on protected environment "
                                     f"{self.env.name!r} pass --allow-destructive as well (nothing was run)")
                if not pending:
                    self.progress(Message(f"{self.env.name}: nothing to apply; {len(bundles)} bundle(s) up to date"))
                for bundle in pending:
                    self._apply_one(conn, bundle)
                    result.applied.append(bundle.label)
            finally:
                lock.release(conn, key)
        return result

    def _apply_one(self, conn, bundle: BundleOnDisk) -> None:
        problem = bundle.steps_problem()
        if problem:
            raise IntegrityError(f"refusing to run {bundle.label}: {problem}; run `dbdeploy generate`")
        runner = self._runner(conn, bundle.label)
        script = bundle.forward
        self.progress(Message(f"applying {bundle.label} {bundle.name} ({len(script.steps)} steps)"))
        try:
            runner.apply_session_settings()
            runner.run_plain(script.preamble)
            rows = runner.run_steps(script, lambda outcome: history.record_step(
                conn, self.schema, version=bundle.version, direction="forward", step=outcome.step,
                started=outcome.started, ended=outcome.ended, rows=outcome.rows, attempts=outcome.attempts,
                environment=self.env.name))
            runner.run_plain(script.postamble)
        except StepFailed as exc:
            self._failed(conn, bundle, "fail", exc)
            raise MigrationFailed(f"{bundle.label} {bundle.name}: {redact(str(exc), self.dsn)}; it is marked failed. "
                                  "Fix the cause and run apply again: it continues where it stopped") from None
        history.set_status(conn, self.schema, bundle.version, "completed", None, rows_affected=rows,
                           host=socket.gethostname(), dbdeploy_version=__version__, environment=self.env.name)
        duration = conn.execute(sql.SQL("SELECT duration_ms FROM {}.migration_log WHERE version = %s").format(
            sql.Identifier(self.schema)), [bundle.version]).fetchone()[0]
        self._event(conn, bundle.version, "apply", duration_ms=duration, rows_affected=rows)

    def _failed(self, conn, bundle: BundleOnDisk, event: str, exc: StepFailed) -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        error = redact(str(exc.error).strip(), self.dsn)
        history.set_status(conn, self.schema, bundle.version, "failed", f"{exc}")
        self._event(conn, bundle.version, event, statement=exc.statement, error=error,
                    details={"step": exc.step.number if exc.step else None, "attempts": exc.attempts})

    def _dry_run(self, bundles: list[BundleOnDisk]) -> RunResult:
        """Print-only: reads the log if there is one, writes nothing, takes no lock."""
        result = RunResult()
        with connect(self.dsn, self.env.name) as conn:
            log = history.read_log(conn, self.schema)
        self.check_integrity(load_bundles(self.config.generated), log)
        for bundle in bundles:
            if _state(log, bundle) in APPLIED:
                continue
            result.planned.append((bundle.label, _describe(bundle.forward)))
        return result

    # --- rollback -----------------------------------------------------------------------

    def rollback(self, *, to: str, yes: bool = False) -> RunResult:
        bundles = self._bundles()
        if self.env.protected and not yes:
            raise UsageError(f"environment {self.env.name!r} is protected: pass --yes to roll back (nothing was run)")
        result = RunResult()
        with self._session() as conn:
            key = self._locked(conn)
            try:
                history.ensure_history(conn, self.schema)
                log = history.read_log(conn, self.schema)
                self.check_integrity(bundles, log)
                targets = [b for b in reversed(bundles) if int(b.version) > int(to) and _state(log, b) in TOUCHED]
                if not targets:
                    self.progress(Message(f"{self.env.name}: nothing to roll back above V{to}"))
                for bundle in targets:
                    self._rollback_one(conn, bundle)
                    result.rolled_back.append(bundle.label)
            finally:
                lock.release(conn, key)
        return result

    def _rollback_one(self, conn, bundle: BundleOnDisk) -> None:
        runner = self._runner(conn, bundle.label)
        script = bundle.rollback
        self.progress(Message(f"rolling back {bundle.label} {bundle.name} ({len(script.steps)} steps)"))
        try:
            runner.apply_session_settings()
            runner.run_plain(script.preamble)
            rows = runner.run_steps(script, lambda outcome: history.record_step(
                conn, self.schema, version=bundle.version, direction="rollback", step=outcome.step,
                started=outcome.started, ended=outcome.ended, rows=outcome.rows, attempts=outcome.attempts,
                environment=self.env.name))
            runner.run_plain(script.postamble)
        except StepFailed as exc:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            self._event(conn, bundle.version, "rollback_fail", statement=exc.statement,
                        error=redact(str(exc.error).strip(), self.dsn))
            raise MigrationFailed(f"rollback of {bundle.label}: {redact(str(exc), self.dsn)}; it stays rolling_back. "
                                  "Fix the cause and run rollback again") from None
        self._event(conn, bundle.version, "rollback", rows_affected=rows)

    # --- baseline -----------------------------------------------------------------------

    def baseline(self, *, version: str, yes: bool = False) -> RunResult:
        bundles = [b for b in self._bundles() if int(b.version) <= int(version)]
        if self.env.protected and not yes:
            raise UsageError(f"environment {self.env.name!r} is protected: pass --yes to baseline (nothing was run)")
        result = RunResult()
        with self._session() as conn:
            key = self._locked(conn)
            try:
                history.ensure_history(conn, self.schema)
                log = history.read_log(conn, self.schema)
                for bundle in bundles:
                    if _state(log, bundle) in APPLIED:
                        continue
                    conn.execute(sql.SQL(
                        "INSERT INTO {}.migration_log AS l (version, script_name, description, applied_by, applied_at,"
                        " completed_at, status, checksum, environment, dbdeploy_version, host, notes)"
                        " VALUES (%s, %s, %s, current_user, pg_catalog.now(), pg_catalog.now(), 'baseline', %s, %s, %s,"
                        " %s, 'recorded as applied by dbdeploy baseline; not run')"
                        " ON CONFLICT (version) DO UPDATE SET status = 'baseline', checksum = EXCLUDED.checksum,"
                        " notes = EXCLUDED.notes, completed_at = EXCLUDED.completed_at").format(
                        sql.Identifier(self.schema)),
                        [bundle.version, bundle.path("forward").name, bundle.manifest.get("description", ""),
                         bundle.checksum, self.env.name, __version__, socket.gethostname()])
                    self._event(conn, bundle.version, "baseline")
                    result.applied.append(bundle.label)
            finally:
                lock.release(conn, key)
        return result


def _state(log: dict[str, history.LogRow], bundle: BundleOnDisk) -> str | None:
    row = log.get(history.int_key(bundle.version))
    return row.status if row else None


def _describe(script: Script) -> list[str]:
    lines = []
    for step in script.steps:
        mode = "in a transaction" if step.transactional else "in autocommit"
        lines.append(f"-- step {step.number} {step.kind} on {step.target}: lock {step.lock}, {mode}")
        lines.append(f"--   {step.summary}")
        lines.extend(step.statements)
    return lines


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
