"""Connections: application_name set, passwords never shown, dead peers detected within a bound.

Passwords: a DSN is only ever shown parsed (psycopg's ``conninfo_to_dict``) with its password
replaced by ``***``; a DSN that does not parse — or that parses into something other than what
its author meant, like a URI with an unencoded ``@`` in the password — is never shown at all
(:func:`dsn_problem`). Every message that may echo a DSN goes through :func:`redact`.

Dead peers (``network_timeout``, README "Configuration"): libpq TCP keepalives and
``tcp_user_timeout`` on the client, the same keepalives plus ``idle_session_timeout`` /
``idle_in_transaction_session_timeout`` on the server session, and a :class:`Watchdog` that,
while a statement runs, asks the server over a second connection whether it is still working on
it. None of them limits how long a statement may run.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from dbdeploy.errors import ConfigError, DbdeployError

APPLICATION_NAME = "dbdeploy"
DEFAULT_NETWORK_TIMEOUT = 30.0
"""Seconds (the ``network_timeout`` default, "30s")."""
IDLE_MARGIN = 10.0
"""Seconds added to the server's ``idle_session_timeout`` beyond ``network_timeout``: dbdeploy's
own pauses between statements (lock-retry backoff, at most 5 s) must never end its session."""

_PASSWORD_KEYS = ("password", "sslpassword")
_KNOWN_SECRETS: set[str] = set()


# --- passwords ----------------------------------------------------------------------------


def _uri_authority(dsn: str) -> str | None:
    match = re.match(r"\s*postgres(?:ql)?://([^/?#]*)", dsn)
    return match.group(1) if match else None


def dsn_problem(dsn: str) -> str | None:
    """Why ``dsn`` cannot be used or shown safely (None when it parses cleanly).

    The reason never quotes the DSN: it is about its shape (a key/value value with an unquoted
    space, an unencoded ``@``), so it can be printed.
    """
    authority = _uri_authority(dsn)
    if authority is not None and authority.count("@") > 1:
        return ("its user or password contains an unencoded '@' (a URI needs %40 for '@', and %-encoding "
                "for ':', '/', '?', '#' in the user and password)")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return ("it does not parse as a libpq connection string (key/value values with spaces or quotes need "
                "single quotes, e.g. password='a b'; a URI needs %-encoding of special characters)")
    if any("@" in str(params.get(key) or "") for key in ("host", "hostaddr")):
        return "its host contains '@' (an unencoded '@' in the user or password of a URI?)"
    return None


def secrets_of(dsn: str) -> list[str]:
    """Every text of ``dsn`` that may be (part of) a password, longest first.

    The parsed password, and the raw text it came from — for a DSN that does not parse, or that
    libpq reads differently from what its author meant (``postgresql://u:p@ss@host``): the whole
    user-info part of a URI and its pieces, the value of a ``password=`` query parameter, and the
    words after ``password=`` in a key/value string up to the next ``key=``.
    """
    found: set[str] = set()
    malformed = dsn_problem(dsn) is not None
    with contextlib.suppress(psycopg.ProgrammingError):
        params = conninfo_to_dict(dsn)
        found.update(str(params[k]) for k in _PASSWORD_KEYS if params.get(k))
    authority = _uri_authority(dsn)
    if authority is not None and "@" in authority:
        userinfo = authority.rpartition("@")[0]
        _user, colon, password = userinfo.partition(":")
        if colon:
            found.add(password)
            if malformed:
                found.update(password.split("@"))
    for match in re.finditer(r"[?&](?:ssl)?password=([^&#]*)", dsn):
        found.add(match.group(1))
    for match in re.finditer(r"(?:^|\s)(?:ssl)?password\s*=\s*(.*?)(?=\s+\w+\s*=|\s*$)", dsn):
        raw = match.group(1)
        found.add(raw)
        if malformed:
            found.update(raw.strip("'").split())
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text: str, dsn: str) -> str:
    """``text`` with every password (and password fragment) of ``dsn`` replaced by ``***``."""
    for secret in secrets_of(dsn):
        text = text.replace(secret, "***")
    return text


def redact_known(text: str) -> str:
    """``text`` with the passwords of every DSN this process connected with (or tried) masked:
    the CLI's last line of defence for messages that did not say which DSN they came from."""
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def display_dsn(dsn: str, environment: str | None = None) -> str:
    """``dsn`` as it may be shown: parsed, the password replaced by ``***``; a DSN that does not
    parse cleanly is not shown at all (see :func:`dsn_problem`)."""
    if dsn_problem(dsn):
        return f"the DSN of environment {environment} (not shown)" if environment else "a DSN (not shown)"
    params = conninfo_to_dict(dsn)
    for key in _PASSWORD_KEYS:
        if key in params:
            params[key] = "***"
    return make_conninfo(**params)


def has_password(dsn: str) -> bool:
    """True when ``dsn`` itself carries a password (it would be visible in ``ps`` on a command line)."""
    return bool(secrets_of(dsn))


def check_dsn(dsn: str, where: str) -> None:
    """Refuse (ConfigError, exit 2) a DSN that does not parse cleanly, saying where it came from
    (``where``: "--dsn", "dbdeploy.toml: environments.x.dsn", …) and never what it says."""
    _KNOWN_SECRETS.update(secrets_of(dsn))
    problem = dsn_problem(dsn)
    if problem:
        raise ConfigError(f"{where}: the DSN (not shown) cannot be used: {problem}")


# --- connecting ---------------------------------------------------------------------------


class ConnectError(DbdeployError):
    """The server could not be reached or the session not set up (exit 1); the message names the
    environment and shows the DSN only as :func:`display_dsn` does."""

    exit_code = 1


class ConnectionLost(DbdeployError):
    """The connection broke mid-run (server crash, connection cut, frozen network path).

    Exit code 5: nothing is wrong with the migration; running the same command again resumes.
    """

    exit_code = 5


def client_keepalives(network_timeout: float) -> dict[str, int]:
    """libpq parameters that detect a dead peer within about ``network_timeout`` seconds
    (keepalive probes after idle/3, every idle/9, 3 unanswered → the socket errors; unacknowledged
    sent data errors after ``tcp_user_timeout``). Empty for 0 (disabled)."""
    if network_timeout <= 0:
        return {}
    return {"keepalives": 1, "keepalives_idle": max(1, int(network_timeout / 3)),
            "keepalives_interval": max(1, int(network_timeout / 9)), "keepalives_count": 3,
            "tcp_user_timeout": int(network_timeout * 1000)}


def _server_settings(conn: psycopg.Connection, network_timeout: float) -> None:
    """The server ends this session when dbdeploy is gone: the same keepalives as the client (TCP
    only; ignored on a unix socket), ``tcp_user_timeout``, and idle timeouts (dbdeploy never sits
    idle that long, a frozen or killed dbdeploy does — its deployment lock is released then)."""
    if network_timeout <= 0:
        return
    keep = client_keepalives(network_timeout)
    settings = {"tcp_keepalives_idle": str(keep["keepalives_idle"]),
                "tcp_keepalives_interval": str(keep["keepalives_interval"]),
                "tcp_keepalives_count": str(keep["keepalives_count"]),
                "tcp_user_timeout": str(keep["tcp_user_timeout"]),
                "idle_in_transaction_session_timeout": str(int(network_timeout * 1000))}
    if conn.info.server_version >= 140000:
        settings["idle_session_timeout"] = str(int((network_timeout + IDLE_MARGIN) * 1000))
    for name, value in settings.items():
        conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", [name, value])


def connect(dsn: str, environment: str, network_timeout: float = DEFAULT_NETWORK_TIMEOUT) -> psycopg.Connection:
    """An autocommit connection with dbdeploy's session settings and a :class:`Watchdog`.

    Raises ConfigError (exit 2) for a DSN that does not parse cleanly and ConnectError (exit 1)
    when the server cannot be reached; neither message shows a password.
    """
    check_dsn(dsn, f"the DSN of environment {environment}")
    given = conninfo_to_dict(dsn)
    extra = {k: v for k, v in client_keepalives(network_timeout).items() if k not in given}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = max(2, int(network_timeout or 10))
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME, **extra)
    except psycopg.Error as exc:
        raise ConnectError(f"cannot connect to {display_dsn(dsn, environment)} (environment {environment}): "
                           f"{redact(str(exc).strip(), dsn)}") from None
    try:
        # Whatever search_path the role or database sets, dbdeploy's own queries resolve built-ins in
        # pg_catalog and never in a temporary schema (the bundles set the same path themselves).
        conn.execute("SET search_path = pg_catalog, pg_temp")
        _server_settings(conn, network_timeout)
    except psycopg.Error as exc:
        conn.close()
        raise ConnectError(f"connected to {display_dsn(dsn, environment)} (environment {environment}) but the "
                           f"session could not be set up: {redact(str(exc).strip(), dsn)}") from None
    if network_timeout > 0:
        Watchdog(conn, dsn, network_timeout).start()
    return conn


