"""apply / rollback / baseline: the orchestration around the step runner.

Order of a run: guards that need no database (protected environment), connect, take the
deployment lock, create the history tables, check integrity (every applied version's bundle
present and unchanged, nothing pending below an applied version), then run bundles one by one,
recording every event. A failure marks the version failed and stops; re-running continues,
because every step checks before it changes anything and backfills resume from their cursor.
"""

from __future__ import annotations

import getpass
import signal
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from dbdeploy import __version__
from dbdeploy.errors import DbdeployError, IntegrityError, Interrupted, MigrationFailed, Stopped, UsageError
from dbdeploy.executor import history, lock, privileges, trust
from dbdeploy.executor.bundles import BundleOnDisk, Script, load_bundles, parse_script
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.connection import ConnectionLost, connect, is_lost, lost_reason, redact
from dbdeploy.executor.progress import Message, ProgressCallback, StepStarted, ignore
from dbdeploy.executor.runner import ScriptRunner, StepFailed
from dbdeploy.sql import acl

APPLIED = ("completed", "baseline")
TOUCHED = ("completed", "baseline", "failed", "running", "rolling_back")
UNFINISHED = ("failed", "running", "rolling_back")


@dataclass
class RunResult:
    applied: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    planned: list[tuple[str, list[str]]] = field(default_factory=list)   # dry run: (label, lines)
    skipped: list[str] = field(default_factory=list)   # baseline --partial: versions not recorded


