"""The bundle's ``deployment_checklist.md``: what a DBA checks before, during and after a deployment.

Operations contribute their part (:meth:`Operation.checklist`: backups, dependency and data checks,
health checks, rollback notes, how each step's duration scales); this module merges the parts in
operation order and renders them with the lock impact of every forward step, the commands per
environment and the sign-off. The output is a pure function of the plan (no timestamps).
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from psycopg import sql

from dbdeploy.bundle.bookkeeping import LOCK_TIMEOUT
from dbdeploy.bundle.markers import BATCH_KINDS, BATCH_TIME_SETTING, DEFAULT_BATCH_TIME
from dbdeploy.bundle.step import Step
from dbdeploy.ops.base import ChecklistItems, CheckQuery
from dbdeploy.ops.checklist_queries import estimated_rows, query
from dbdeploy.plan.migration_plan import MigrationPlan
from dbdeploy.sql import ident, literal

S = sql.SQL

CHECKLIST_NAME = "deployment_checklist.md"
ENVIRONMENTS = ("dev", "staging", "production")

# Which plain reads (SELECT: ACCESS SHARE) and writes (INSERT/UPDATE/DELETE: ROW EXCLUSIVE) a lock
# held by a step makes wait, per the conflict table in the PostgreSQL docs ("Explicit Locking").
LOCK_BLOCKS: dict[str, tuple[bool, bool]] = {
    "ACCESS EXCLUSIVE": (True, True),
    "EXCLUSIVE": (False, True),
    "SHARE ROW EXCLUSIVE": (False, True),
    "SHARE": (False, True),
    "SHARE UPDATE EXCLUSIVE": (False, False),
    "ROW EXCLUSIVE": (False, False),
    "ROW SHARE": (False, False),
    "ACCESS SHARE": (False, False),
    "NONE": (False, False),
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("dbdeploy.render", "templates"),
    autoescape=False,  # noqa: S701 — markdown; SQL in it is composed with psycopg.sql
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _indent_lines(text: str, width: int = 2) -> str:
    """``text`` with ``width`` spaces before its first line and every later non-empty line, for a
    fenced code block in a list item (Markdown removes exactly that indentation again). Unlike
    Jinja's ``indent`` (``str.splitlines``), only ``\\n`` ends a line: a literal holding CR, U+2028
    or U+0085 keeps them, so a query copied from the checklist is the query dbdeploy wrote."""
    pad = " " * width
    return "\n".join(pad + line if line or i == 0 else line for i, line in enumerate(text.split("\n")))


_ENV.filters["indent_lines"] = _indent_lines


@dataclass(frozen=True)
class AllowedFinding:
    """A lint rule an operation of the spec accepts, with the spec's reason."""

    index: int          # 0-based, as in the spec's ``operations[i]``
    operation: str
    rule: str
    severity: str
    reason: str


def allowed_findings(plan: MigrationPlan) -> list[AllowedFinding]:
    from dbdeploy.lint.registry import BY_ID

    return [AllowedFinding(i, op.describe().removesuffix(" -"), rule, BY_ID[rule].severity, " ".join(reason.split()))
            for i, op in enumerate(plan.migration.operations) for rule, reason in op.allow.items()]


@dataclass(frozen=True)
class LockRow:
    number: int
    summary: str
    lock: str
    target: str
    blocks_reads: bool
    blocks_writes: bool
    duration: str

    @property
    def long(self) -> bool:
        return self.duration.startswith("proportional to rows")


def lock_rows(steps: list[Step]) -> list[LockRow]:
    """One row per forward step, numbered like the manifest's ``steps``, with how the step's duration
    scales as the operation that made it says (:attr:`Step.scales`)."""
    rows = []
    for number, step in enumerate(steps, 1):
        reads, writes = LOCK_BLOCKS[step.lock]
        rows.append(LockRow(number, step.summary, step.lock, step.target or "-", reads, writes,
                            step.scales or "see the step's SQL"))
    return rows


def previous_version(version: str) -> str:
    """The ``--to`` that rolls back this version and nothing below it (every applied version above it)."""
    return str(int(version) - 1).zfill(len(version))


