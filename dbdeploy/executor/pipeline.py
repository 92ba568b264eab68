"""`dbdeploy test`: the seed's CI pipeline as one command, on a scratch database.

For every bundle in order: apply it, run its generated tests. Then newest first: roll it back,
run its rolled-back tests. Then apply everything again, testing each version again. Each
version's tests run right after that version is applied, because later migrations may change
what it created. The scratch database is dropped afterwards unless --keep.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbdeploy.errors import DbdeployError, UsageError
from dbdeploy.executor import history, privileges, trust
from dbdeploy.executor.bundles import BundleOnDisk, load_bundles
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.connection import connect, display_dsn, redact
from dbdeploy.executor.deploy import Deployment
from dbdeploy.executor.progress import Message, ProgressCallback, ignore
from dbdeploy.optional import require

PHASES = ("apply", "rollback", "re-apply")

_PYTEST_INI = """[pytest]
markers =
    rolled_back: checks the state after the bundle was rolled back
"""


@dataclass
class PhaseResult:
    label: str
    phase: str
    passed: bool
    detail: str = ""


@dataclass
class PipelineResult:
    results: list[PhaseResult] = field(default_factory=list)
    scratch: str = ""
    kept: bool = False

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)


def _scratch_dsn(admin_dsn: str, name: str) -> str:
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = name
    return make_conninfo(**params)


def run_pipeline(config: Config, env: Environment, admin_dsn: str, *, keep: bool = False,
                 progress: ProgressCallback = ignore, existing: bool = False) -> PipelineResult:
    """Apply, roll back and re-apply every bundle, running its generated tests after each phase.

    By default on a scratch database created on ``admin_dsn``'s server (the role needs CREATEDB;
    PrivilegeError, exit 4, before anything is created otherwise). With ``existing`` the database
    ``admin_dsn`` names is used instead — for a least-privilege role: it must hold no applied
    version (UsageError otherwise) and is rolled back to version 0 afterwards unless ``keep``.
    """
    require("pytest", "dbdeploy test (it runs every bundle's generated tests with pytest)")
    bundles = load_bundles(config.generated)
    missing = [b.label for b in bundles if not _test_file(b).is_file()]
    if missing:
        raise DbdeployError(f"no generated test file for {', '.join(missing)}; run `dbdeploy generate`")
    if existing:
        return _run_existing(config, env, admin_dsn, bundles, keep=keep, progress=progress)
    name = f"dbdeploy_test_{secrets.token_hex(4)}"
    with connect(admin_dsn, env.name, network_timeout=env.network_seconds) as admin:
        privileges.scratch_database(admin)
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    scratch = _scratch_dsn(admin_dsn, name)
    outcome = PipelineResult(scratch=display_dsn(scratch), kept=keep)
    progress(Message(f"scratch database {name} created"))
    scratch_env = Environment(name=f"{env.name}-scratch", dsn=scratch, lock_timeout=env.lock_timeout,
                              concurrent_lock_timeout=env.concurrent_lock_timeout,
                              statement_timeout=env.statement_timeout, retries=env.retries,
                              network_timeout=env.network_timeout, scan_timeout=env.scan_timeout,
                              batch_time=env.batch_time)
    deployment = Deployment(config=config, env=scratch_env, dsn=scratch, progress=progress)
    try:
        with tempfile.TemporaryDirectory(prefix="dbdeploy-test-") as ini_dir:
            ini = Path(ini_dir) / "pytest.ini"
            ini.write_text(_PYTEST_INI)
            _run(outcome, deployment, bundles, ini, scratch, progress)
    finally:
        if not keep:
            with connect(admin_dsn, env.name, network_timeout=env.network_seconds) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            progress(Message(f"scratch database {name} dropped"))
    return outcome


def _run_existing(config: Config, env: Environment, dsn: str, bundles: list[BundleOnDisk], *, keep: bool,
                  progress: ProgressCallback) -> PipelineResult:
    """The pipeline in an existing database that dbdeploy has not deployed to (every version
    pending or rolled back), left rolled back to version 0 afterwards unless ``keep``."""
    if env.protected:
        raise UsageError(f"environment {env.name!r} is protected: dbdeploy test --existing applies and rolls back "
                         "every bundle there; point --dsn at an empty database made for the tests (nothing was run)")
    with connect(dsn, env.name, network_timeout=env.network_seconds) as conn:
        privileges.readable(conn, config.history_schema, privileges.backup_schemas(bundles), "dbdeploy test")
        trust.verify(conn, config.history_schema, privileges.backup_schemas(bundles), config.owners,
                     "read the history", writing=False)
        privileges.temporary_tables(conn)
        log = history.read_log(conn, config.history_schema)
    deployed = sorted((r.version for r in log.values() if r.status != "rolled_back"), key=int)
    if deployed:
        raise UsageError(f"dbdeploy test --existing needs a database without applied versions, but "
                         f"{display_dsn(dsn)} has V{', V'.join(deployed)} (in {config.history_schema}.migration_log); "
                         "use an empty database made for the tests (nothing was run)")
    outcome = PipelineResult(scratch=display_dsn(dsn), kept=keep)
    test_env = Environment(name=f"{env.name}-test", dsn=dsn, lock_timeout=env.lock_timeout,
                           concurrent_lock_timeout=env.concurrent_lock_timeout,
                           statement_timeout=env.statement_timeout, retries=env.retries,
                           network_timeout=env.network_timeout, scan_timeout=env.scan_timeout,
                           batch_time=env.batch_time)
    deployment = Deployment(config=config, env=test_env, dsn=dsn, progress=progress)
    with tempfile.TemporaryDirectory(prefix="dbdeploy-test-") as ini_dir:
        ini = Path(ini_dir) / "pytest.ini"
        ini.write_text(_PYTEST_INI)
        _run(outcome, deployment, bundles, ini, dsn, progress)
    if not keep:
        try:
            deployment.rollback(to="0")
            progress(Message("every bundle rolled back again: the database is ready for the next run"))
        except DbdeployError as exc:
            outcome.results.append(PhaseResult("cleanup", "rollback --to 0", False, redact(str(exc), dsn)))
    return outcome


def _run(outcome: PipelineResult, deployment: Deployment, bundles: list[BundleOnDisk], ini: Path, dsn: str,
         progress: ProgressCallback) -> None:
    versions = [b.version for b in bundles]
    for phase in PHASES:
        order = list(reversed(bundles)) if phase == "rollback" else bundles
        for bundle in order:
            try:
                if phase == "rollback":
                    previous = versions.index(bundle.version)
                    deployment.rollback(to=versions[previous - 1] if previous else "0")
                else:
                    deployment.apply(to=bundle.version)
            except DbdeployError as exc:
                outcome.results.append(PhaseResult(bundle.label, phase, False, redact(str(exc), dsn)))
                return     # what follows would run on a state nobody intended
            result = _pytest(bundle, phase, ini, dsn)
            progress(Message(f"{bundle.label} {phase}: tests {'passed' if result.passed else 'FAILED'}"))
            outcome.results.append(result)


def _test_file(bundle: BundleOnDisk) -> Path:
    return bundle.folder / f"test_{bundle.folder.name}.py"


def _pytest(bundle: BundleOnDisk, phase: str, ini: Path, dsn: str) -> PhaseResult:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ini),
            "--rootdir", str(bundle.folder), str(_test_file(bundle))]
    if phase == "rollback":
        args += ["-m", "rolled_back"]
    environ = dict(os.environ, DBDEPLOY_TEST_DSN=dsn)
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=environ, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        return PhaseResult(bundle.label, phase, False, "the generated tests did not finish in 30 minutes")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "E   ", "ERROR"))]
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode and not lines:   # pytest did not get to run the tests: its own error is the reason
        lines = [*proc.stdout.strip().splitlines()[-10:], *proc.stderr.strip().splitlines()[-10:]]
        summary = f"pytest exited with code {proc.returncode}"
    detail = "\n".join([*lines[:20], summary]) if proc.returncode else summary
    return PhaseResult(bundle.label, phase, proc.returncode == 0, redact(detail, dsn))

