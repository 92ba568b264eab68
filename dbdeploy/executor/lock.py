"""The deployment lock: a session-level advisory lock held for the whole run.

PostgreSQL releases it when the session ends, so a killed dbdeploy never leaves a stuck lock
to clear by hand. A second run waits up to ``--lock-wait`` seconds, saying who holds it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import psycopg

from dbdeploy.errors import LockWaitError


def lock_key(history_schema: str) -> int:
    digest = hashlib.sha256(f"dbdeploy:{history_schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def holder(conn: psycopg.Connection, key: int) -> str:
    row = conn.execute(
        "SELECT a.pid, a.application_name, COALESCE(a.client_addr::text, 'local'), a.usename, a.backend_start"
        " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
        " (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1", [key]).fetchone()
    if row is None:
        return "another session"
    pid, app, addr, user, since = row
    name = app or "no application name"
    return f"pid {pid} ({name}, user {user}, from {addr}, connected {since:%Y-%m-%d %H:%M:%S%z})"


def acquire(conn: psycopg.Connection, key: int, wait_seconds: float,
            on_wait: Callable[[str], None] | None = None) -> None:
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        if conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
            return
        who = holder(conn, key)
        if not told and on_wait:
            on_wait(f"waiting up to {wait_seconds:g}s for the deployment lock held by {who}")
            told = True
        if time.monotonic() >= deadline:
            raise LockWaitError(f"another dbdeploy run holds the deployment lock: {who}; waited {wait_seconds:g}s "
                                "(retry later, or raise --lock-wait)")
        time.sleep(0.2)


def release(conn: psycopg.Connection, key: int) -> None:
    conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [key])
