"""Run one bundle script (forward or rollback) step by step on one connection.

``tx=step`` steps run in one transaction; ``tx=none`` steps run statement by statement in
autocommit. A statement that fails on a lock (SQLSTATE 55P03 lock_not_available, 40P01
deadlock) is retried with exponential backoff and jitter, the whole step again, up to the
environment's ``retries``; lock_timeout keeps each wait — and so the queue it causes behind
it — short. Batched steps (Backfill, DropColumn's copy and restore) are driven batch by batch
here so progress can be reported, each batch sized to take about the environment's ``batch_time``
by the loop contract the bundle's PL/pgSQL loop follows too (:mod:`dbdeploy.bundle.markers`).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import errors

from dbdeploy.bundle.markers import BATCH_ROWS_SETTING, next_batch_rows
from dbdeploy.executor.bundles import ExecStep, Script
from dbdeploy.executor.progress import (
    BackfillProgress,
    IndexProgress,
    Message,
    ProgressCallback,
    StepFinished,
    StepStarted,
)
from dbdeploy.sql.psql import PsqlScriptError
from dbdeploy.sql.psql import statements as psql_statements

RETRYABLE = (errors.LockNotAvailable, errors.DeadlockDetected)
# Locks that block no reads or writes while requested or held (concurrent builds, VALIDATE).
NON_BLOCKING_LOCKS = ("SHARE UPDATE EXCLUSIVE", "ACCESS SHARE", "NONE")
# Steps that scan a whole table in one statement (no batching bounds them): they run under the
# environment's scan_timeout as their statement_timeout.
SCAN_KINDS = ("validate_constraint", "create_index", "create_unique_index")


class StepFailed(Exception):
    def __init__(self, step: ExecStep | None, statement: str, error: BaseException, attempts: int,
                 note: str = "") -> None:
        self.step = step
        self.statement = statement
        self.error = error
        self.attempts = attempts
        where = f"step {step.number} ({step.kind} {step.target})" if step else "bookkeeping"
        super().__init__(f"{where} failed after {attempts} attempt(s): {_first_line(error)}{note}")


def _words(statement: str) -> tuple[str, ...]:
    """The statement's unquoted words in lower case, as PostgreSQL's lexer finds them (never text
    inside a string, dollar quote or comment): kept from the bundle's split, else lexed here."""
    words = getattr(statement, "words", None)
    if words is None:
        try:
            words = tuple(w for s in psql_statements(statement) for w in s.words)
        except PsqlScriptError:
            words = ()
    return words


def _first_words(statement: str, n: int) -> tuple[str, ...]:
    """``_words(statement)[:n]``, from the bundle's statement index when it recorded them (no lexer)."""
    first = getattr(statement, "first_words", None)
    return first(n) if first is not None else _words(statement)[:n]


def _builds_index_concurrently(statement: str) -> bool:
    """True if the statement's words hold ``concurrently`` and ``index`` (CREATE INDEX CONCURRENTLY)."""
    known = getattr(statement, "builds_index_concurrently", None)
    if known is not None:
        return known
    words = _words(statement)
    return "concurrently" in words and "index" in words


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    diag = getattr(error, "diag", None)
    hint = getattr(diag, "message_hint", None) if diag else None
    return text.splitlines()[0] + (f" (hint: {hint})" if hint else "") if text else type(error).__name__


@dataclass
class StepOutcome:
    step: ExecStep
    started: datetime
    ended: datetime
    rows: int
    attempts: int