def render_checklist(plan: MigrationPlan, *, files: list[str], checksum: str, source: str,
                     history_schema: str, backup_schema: str) -> str:
    m = plan.migration
    items = ChecklistItems.merged(plan.checklist)
    rows = lock_rows(plan.forward)
    created = set(items.created_tables)
    existing_targets = sorted({r.target for r in rows if r.lock != "NONE" and r.target not in created})
    prerequisites = list(items.prerequisites)
    if existing_targets:
        prerequisites.insert(0, long_transactions())
    sizes = [estimated_rows(t) for t in dict.fromkeys(r.target for r in rows if r.long and r.target not in created)]
    label = f"V{m.version}"
    return _ENV.get_template("deployment_checklist.md.j2").render(
        m=m, label=label, checksum=checksum, short_checksum=checksum[:12], source=source,
        files=describe_files(files, plan), items=items, prerequisites=prerequisites, rows=rows,
        long_rows=[r for r in rows if r.long], sizes=sizes, environments=ENVIRONMENTS,
        previous=previous_version(m.version), forward_file=files[0], rollback_file=files[1],
        rollback_steps=plan.rollback, lock_timeout=LOCK_TIMEOUT, backup_schema=backup_schema,
        batched=any(s.kind in BATCH_KINDS for s in [*plan.forward, *plan.rollback]),
        default_batch_time=DEFAULT_BATCH_TIME, batch_time_setting=BATCH_TIME_SETTING,
        history_schema=history_schema, health_checks=[*items.health_checks, recorded(history_schema, m.version,
                                                                                     checksum)],
        rolled_back=rolled_back(history_schema, m.version), dump_file=f"{label}_before.dump",
        allowed=allowed_findings(plan),
        rollback_copies=any("<timestamp>" in note for note in items.rollback_notes),
        description_lines=m.description.splitlines() or [m.name.replace("_", " ")])


def describe_files(files: list[str], plan: MigrationPlan) -> list[tuple[str, str]]:
    described = {
        files[0]: f"forward migration ({len(plan.forward)} steps)",
        files[1]: f"rollback ({len(plan.rollback)} steps, newest first)",
        CHECKLIST_NAME: "this checklist",
        "manifest.json": "version, checksum, files with sha256, steps with their locks, expectations",
    }
    names = [*files, *(n for n in (CHECKLIST_NAME, "manifest.json") if n not in files)]
    return [(name, described.get(name, "generated tests (run with `dbdeploy test`)" if name.endswith(".py")
                                 else "")) for name in names]


def long_transactions() -> CheckQuery:
    return CheckQuery(
        "No transaction has been open for more than 5 minutes (a step would queue behind its locks, and "
        "concurrent index builds wait for it)",
        query(S("SELECT count(*) AS long_transactions\nFROM pg_catalog.pg_stat_activity\n"
                "WHERE datname = pg_catalog.current_database() AND pid <> pg_catalog.pg_backend_pid()\n"
                "  AND xact_start < pg_catalog.now() - interval '5 minutes'")), "0")


def recorded(history_schema: str, version: str, checksum: str) -> CheckQuery:
    return CheckQuery(
        f"V{version} is recorded as completed in {history_schema}.migration_log with this bundle's checksum",
        query(S("SELECT EXISTS (SELECT 1 FROM {log}\n    WHERE version = {v} AND status = 'completed'"
                " AND checksum = {c}) AS recorded").format(
            log=ident(history_schema, "migration_log"), v=literal(version), c=literal(checksum))), "true")


def rolled_back(history_schema: str, version: str) -> CheckQuery:
    return CheckQuery(
        f"V{version} is recorded as rolled back in {history_schema}.migration_log",
        query(S("SELECT EXISTS (SELECT 1 FROM {log}\n    WHERE version = {v} AND status = 'rolled_back')"
                " AS rolled_back").format(log=ident(history_schema, "migration_log"), v=literal(version))), "true")


__all__ = ["CHECKLIST_NAME", "LOCK_BLOCKS", "AllowedFinding", "LockRow", "allowed_findings", "lock_rows",
           "previous_version", "render_checklist"]
