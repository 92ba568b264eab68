"""The embedded development PostgreSQL (pgserver), started on demand and reused across runs."""

from __future__ import annotations

import warnings
from pathlib import Path

from dbdeploy.errors import ConfigError


def embedded_dsn(datadir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in ``datadir``; return its DSN."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise ConfigError(
            "no database configured and the embedded PostgreSQL is not installed; "
            "install it with pip install 'dbdeploy[embedded]', or pass --dsn / configure an environment"
        ) from None
    datadir = Path(datadir).resolve()
    if len(str(datadir)) > 90:
        raise ConfigError(f"the embedded PostgreSQL's folder {datadir} is too long a path for its socket; "
                          "run dbdeploy from a shorter path or configure a dsn")
    datadir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(datadir, cleanup_mode=None)
    return server.get_uri()