@dataclass
class Deployment:
    config: Config
    env: Environment
    dsn: str
    progress: ProgressCallback = ignore
    lock_wait: float = 60.0
    # What is running now, for the one line a lost connection or a signal prints:
    # (label, version, direction, step number or None, description).
    _doing: tuple | None = field(default=None, init=False, repr=False)

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

    def _runner(self, conn, label: str, version: str = "", direction: str = "forward") -> ScriptRunner:
        def relay(event) -> None:
            if isinstance(event, StepStarted):
                self._doing = (label, version, direction, event.number,
                               f"step {event.number}/{event.total} ({event.kind} {event.target})")
            self.progress(event)

        self._doing = (label, version, direction, None, "(bookkeeping before its first step)")
        return ScriptRunner(conn, label=label, retries=self.env.retries, lock_timeout=self.env.lock_timeout,
                            concurrent_lock_timeout=self.env.concurrent_lock_timeout,
                            statement_timeout=self.env.statement_timeout, progress=relay,
                            scan_timeout=self.env.scan_timeout, batch_time=self.env.batch_seconds)

    @contextmanager
    def _session(self):
        """A connection for one run. A connection that breaks (server crash, cut, frozen path)
        becomes ConnectionLost (exit 5) and a signal becomes Stopped (exit 130/143): one line
        saying what was running and that re-running resumes; the event is recorded in the history
        now if the server can be reached, else by the next run (:meth:`_record_interruptions`)."""
        self._doing = None
        conn = self._open()
        try:
            yield conn
        except psycopg.Error as exc:
            if is_lost(conn):
                raise self._lost(exc, lost_reason(conn)) from None
            raise
        except StepFailed as exc:
            if is_lost(conn):
                raise self._lost(exc.error, lost_reason(conn)) from None
            raise
        except KeyboardInterrupt as exc:
            raise self._stopped(conn, exc) from None
        finally:
            conn.close()

    def _what(self) -> str:
        if self._doing is None:
            return "before any migration ran"
        label, _version, direction, _step, what = self._doing
        return f"while {'rolling back ' if direction == 'rollback' else ''}{label} {what} was running"

    def _lost(self, error: BaseException, reason: str | None) -> ConnectionLost:
        cause = reason or redact(_first(error), self.dsn)
        where = "" if self.env.name == "dev" else f" --env {self.env.name}"
        if self._doing is None:
            return ConnectionLost(f"lost the connection to {self.env.name} before any migration ran: {cause}. Nothing "
                                  "was changed; run the same command again")
        label, version, direction, step, _what = self._doing
        recorded = self._note_interruption(version, direction, step, f"connection lost: {cause}")
        command = "rollback" if direction == "rollback" else "apply"
        return ConnectionLost(
            f"lost the connection to {self.env.name} {self._what()}: {cause}. {label} is interrupted, not failed"
            f"{'' if recorded else ' (the next run records it in the history)'}; run `dbdeploy {command}{where}` "
            "again to resume: every step checks before it acts and a backfill resumes at its cursor")

    def _stopped(self, conn, exc: KeyboardInterrupt) -> Stopped:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        name = signal.Signals(signum).name
        if self._doing is None:
            return Stopped(f"stopped by {name} before any migration ran; nothing was changed", signum)
        label, version, direction, step, _what = self._doing
        recorded = False
        if not is_lost(conn):
            try:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                self._interrupted_event(conn, version, direction, step, f"stopped by {name}")
                recorded = True
            except (psycopg.Error, DbdeployError):
                recorded = False
        where = "" if self.env.name == "dev" else f" --env {self.env.name}"
        command = "rollback" if direction == "rollback" else "apply"
        return Stopped(f"stopped by {name} {self._what()}; the statement running on the server was cancelled. "
                       f"{label} is interrupted{'' if recorded else ' (the next run records it in the history)'}; "
                       f"run `dbdeploy {command}{where}` again to resume", signum)

    def _interrupted_event(self, conn, version: str, direction: str, step: int | None, error: str) -> None:
        self._event(conn, version, "rollback_interrupted" if direction == "rollback" else "interrupted",
                    error=redact(error, self.dsn), details={"step": step, "direction": direction})

    def _note_interruption(self, version: str, direction: str, step: int | None, error: str) -> bool:
        """Record the interruption right away on a new connection, if the server answers soon;
        False when it does not (the next run records it then)."""
        try:
            with connect(self.dsn, self.env.name, network_timeout=min(5.0, self.env.network_seconds or 5.0)) as conn:
                row = history.read_log(conn, self.schema).get(history.int_key(version))
                if row is None or row.status not in ("running", "rolling_back"):
                    return False
                self._interrupted_event(conn, version, direction, step, error)
                return True
        except (psycopg.Error, DbdeployError):
            return False

    def _record_interruptions(self, conn) -> None:
        """On the next contact (holding the deployment lock, so nobody else is running them):
        every version left ``running`` or ``rolling_back`` whose interruption is not yet in the
        history gets its ``interrupted`` / ``rollback_interrupted`` event, with the step that was
        running as far as ``performance_log`` tells."""
        for version, status, step in history.unrecorded_interruptions(conn, self.schema):
            direction = "rollback" if status == "rolling_back" else "forward"
            self._interrupted_event(conn, version, direction, step, "the run ended without recording why (killed, "
                                    "connection lost or server crash); recorded by the next run")
            self.progress(Message(f"V{version} was interrupted ({'rollback ' if direction == 'rollback' else ''}step "
                                  f"{step or '?'}); recorded in the history, resuming", "warning"))

    def _unlock(self, conn, key: int) -> None:
        """Release the deployment lock; on a lost connection the server ends the session (and the lock)."""
        if is_lost(conn):
            return
        try:
            lock.release(conn, key)
        except psycopg.Error:
            if not is_lost(conn):
                raise

    def _open(self):
        conn = connect(self.dsn, self.env.name, network_timeout=self.env.network_seconds)

        def relay(diag: psycopg.errors.Diagnostic) -> None:
            text = diag.message_primary or ""
            severity = (diag.severity_nonlocalized or "NOTICE").lower()
            if text.startswith("dbdeploy") or severity == "warning":
                self.progress(Message(text, "warning" if severity == "warning" else "notice"))

        conn.add_notice_handler(relay)
        conn.execute(sql.SQL("SELECT pg_catalog.set_config('dbdeploy.environment', %s, false),"
                             " pg_catalog.set_config('dbdeploy.version', %s, false),"
                             " pg_catalog.set_config('dbdeploy.lock_timeout', %s, false),"
                             " pg_catalog.set_config('dbdeploy.batch_time', %s, false),"
                             " pg_catalog.set_config('dbdeploy.backup_readers', %s, false)"),
                     [self.env.name, __version__, self.env.lock_timeout, f"{round(self.env.batch_seconds * 1000)}ms",
                      acl.readers_literal(self.config.backup_readers)])
        return conn

    def _locked(self, conn) -> int:
        key = lock.lock_key(self.schema)
        lock.acquire(conn, key, self.lock_wait, on_wait=lambda text: self.progress(Message(text, "warning")))
        return key

    def _preflight(self, conn, bundles: list[BundleOnDisk], direction: str, select) -> None:
        """Refuse with PrivilegeError before anything is written when the role lacks a privilege that
        dbdeploy's schemas or the steps of ``select(log)`` (the bundles this run will execute) need."""
        what = {"forward": "apply", "rollback": "rollback"}.get(direction, direction)
        trust.verify(conn, self.schema, privileges.backup_schemas(bundles), self.config.owners, what)
        privileges.bookkeeping(conn, self.schema, privileges.backup_schemas(bundles), what)
        if direction != "baseline":
            privileges.steps(conn, select(history.read_log(conn, self.schema)), direction, what)

    # --- integrity ----------------------------------------------------------------------

    def check_integrity(self, bundles: list[BundleOnDisk], log: dict[str, history.LogRow],
                        stored: frozenset[str] = frozenset()) -> None:
        """Refuse (exit 3) on missing, changed or out-of-order bundles.

        ``stored``: keys of unfinished versions (failed, interrupted) whose changed bundle is fine
        because the rollback that ran with them is kept in the history (rollback uses it).
        """
        by_version = {history.int_key(b.version): b for b in bundles}
        problems = []
        for key, row in sorted(log.items(), key=lambda kv: int(kv[0])):
            if row.status not in TOUCHED:
                continue
            bundle = by_version.get(key)
            if bundle is None:
                if key in stored:
                    continue
                problems.append(f"V{row.version} is {row.status} in the database but its bundle is missing from "
                                f"{self.config.generated}; restore it from version control")
            elif row.checksum and row.checksum != bundle.checksum:
                if key in stored:
                    continue
                if row.status in UNFINISHED:
                    problems.append(
                        f"{bundle.label} is {row.status} and its bundle changed since it ran (checksum "
                        f"{row.checksum[:12]}… then, {bundle.checksum[:12]}… now): roll it back first with the "
                        f"bundle that ran — `dbdeploy rollback --to {self._previous(bundles, bundle)}` (it uses the "
                        "rollback file stored when it ran; if none is stored, restore that bundle from version "
                        "control), then apply")
                else:
                    problems.append(f"{bundle.label} was applied with checksum {row.checksum[:12]}… but the bundle "
                                    f"now has {bundle.checksum[:12]}…; restore the applied spec and put the change "
                                    "in a new migration")
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
                self._preflight(conn, bundles, "forward",
                                lambda log: [b for b in bundles if _state(log, b) not in APPLIED])
                history.ensure_history(conn, self.schema, owners=self.config.owners)
                self._record_interruptions(conn)
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
                self._unlock(conn, key)
        return result

    def _apply_one(self, conn, bundle: BundleOnDisk) -> None:
        problem = bundle.steps_problem()
        if problem:
            raise IntegrityError(f"refusing to run {bundle.label}: {problem}; run `dbdeploy generate`")
        runner = self._runner(conn, bundle.label, bundle.version, "forward")
        script = bundle.forward
        self.progress(Message(f"applying {bundle.label} {bundle.name} ({len(script.steps)} steps)"))
        # Keep the rollback that belongs to this run: if it fails and the spec is fixed and
        # regenerated, `rollback` still undoes what this bundle did.
        history.store_rollback(conn, self.schema, version=bundle.version, checksum=bundle.checksum,
                               name=bundle.path("rollback").name, text=bundle.path("rollback").read_text())
        try:
            runner.apply_session_settings()
            runner.run_plain(script.preamble)
            rows = runner.run_steps(script, lambda outcome: history.record_step(
                conn, self.schema, version=bundle.version, direction="forward", step=outcome.step,
                started=outcome.started, ended=outcome.ended, rows=outcome.rows, attempts=outcome.attempts,
                environment=self.env.name))
            runner.run_plain(script.postamble)
            self._doing = (bundle.label, bundle.version, "forward", None, "(bookkeeping after its last step)")
        except StepFailed as exc:
            if is_lost(conn):
                raise
            self._failed(conn, bundle, "fail", exc)
            released = self._release(conn, bundle)
            raise MigrationFailed(
                f"{bundle.label} {bundle.name}: {redact(str(exc), self.dsn)}; it is marked failed."
                + "".join(f"\n{line}" for line in released) + "\n"
                + way_on(bundle.label, self._previous(self._bundles_cached, bundle), self.env.name)) from None
        history.set_status(conn, self.schema, bundle.version, "completed", None, rows_affected=rows,
                           host=socket.gethostname(), dbdeploy_version=__version__, environment=self.env.name)
        duration = conn.execute(sql.SQL("SELECT duration_ms FROM {}.migration_log WHERE version = %s").format(
            sql.Identifier(self.schema)), [bundle.version]).fetchone()[0]
        self._event(conn, bundle.version, "apply", duration_ms=duration, rows_affected=rows)
        self._doing = None

    def _failed(self, conn, bundle: BundleOnDisk, event: str, exc: StepFailed) -> None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        error = redact(str(exc.error).strip(), self.dsn)
        history.set_status(conn, self.schema, bundle.version, "failed", f"{exc}")
        self._event(conn, bundle.version, event, statement=exc.statement, error=error,
                    details={"step": exc.step.number if exc.step else None, "attempts": exc.attempts})

    def _release(self, conn, bundle: BundleOnDisk) -> list[str]:
        """After a failure: drop the indexes this version built that would keep enforcing.

        - INVALID indexes (a failed concurrent build): once a build got past its first phase, an
          INVALID unique index still enforces uniqueness on new rows;
        - a unique index an AddUnique built whose ``ADD CONSTRAINT … USING INDEX`` did not happen
          (the attach step failed, e.g. on a lock): it enforces uniqueness like the constraint.

        Only indexes recorded as built by this version are dropped, ``CONCURRENTLY`` (SHARE UPDATE
        EXCLUSIVE: reads and writes continue); a drop that fails is reported, and rolling the
        version back drops the index. The bundle's own steps release what SQL can under psql too
        (a failed VALIDATE drops its NOT VALID constraint, a unique build refuses on duplicates
        first); this covers what SQL cannot do after a failed top-level statement.
        """
        unattached = sorted({f"{e['table'].partition('.')[0]}.{e['name']}" for e in bundle.manifest.get("expects", [])
                             if e.get("object") == "constraint" and e.get("kind") == "u" and e.get("present")})
        lines = []
        try:
            rows = conn.execute(sql.SQL(
                "SELECT o.object_name, NOT i.indisvalid FROM {}.migration_objects o"
                " JOIN pg_catalog.pg_index i ON i.indexrelid = pg_catalog.to_regclass(o.object_name)"
                " WHERE o.version = %s AND o.object_type = 'index' AND (NOT i.indisvalid OR (i.indisunique"
                " AND o.object_name = ANY (%s) AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c"
                " WHERE c.conindid = i.indexrelid))) ORDER BY 1").format(
                sql.Identifier(self.schema)), [bundle.version, unattached]).fetchall()
        except psycopg.Error:
            return lines
        for name, invalid in rows:
            what = ("the INVALID index {} that the failed build left" if invalid else
                    "the unique index {} whose constraint was never added").format(name)
            schema, _, index = name.partition(".")
            try:
                conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(self.env.concurrent_lock_timeout)))
                conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, index)))
                conn.execute(sql.SQL("DELETE FROM {}.migration_objects WHERE version = %s AND object_type = 'index'"
                                     " AND object_name = %s").format(sql.Identifier(self.schema)),
                             [bundle.version, name])
                lines.append(f"dropped {what} (it would keep enforcing uniqueness / costing writes)")
            except psycopg.Error as exc:
                lines.append(f"could not drop {what} ({_first(exc)}); rolling back {bundle.label} drops it")
        return lines

    @property
    def _bundles_cached(self) -> list[BundleOnDisk]:
        return load_bundles(self.config.generated)

    @staticmethod
    def _previous(bundles: list[BundleOnDisk], bundle: BundleOnDisk) -> str:
        earlier = [b.version for b in bundles if int(b.version) < int(bundle.version)]
        return earlier[-1] if earlier else "0"

    def _dry_run(self, bundles: list[BundleOnDisk]) -> RunResult:
        """Print-only: reads the log if there is one, writes nothing, takes no lock."""
        result = RunResult()
        with connect(self.dsn, self.env.name, network_timeout=self.env.network_seconds) as conn:
            privileges.readable(conn, self.schema, privileges.backup_schemas(bundles), "apply --dry-run")
            trust.verify(conn, self.schema, privileges.backup_schemas(bundles), self.config.owners,
                         "read the history", writing=False)
            log = history.read_log(conn, self.schema)
        self.check_integrity(load_bundles(self.config.generated), log)
        for bundle in bundles:
            if _state(log, bundle) in APPLIED:
                continue
            result.planned.append((bundle.label, _describe(bundle.forward)))
        return result

    # --- rollback -----------------------------------------------------------------------

    def rollback(self, *, to: str, yes: bool = False, include_baseline: bool = False,
                 include_baseline_rawsql: bool = False) -> RunResult:
        """Roll back every touched version above ``to``, newest first.

        Refuses before any change (UsageError, exit 2) when a target was recorded by ``baseline``
        and ``include_baseline`` is not set, or when such a target's rollback runs RawSQL and
        ``include_baseline_rawsql`` is not set: a baselined version never ran, so what its rollback
        removes existed before dbdeploy. A failed or interrupted version whose bundle changed since
        it ran is rolled back with the rollback file stored when it ran.
        """
        bundles = self._bundles()
        if self.env.protected and not yes:
            raise UsageError(f"environment {self.env.name!r} is protected: pass --yes to roll back (nothing was run)")
        result = RunResult()
        with self._session() as conn:
            key = self._locked(conn)
            try:
                self._preflight(conn, bundles, "rollback", lambda log: [
                    b for b in reversed(bundles) if int(b.version) > int(to) and _state(log, b) in TOUCHED])
                history.ensure_history(conn, self.schema, owners=self.config.owners)
                self._record_interruptions(conn)
                log = history.read_log(conn, self.schema)
                stored = self._stored_rollbacks(conn, bundles, log, to)
                self.check_integrity(bundles, log, frozenset(stored))
                targets = [b for b in reversed(bundles) if int(b.version) > int(to) and _state(log, b) in TOUCHED]
                targets += [b for b in self._orphans(stored, bundles, log)]
                targets.sort(key=lambda b: -int(b.version))
                self._refuse_baseline(targets, log, stored, include_baseline, include_baseline_rawsql)
                if include_baseline:
                    conn.execute("SELECT pg_catalog.set_config('dbdeploy.rollback_baseline', 'on', false)")
                if include_baseline_rawsql:
                    conn.execute("SELECT pg_catalog.set_config('dbdeploy.rollback_baseline_rawsql', 'on', false)")
                if not targets:
                    self.progress(Message(f"{self.env.name}: nothing to roll back above V{to}"))
                for bundle in targets:
                    script = stored.get(history.int_key(bundle.version))
                    self._rollback_one(conn, bundle, script)
                    result.rolled_back.append(bundle.label)
            finally:
                self._unlock(conn, key)
        return result

    def _stored_rollbacks(self, conn, bundles: list[BundleOnDisk], log: dict[str, history.LogRow],
                          to: str) -> dict[str, tuple[str, Script]]:
        """Unfinished versions above ``to`` whose bundle changed (or went missing) since they ran,
        with the rollback stored when they ran: {key: (file name, script)}."""
        by_version = {history.int_key(b.version): b for b in bundles}
        found = {}
        for key, row in log.items():
            if row.status not in UNFINISHED or int(key) <= int(to) or not row.checksum:
                continue
            bundle = by_version.get(key)
            if bundle is not None and bundle.checksum == row.checksum:
                continue
            kept = history.stored_rollback(conn, self.schema, row.version, row.checksum)
            if kept is not None:
                found[key] = (kept[0], parse_script(kept[1]))
        return found

    def _orphans(self, stored: dict, bundles: list[BundleOnDisk], log: dict[str, history.LogRow]) -> list:
        """Stand-ins for unfinished versions whose bundle folder is gone but whose rollback is stored."""
        present = {history.int_key(b.version) for b in bundles}
        return [_StoredBundle(log[key].version, name) for key, (name, _script) in stored.items()
                if key not in present]

    def _refuse_baseline(self, targets: list, log: dict[str, history.LogRow], stored: dict,
                         include_baseline: bool, include_baseline_rawsql: bool) -> None:
        baselined = [b for b in targets if _state(log, b) == "baseline"]
        if not baselined:
            return
        labels = ", ".join(b.label for b in baselined)
        if not include_baseline:
            raise UsageError(
                f"{labels} {'was' if len(baselined) == 1 else 'were'} recorded by `dbdeploy baseline`, never run by "
                "dbdeploy: what a rollback would remove existed before dbdeploy, so nothing was run. A wrong "
                "baseline is repaired with `dbdeploy history forget --version V`; to roll back anyway pass "
                "--include-baseline")
        raw = [b.label for b in baselined if any(step.kind == "raw_sql" for step in b.rollback.steps)]
        if raw and not include_baseline_rawsql:
            raise UsageError(
                f"{', '.join(raw)} {'was' if len(raw) == 1 else 'were'} recorded by `dbdeploy baseline` and "
                f"{'its' if len(raw) == 1 else 'their'} rollback runs RawSQL written by hand, which would drop "
                "objects that existed before dbdeploy; nothing was run. Use `dbdeploy history forget --version V` "
                "to repair the history, or pass --include-baseline-rawsql as well to run that SQL")

    def _rollback_one(self, conn, bundle, stored: tuple[str, Script] | None = None) -> None:
        runner = self._runner(conn, bundle.label, bundle.version, "rollback")
        script = stored[1] if stored else bundle.rollback
        if stored:
            self.progress(Message(f"{bundle.label}: rolling back with {stored[0]} as stored when it ran (the bundle "
                                  "in generated/ changed since)", "warning"))
        self.progress(Message(f"rolling back {bundle.label} {bundle.name} ({len(script.steps)} steps)"))
        try:
            runner.apply_session_settings()
            runner.run_plain(script.preamble)
            rows = runner.run_steps(script, lambda outcome: history.record_step(
                conn, self.schema, version=bundle.version, direction="rollback", step=outcome.step,
                started=outcome.started, ended=outcome.ended, rows=outcome.rows, attempts=outcome.attempts,
                environment=self.env.name))
            runner.run_plain(script.postamble)
            self._doing = (bundle.label, bundle.version, "rollback", None, "(bookkeeping after its last step)")
        except StepFailed as exc:
            if is_lost(conn):
                raise
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            if exc.step is not None and exc.step.kind == "rollback_preflight":
                # The first step refused: its transaction is rolled back, nothing changed (the status too).
                self._event(conn, bundle.version, "rollback_refused", statement=exc.statement,
                            error=redact(str(exc.error).strip(), self.dsn))
                raise MigrationFailed(f"rollback of {bundle.label} refused before any change: "
                                      f"{redact(str(exc), self.dsn)}. Nothing was changed; {bundle.label} stays "
                                      f"{_state(history.read_log(conn, self.schema), bundle)}. Fix the cause and run "
                                      "rollback again") from None
            self._event(conn, bundle.version, "rollback_fail", statement=exc.statement,
                        error=redact(str(exc.error).strip(), self.dsn))
            raise MigrationFailed(f"rollback of {bundle.label}: {redact(str(exc), self.dsn)}; it stays rolling_back. "
                                  "Fix the cause and run rollback again") from None
        self._event(conn, bundle.version, "rollback", rows_affected=rows,
                    details={"stored_rollback": stored[0]} if stored else None)
        self._doing = None

    # --- baseline -----------------------------------------------------------------------

    def baseline(self, *, version: str, yes: bool = False, partial: bool = False) -> RunResult:
        """Record versions up to ``version`` as applied without running them — only if the database
        holds what their bundles would make (the manifests' expectations, checked like ``verify``).

        A difference refuses the whole baseline (IntegrityError, exit 3) listing each one; with
        ``partial`` the longest run of versions whose expectations all hold is recorded instead
        (still exit 3 when not even the first one matches). Nothing is recorded in
        ``migration_objects``: a baselined version created nothing, so its rollback claims nothing.
        """
        from dbdeploy.executor.inspect import expectation_problems

        bundles = self._bundles()
        if self.env.protected and not yes:
            raise UsageError(f"environment {self.env.name!r} is protected: pass --yes to baseline (nothing was run)")
        result = RunResult()
        with self._session() as conn:
            key = self._locked(conn)
            try:
                self._preflight(conn, bundles, "baseline", lambda log: [])
                history.ensure_history(conn, self.schema, owners=self.config.owners)
                log = history.read_log(conn, self.schema)
                self.check_integrity(bundles, log)
                candidates = [b for b in bundles if int(b.version) <= int(version) and _state(log, b) not in APPLIED]
                unfinished = [b.label for b in candidates if _state(log, b) in UNFINISHED]
                if unfinished:
                    raise UsageError(f"{', '.join(unfinished)} ran and did not finish; roll back or apply instead of "
                                     "baseline (nothing was recorded)")
                def differences(versions: list[BundleOnDisk]) -> list[str]:
                    trial = dict(log)
                    for b in versions:
                        trial[history.int_key(b.version)] = history.LogRow(b.version, "baseline", b.checksum,
                                                                           None, None, None, None, None, None)
                    return expectation_problems(conn, bundles, trial, for_baseline=True)

                problems = differences(candidates) if candidates else []
                record = candidates
                if problems and partial:
                    record = next((candidates[:n] for n in range(len(candidates) - 1, 0, -1)
                                   if not differences(candidates[:n])), [])
                if problems and (not partial or not record):
                    raise IntegrityError(
                        f"refusing to baseline up to V{version}: the database does not hold what the bundles would "
                        f"make ({len(problems)} difference(s)); nothing was recorded:\n  " + "\n  ".join(problems)
                        + "\nApply the migrations instead, or baseline a lower --version (--partial records the "
                          "versions that match)")
                for bundle in record:
                    self._record_baseline(conn, bundle)
                    result.applied.append(bundle.label)
                if problems:
                    skipped = [b.label for b in candidates[len(record):]]
                    self.progress(Message(f"baseline --partial: {', '.join(skipped)} not recorded; the database "
                                          "differs from them:\n  " + "\n  ".join(problems), "warning"))
                    result.skipped = skipped
            finally:
                self._unlock(conn, key)
        return result

    def _record_baseline(self, conn, bundle: BundleOnDisk) -> None:
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

    # --- repair -------------------------------------------------------------------------

    def forget(self, *, version: str, yes: bool = False) -> str:
        """Remove a wrongly recorded version from the history (``dbdeploy history forget``).

        For a wrong baseline, or a version that ran with psql and is recorded as failed, interrupted
        or rolled back. Refused for a completed version (it ran: roll it back instead) and for a
        version below another recorded one (the history would have a hole). Records a ``forget``
        event with the removed row. Returns the removed row's status.
        """
        if self.env.protected and not yes:
            raise UsageError(f"environment {self.env.name!r} is protected: pass --yes to change its history "
                             "(nothing was changed)")
        with self._session() as conn:
            key = self._locked(conn)
            try:
                trust.verify(conn, self.schema, privileges.backup_schemas(self._bundles_cached), self.config.owners,
                             "change the history")
                history.ensure_history(conn, self.schema, owners=self.config.owners)
                log = history.read_log(conn, self.schema)
                row = log.get(history.int_key(version))
                if row is None:
                    raise UsageError(f"V{version} is not in the history of {self.env.name}; nothing was changed")
                if row.status == "completed":
                    raise UsageError(f"V{row.version} was applied by dbdeploy (completed): roll it back instead of "
                                     "forgetting it; nothing was changed")
                above = sorted(f"V{r.version}" for k, r in log.items()
                               if int(k) > int(version) and r.status in TOUCHED)
                if above:
                    raise UsageError(f"{', '.join(above)} {'is' if len(above) == 1 else 'are'} recorded above "
                                     f"V{row.version}: forget {'it' if len(above) == 1 else 'them'} first (highest "
                                     "first); nothing was changed")
                owned = conn.execute(sql.SQL("SELECT count(*) FROM {}.migration_objects WHERE version = %s").format(
                    sql.Identifier(self.schema)), [row.version]).fetchone()[0]
                if owned and row.status != "rolled_back":
                    raise UsageError(f"V{row.version} created {owned} object(s) dbdeploy records as its own: roll it "
                                     "back instead of forgetting it; nothing was changed")
                with conn.transaction():
                    history.forget(conn, self.schema, row.version)
                    self._event(conn, row.version, "forget", details={
                        "status": row.status, "checksum": row.checksum, "notes": row.notes,
                        "applied_by": row.applied_by,
                        "applied_at": row.applied_at.isoformat() if row.applied_at else None})
            finally:
                self._unlock(conn, key)
        return row.status


@dataclass(frozen=True)
class _StoredBundle:
    """An unfinished version whose bundle folder is gone; only its stored rollback remains."""

    version: str
    rollback_name: str

    @property
    def label(self) -> str:
        return f"V{self.version}"

    @property
    def name(self) -> str:
        return self.rollback_name


def way_on(label: str, previous: str, env: str) -> str:
    """The documented way on after a failed version (README "When a migration fails")."""
    where = "" if env == "dev" else f" --env {env}"
    return (f"The way on (README \"When a migration fails\"):\n"
            f"  1. dbdeploy rollback --to {previous}{where}   undoes what {label} did, with the rollback file stored "
            "when it ran\n"
            f"  2. fix the spec (or the data), then: dbdeploy generate\n"
            f"  3. dbdeploy apply{where}")


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