class ScriptRunner:
    def __init__(self, conn: psycopg.Connection, *, label: str, retries: int, lock_timeout: str,
                 statement_timeout: str, progress: ProgressCallback, backoff_base: float = 0.2,
                 backoff_cap: float = 5.0, concurrent_lock_timeout: str | None = None,
                 scan_timeout: str | None = None, batch_time: float = 0.05) -> None:
        self.conn = conn
        # seconds one batch of a batched step should take up to its commit (0: always batch_size rows)
        self.batch_time = batch_time
        self.scan_timeout = scan_timeout
        self.current: ExecStep | None = None
        self.label = label
        self.retries = retries
        self.lock_timeout = lock_timeout
        self.concurrent_lock_timeout = concurrent_lock_timeout or lock_timeout
        self._current_timeout: str | None = None
        self.statement_timeout = statement_timeout
        self.progress = progress
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    # --- session ------------------------------------------------------------------------

    def apply_session_settings(self) -> None:
        self._set_lock_timeout(self.lock_timeout)
        self.conn.execute(psycopg.sql.SQL("SET statement_timeout = {}").format(
            psycopg.sql.Literal(self.statement_timeout)))

    def run_plain(self, statements: tuple[str, ...]) -> None:
        """Preamble/postamble statements: autocommit, retried on lock errors like steps."""
        for statement in statements:
            if _first_words(statement, 2) == ("set", "lock_timeout"):
                continue  # the environment's lock_timeout applies, not the bundle's default
            self._with_retries(None, lambda s=statement: self._execute(s))

    # --- steps --------------------------------------------------------------------------

    def run_steps(self, script: Script, on_step_done) -> int:
        total_rows = 0
        for step in script.steps:
            self.current = step
            self.progress(StepStarted(self.label, step.number, len(script.steps), step.kind, step.target,
                                      step.summary, step.lock))
            started = datetime.now(UTC)
            clock = time.monotonic()
            rows, attempts = self.run_step(step)
            outcome = StepOutcome(step, started, datetime.now(UTC), rows, attempts)
            self.progress(StepFinished(self.label, step.number, time.monotonic() - clock, rows, attempts))
            on_step_done(outcome)
            total_rows += rows
        self.current = None
        return total_rows

    def _set_lock_timeout(self, value: str) -> None:
        if value != self._current_timeout:
            self.conn.execute(psycopg.sql.SQL("SET lock_timeout = {}").format(psycopg.sql.Literal(value)))
            self._current_timeout = value

    def run_step(self, step: ExecStep) -> tuple[int, int]:
        self._set_lock_timeout(self.concurrent_lock_timeout if step.lock in NON_BLOCKING_LOCKS
                               else self.lock_timeout)
        if step.batch is not None:
            return self._run_backfill(step)
        scan = step.kind in SCAN_KINDS and self.scan_timeout is not None
        if scan:
            self._set_statement_timeout(self.scan_timeout)
        try:
            if step.transactional:
                return self._with_retries(step, lambda: self._run_transaction(step))
            return self._with_retries(step, lambda: self._run_autocommit(step))
        finally:
            if scan and not (self.conn.closed or self.conn.broken) and \
                    self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                self._set_statement_timeout(self.statement_timeout)

    def _set_statement_timeout(self, value: str) -> None:
        self.conn.execute(psycopg.sql.SQL("SET statement_timeout = {}").format(psycopg.sql.Literal(value)))

    def _execute(self, statement: str) -> int:
        """Send one statement as psql would; COPY FROM STDIN gets the data psql reads after it."""
        data = getattr(statement, "copy_data", None)
        if data is not None or getattr(statement, "copy_out", False):
            with self.conn.cursor() as cursor:
                with cursor.copy(statement) as copy:
                    if data is not None:
                        copy.write(data)
                    else:
                        for _ in copy:
                            pass   # psql prints COPY … TO STDOUT; nothing to keep here
                return max(cursor.rowcount, 0)
        cursor = self.conn.execute(statement)
        return max(cursor.rowcount, 0)

    def _run_transaction(self, step: ExecStep) -> int:
        rows = 0
        with self.conn.transaction():
            for statement in step.statements:
                self._current = statement
                rows += self._execute(statement)
        return rows

    def _run_autocommit(self, step: ExecStep) -> int:
        rows = 0
        for statement in step.statements:
            self._current = statement
            if _builds_index_concurrently(statement):
                rows += self._with_index_monitor(step, statement)
            else:
                rows += self._execute(statement)
        return rows

    def _with_retries(self, step: ExecStep | None, action) -> tuple[int, int]:
        attempt = 0
        self._current = ""
        while True:
            attempt += 1
            try:
                return action(), attempt
            except RETRYABLE as exc:
                self._pin_search_path()
                if attempt > self.retries:
                    raise StepFailed(step, self._current, exc, attempt) from exc
                delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                what = f"step {step.number} ({step.kind})" if step else "bookkeeping"
                self.progress(Message(f"{self.label} {what}: {_first_line(exc)}; retry {attempt}/{self.retries} "
                                      f"in {delay:.2f}s", "warning"))
                time.sleep(delay)
            except psycopg.Error as exc:
                self._pin_search_path()
                note = ""
                if isinstance(exc, errors.QueryCanceled) and step is not None and step.kind in SCAN_KINDS \
                        and self.scan_timeout not in (None, "0"):
                    note = (f" (scan_timeout {self.scan_timeout}: this step scans the whole table in one statement; "
                            "if it needs longer, raise scan_timeout for the environment in dbdeploy.toml)")
                raise StepFailed(step, self._current, exc, attempt, note) from exc

    def _pin_search_path(self) -> None:
        """After a failed statement, pin the search_path again: a RawSQL step in autocommit sets its
        declared path until its last statement, so a failure in between would leave it in force for
        what runs next on this connection (failure bookkeeping, retries). psql stops there anyway."""
        if not self.conn.broken and self.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute("SET search_path = pg_catalog, pg_temp")

    # --- backfill -----------------------------------------------------------------------

    def _estimate_rows(self, table: str) -> int:
        schema, _, name = table.partition(".")
        row = self.conn.execute(
            "SELECT c.reltuples::bigint FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s", [schema, name]).fetchone()
        if row is None:
            return 0
        if row[0] > 0:
            return int(row[0])
        ident = psycopg.sql.Identifier(schema, name)
        return int(self.conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0])

    def _set_batch_rows(self, step: ExecStep, rows: int) -> None:
        """The loop contract (:mod:`dbdeploy.bundle.markers`): the batch statement reads its row count
        from ``dbdeploy.batch_rows``, set for the session as the bundle's PL/pgSQL loop sets it."""
        def assign() -> int:
            self._current = f"SELECT pg_catalog.set_config('{BATCH_ROWS_SETTING}', '{rows}', false)"
            self.conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", [BATCH_ROWS_SETTING, str(rows)])
            return 0

        self._with_retries(step, assign)

    def _run_backfill(self, step: ExecStep) -> tuple[int, int]:
        """Run the step's batch statement until it sees no row, one autocommit transaction per batch.

        The first batch has the marker's ``rows=`` (the spec's ``batch_size``); each batch is timed
        up to its commit (``time.monotonic()``, the successful attempt only) and the next one's row
        count follows :func:`dbdeploy.bundle.markers.next_batch_rows` for the environment's
        ``batch_time`` — the rule the bundle's PL/pgSQL loop applies under psql. A bundle of an older
        dbdeploy (no ``rows=``) has its row count built into the statement. Reports
        :class:`BackfillProgress` after every batch; returns (rows changed, most attempts of a batch).
        """
        total = self._estimate_rows(step.target)
        done = changed = batches = 0
        attempts_max = 1
        clock = time.monotonic()
        rows, rows_set = step.batch_rows, None
        while True:
            if rows is not None and rows != rows_set:
                self._set_batch_rows(step, rows)
                rows_set = rows
            took = 0.0

            def one_batch() -> tuple[int, int]:
                nonlocal took
                self._current = step.batch
                started = time.monotonic()
                result = self.conn.execute(step.batch).fetchone()
                took = time.monotonic() - started
                return result

            (seen, batch_changed), attempts = self._with_retries(step, one_batch)
            attempts_max = max(attempts_max, attempts)
            if seen == 0:
                break
            done += seen
            changed += batch_changed
            batches += 1
            elapsed = max(time.monotonic() - clock, 1e-6)
            self.progress(BackfillProgress(self.label, step.number, done, max(total, done), done / elapsed,
                                           batches=batches, batch_rows=seen))
            if rows is not None:
                rows = next_batch_rows(rows, took, self.batch_time, step.batch_rows)
        return changed, attempts_max

    # --- index build progress -----------------------------------------------------------

    def _with_index_monitor(self, step: ExecStep, statement: str) -> int:
        pid = self.conn.info.backend_pid
        stop = threading.Event()
        params = self.conn.info.get_parameters()
        params.pop("application_name", None)
        password = self.conn.info.password

        def watch() -> None:
            try:
                with psycopg.connect(**params, password=password or None, autocommit=True,
                                     application_name="dbdeploy-progress") as watcher:
                    while not stop.wait(0.2):
                        row = watcher.execute(
                            "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total"
                            " FROM pg_catalog.pg_stat_progress_create_index WHERE pid = %s", [pid]).fetchone()
                        if row:
                            phase, bdone, btotal, tdone, ttotal = row
                            done, total = (bdone, btotal) if btotal else (tdone, ttotal)
                            self.progress(IndexProgress(self.label, step.number, phase, done or 0, total or 0))
            except psycopg.Error:
                return  # progress is best effort; the build itself is what matters

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            return self._execute(statement)
        finally:
            stop.set()
            thread.join(timeout=2)
