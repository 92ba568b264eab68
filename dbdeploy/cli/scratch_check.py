"""``dbdeploy check``: apply the bundles the specs generate to a throwaway database and report, per
bundle, the first error PostgreSQL raises — with the spec file and line of the operation behind it.

``generate`` refuses what it can know from the specs alone; what only the server knows (a foreign
key to a table a RawSQL never created, a typo in a RawSQL, a CHECK that seeded rows violate, an
index on a function that is not IMMUTABLE) surfaces here instead of as a ``failed`` version on a real
database. The bundles are generated in memory from the specs (``generated/`` is neither read nor
written), written to a temporary folder, and applied with the executor — the same code path as
``dbdeploy apply`` — in a new database ``dbdeploy_check_<random>`` (``CREATE DATABASE … TEMPLATE
template0``) on the embedded development server under ``.dbdeploy/`` (started on demand, its other
databases untouched) or on the server ``--dsn`` names. The scratch database is dropped afterwards,
also when a bundle fails or the run is interrupted (Ctrl-C). No configured environment is used.

Bundles run in version order; after the first bundle that fails (or is skipped because it needs an
extension the server does not offer) the later ones are reported as not checked, since they build
on it. With ``rollback`` every applied bundle is also rolled back newest first and applied again.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbdeploy.errors import DbdeployError, Stopped, UsageError
from dbdeploy.executor import privileges
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.connection import connect, redact
from dbdeploy.executor.deploy import Deployment
from dbdeploy.executor.progress import Message, ProgressCallback, ignore
from dbdeploy.executor.runner import StepFailed

SCRATCH_PREFIX = "dbdeploy_check_"
_MISSING_EXTENSION = re.compile(r'extension "([^"]+)" is not available|could not open extension control file')


@dataclass
class BundleCheck:
    """What happened to one bundle. ``status``: ``pass``, ``fail``, ``skipped`` (needs an extension the
    server lacks; ``reason`` says which) or ``not checked`` (an earlier bundle failed or was skipped).
    For a failure: ``phase`` (apply, rollback, re-apply), ``step`` ("3 add_foreign_key public.orders"
    or "bookkeeping"), ``spec`` ("specs/V002_x.py line 14 (operations[2] AddForeignKey)") when the
    step comes from an operation, ``error`` (PostgreSQL's message, SQLSTATE, detail and hint),
    ``statement`` (its first line) and ``sql_line`` (where the statement is in the bundle file)."""

    label: str
    name: str
    status: str = "pass"
    phase: str = ""
    step: str = ""
    spec: str = ""
    error: str = ""
    statement: str = ""
    sql_line: str = ""
    reason: str = ""

    def lines(self) -> list[str]:
        """The report lines for this bundle (first line: label, name and status)."""
        if self.status == "pass":
            return [f"{self.label} {self.name}: pass"]
        if self.status in ("skipped", "not checked"):
            return [f"{self.label} {self.name}: {self.status} — {self.reason}"]
        out = [f"{self.label} {self.name}: FAIL ({self.phase})"]
        if self.spec:
            out.append(f"  spec:      {self.spec}")
        out.append(f"  step:      {self.step}")
        out.append(f"  error:     {self.error}")
        if self.statement:
            out.append(f"  statement: {self.statement}" + (f" ({self.sql_line})" if self.sql_line else ""))
        return out


@dataclass
class CheckResult:
    bundles: list[BundleCheck] = field(default_factory=list)
    scratch: str = ""

    @property
    def passed(self) -> bool:
        """No bundle failed (skipped and not-checked bundles do not fail the check)."""
        return all(b.status != "fail" for b in self.bundles)


def _scratch_dsn(admin_dsn: str, name: str) -> str:
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = name
    return make_conninfo(**params)


def run_check(config: Config, specs_dir: Path, admin_dsn: str, *, rollback: bool = False,
              progress: ProgressCallback = ignore) -> CheckResult:
    """Generate the bundles of ``specs_dir`` and apply them to a scratch database on ``admin_dsn``'s
    server (see the module docstring). Bad specs raise SpecError/LintError (exit 2) before any
    database is created; a role without CREATEDB raises PrivilegeError (exit 4)."""
    from dbdeploy.lint import lint_migrations, refuse_errors
    from dbdeploy.plan.loader import load_specs
    from dbdeploy.plan.migration_plan import plan_all
    from dbdeploy.render.bundle import render_bundle
    from dbdeploy.render.writer import write

    try:
        conninfo_to_dict(admin_dsn)
    except psycopg.ProgrammingError:
        raise UsageError("--dsn is not a valid PostgreSQL connection string (it is not shown, as it may hold a "
                         "password); give e.g. 'host=127.0.0.1 user=postgres dbname=postgres' or a postgresql:// "
                         "URI") from None
    loaded = load_specs(Path(specs_dir))
    refuse_errors(lint_migrations(loaded))
    plans = plan_all(loaded, config.history_schema)
    bundles = [render_bundle(plan, item.source.name, config.history_schema) for plan, item in zip(plans, loaded,
                                                                                                  strict=True)]
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
    with connect(admin_dsn, "check") as admin:
        privileges.scratch_database(admin)
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    result = CheckResult(scratch=name)
    progress(Message(f"scratch database {name} created"))
    try:
        with tempfile.TemporaryDirectory(prefix="dbdeploy-check-") as folder:
            write(bundles, Path(folder))
            scratch = _scratch_dsn(admin_dsn, name)
            env = Environment(name="check", dsn=scratch)
            deployment = Deployment(config=dataclasses.replace(config, generated=Path(folder), specs=Path(specs_dir)),
                                    env=env, dsn=scratch, progress=progress)
            _run(result, deployment, loaded, plans, bundles, scratch, rollback)
    finally:
        # Always: also after a failure, an error of our own or Ctrl-C (KeyboardInterrupt lands here).
        with connect(admin_dsn, "check") as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        progress(Message(f"scratch database {name} dropped"))
    return result


def _run(result: CheckResult, deployment: Deployment, loaded, plans, bundles, dsn: str, rollback: bool) -> None:
    versions = [item.migration.version for item in loaded]
    blocked = ""
    applied: list[int] = []
    for index, (item, plan) in enumerate(zip(loaded, plans, strict=True)):
        migration = item.migration
        check = BundleCheck(f"V{migration.version}", migration.name)
        result.bundles.append(check)
        if blocked:
            check.status, check.reason = "not checked", blocked
            continue
        missing = _missing_extensions(dsn, migration)
        if missing:
            check.status = "skipped"
            check.reason = (f"needs extension(s) {', '.join(missing)}, which the server does not offer "
                            "(pg_available_extensions); check on a server that has them with --dsn")
            blocked = f"it builds on {check.label}, which was skipped"
            continue
        try:
            deployment.apply(to=migration.version)
            applied.append(index)
        except Stopped:
            raise   # a signal: not a failure of the bundle (the scratch database is dropped below)
        except DbdeployError as exc:
            skipped = _describe(check, exc, item, plan, bundles[index], "apply", dsn)
            blocked = f"it builds on {check.label}, which {'was skipped' if skipped else 'failed'}"
    if not rollback or blocked:
        return
    for index in reversed(applied):
        previous = versions[index - 1] if index else "0"
        try:
            deployment.rollback(to=previous)
        except Stopped:
            raise   # a signal: not a failure of the bundle (the scratch database is dropped below)
        except DbdeployError as exc:
            _describe(result.bundles[index], exc, loaded[index], plans[index], bundles[index], "rollback", dsn)
            return
    for index in applied:
        try:
            deployment.apply(to=versions[index])
        except Stopped:
            raise   # a signal: not a failure of the bundle (the scratch database is dropped below)
        except DbdeployError as exc:
            _describe(result.bundles[index], exc, loaded[index], plans[index], bundles[index], "re-apply", dsn)
            return


def _missing_extensions(dsn: str, migration) -> list[str]:
    wanted = sorted({op.name for op in migration.operations if op.kind == "require_extension"})
    if not wanted:
        return []
    with connect(dsn, "check") as conn:
        available = {row[0] for row in conn.execute(
            "SELECT name FROM pg_catalog.pg_available_extensions WHERE name = ANY (%s)", [wanted])}
    return [name for name in wanted if name not in available]


def _describe(check: BundleCheck, exc: DbdeployError, item, plan, bundle, phase: str, dsn: str) -> bool:
    """Fill ``check`` from a failed run; True when the failure is an extension the server lacks (the
    bundle is then reported as skipped)."""
    failed = exc.__context__ if isinstance(exc.__context__, StepFailed) else None
    error = failed.error if failed else exc
    text = _error_text(error, dsn)
    found = _MISSING_EXTENSION.search(str(error))
    if found:
        check.status = "skipped"
        what = f"extension {found.group(1)}" if found.group(1) else "an extension"
        check.reason = (f"needs {what}, which the server does not offer ({text.splitlines()[0]}); check on a "
                        "server that has it with --dsn")
        return True
    check.status, check.phase, check.error = "fail", phase, text
    if failed is None:
        check.step = "before any step"
        check.error = redact(str(exc), dsn)
        return False
    step = failed.step
    check.step = f"{step.number} {step.kind} {step.target} ({step.summary})" if step else "bookkeeping (preamble)"
    statement = (failed.statement or "").strip()
    check.statement = _first_line(statement)
    check.sql_line = _line_in_file(bundle, statement, "rollback" if phase == "rollback" else "forward")
    if step is not None and phase != "rollback" and 0 < step.number <= len(plan.forward_ops):
        op_index = plan.forward_ops[step.number - 1]
        op = item.migration.operations[op_index]
        line = item.op_line(op_index)
        where = f"line {line}" if line else "line unknown"
        if line and op.kind == "raw_sql":
            found = _raw_sql_line(item.source, line, op, statement, getattr(error, "diag", None))
            if found:
                where = f"line {found[0]} (in the RawSQL forward that starts at line {found[1]})"
        check.spec = f"{_shown_path(item.source)} {where} (operations[{op_index}] {type(op).__name__})"
    elif step is not None and phase == "rollback":
        check.spec = (f"{_shown_path(item.source)} (rollback step {step.number}; the rollback undoes the operations "
                      "newest first)")
    return False


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (as the user names it)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _first_line(statement: str) -> str:
    lines = [line for line in statement.splitlines() if line.strip()]
    first = lines[0].strip() if lines else ""
    return first if len(first) <= 160 else first[:157] + "..."


def _error_text(error: BaseException, dsn: str) -> str:
    diag = getattr(error, "diag", None)
    if diag is None or not getattr(diag, "message_primary", None):
        return redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__, dsn)
    text = f"ERROR: {diag.message_primary} (SQLSTATE {diag.sqlstate})"
    if diag.message_detail:
        text += f"; detail: {diag.message_detail}"
    # dbdeploy's own "V001 is failed. The way on: roll it back …" advice is about real databases; the
    # scratch database is dropped anyway.
    hint = re.sub(r"\s*V\d+ is failed\. The way on: .*\Z", "", diag.message_hint or "", flags=re.DOTALL)
    if hint:
        text += f"; hint: {hint}"
    return redact(text, dsn)


def _line_in_file(bundle, statement: str, which: str) -> str:
    """Where ``statement`` is in the bundle's forward or rollback file (as written for the run)."""
    if not statement:
        return ""
    names = [n for n in bundle.files if n.endswith(".sql") and ("__rollback_" in n) == (which == "rollback")]
    if not names:
        return ""
    text = bundle.files[names[0]]
    at = text.find(statement)
    if at < 0:
        return ""
    return f"{bundle.folder}/{names[0]} line {text.count(chr(10), 0, at) + 1}"


def _raw_sql_line(source: Path, call_line: int, op, statement: str, diag) -> tuple[int, int] | None:
    """(spec line of the failing statement — of the error's position in it when PostgreSQL gives one —,
    spec line where the forward's string literal starts): the statement is found in the body as the
    spec wrote it, and its line counted from the line where that string literal starts (a plain or
    triple-quoted literal, or one wrapped in a call such as textwrap.dedent, which keeps the lines).
    None when the spec builds the text otherwise."""
    body = op.forward_sql
    core = statement.rstrip().rstrip(";").rstrip()
    at = body.find(core) if core else -1
    if at < 0:
        return None
    position = getattr(diag, "statement_position", None) if diag is not None else None
    offset = body.count("\n", 0, at)
    if position and str(position).isdigit() and 0 < int(position) <= len(core):   # 1-based, in characters
        offset += core.count("\n", 0, int(position) - 1)
    try:
        tree = ast.parse(Path(source).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.lineno == call_line):
            continue
        for keyword in node.keywords:
            if keyword.arg != "forward":
                continue
            value = keyword.value
            while isinstance(value, ast.Call) and len(value.args) == 1:
                value = value.args[0]
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and \
                    value.value.count("\n") == body.count("\n"):
                return value.lineno + offset, value.lineno
    return None
