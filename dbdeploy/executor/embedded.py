"""The embedded development PostgreSQL (pgserver), started on demand and reused across runs."""

from __future__ import annotations

from pathlib import Path

from dbdeploy.errors import ConfigError
from dbdeploy.optional import require


def embedded_dsn(datadir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in ``datadir``; return its DSN."""
    pgserver = require("pgserver", "the embedded PostgreSQL (no dsn is configured for this environment)",
                       alternative="pass --dsn or configure the environment's dsn in dbdeploy.toml")
    datadir = Path(datadir).resolve()
    if len(str(datadir)) > 90:
        raise ConfigError(f"the embedded PostgreSQL's folder {datadir} is too long a path for its socket; "
                          "run dbdeploy from a shorter path or configure a dsn")
    datadir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(datadir, cleanup_mode=None)
    return server.get_uri()