def is_lost(conn: psycopg.Connection) -> bool:
    """True when ``conn`` can no longer be used (closed or broken by the network or the server)."""
    return conn.closed or conn.broken


def lost_reason(conn: psycopg.Connection) -> str | None:
    """What the watchdog saw when it gave up on ``conn`` (None when it did not)."""
    return getattr(conn, "_dbdeploy_lost_reason", None)


class Watchdog:
    """Detects a dead or frozen path to the server while a statement runs on ``conn``.

    TCP keepalives cannot see a peer that acknowledges packets but forwards nothing (a frozen
    proxy or load balancer), and a statement may legitimately run for hours. So every
    ``network_timeout / 4`` seconds during which ``conn`` waits for a result, the watchdog asks
    the server over a second, short-lived connection what backend ``conn`` is doing:

    - working on a statement (``active``): all is well, however long it takes;
    - gone (the backend ended), or idle with the same ``state_change`` at three samples in a row
      while ``conn`` kept waiting (the answer was lost): the connection is dead;
    - no answer within ``network_timeout`` (connect or query): the path is dead;
    - an error answered by the server (too many connections …): inconclusive, try later.

    A dead connection is shut down at the socket, so the blocked call raises OperationalError at
    once; :func:`lost_reason` says why.
    """

    def __init__(self, conn: psycopg.Connection, dsn: str, network_timeout: float) -> None:
        self.conn = conn
        self.dsn = dsn
        self.timeout = network_timeout
        self.interval = max(0.5, network_timeout / 4)
        self.pid = conn.info.backend_pid

    def start(self) -> None:
        threading.Thread(target=self._loop, name="dbdeploy-watchdog", daemon=True).start()

    def _loop(self) -> None:
        idle_since = None
        idle_count = 0
        while True:
            time.sleep(self.interval)
            if self.conn.closed:
                return
            if self.conn.pgconn.transaction_status != TransactionStatus.ACTIVE:
                idle_since, idle_count = None, 0
                continue
            verdict, state_change = self._probe()
            if self.conn.pgconn.transaction_status != TransactionStatus.ACTIVE:
                idle_since, idle_count = None, 0
                continue
            if verdict == "idle":
                idle_count = idle_count + 1 if state_change == idle_since else 1
                idle_since = state_change
                if idle_count >= 3:
                    self._kill(f"the server finished the statement but its answer did not arrive within "
                               f"{self.interval * 3:g}s (network_timeout {self.timeout:g}s)")
                    return
                continue
            idle_since, idle_count = None, 0
            if verdict in ("gone", "silent", "refused"):
                self._kill({"gone": f"the server ended the session (backend {self.pid} is gone)",
                            "silent": f"the server did not answer within {self.timeout:g}s (network_timeout)",
                            "refused": "the server does not accept connections any more"}[verdict])
                return

    def _probe(self) -> tuple[str, object]:
        """("active" | "idle" | "gone" | "silent" | "refused" | "unknown", state_change)."""
        answer: list = []

        def ask() -> None:
            try:
                with psycopg.connect(self.dsn, autocommit=True, application_name="dbdeploy-watchdog",
                                     connect_timeout=max(2, int(self.timeout)),
                                     **client_keepalives(self.timeout)) as side:
                    row = side.execute("SELECT state, state_change FROM pg_catalog.pg_stat_activity WHERE pid = %s",
                                       [self.pid]).fetchone()
                answer.append(("gone", None) if row is None else
                              ("active" if row[0] in ("active", "fastpath function call") else
                               "idle" if row[0] and row[0].startswith("idle") else "unknown", row[1]))
            except psycopg.Error as exc:
                if getattr(exc, "sqlstate", None):
                    answer.append(("unknown", None))     # the server answered: it is there
                elif "refused" in str(exc):
                    answer.append(("refused", None))
                else:
                    answer.append(("silent", None))
            except Exception:   # noqa: BLE001 - a watchdog never takes the run down by itself
                answer.append(("unknown", None))

        thread = threading.Thread(target=ask, name="dbdeploy-watchdog-probe", daemon=True)
        thread.start()
        thread.join(self.timeout + 1)
        return answer[0] if answer else ("silent", None)

    def _kill(self, reason: str) -> None:
        self.conn._dbdeploy_lost_reason = reason
        with contextlib.suppress(OSError, psycopg.Error):
            fd = self.conn.pgconn.socket
            dup = socket.socket(fileno=os.dup(fd))
            try:
                dup.shutdown(socket.SHUT_RDWR)
            finally:
                dup.close()
