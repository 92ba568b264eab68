"""Run every rule over every operation of every spec, in version order.

The walk is planning's (:func:`dbdeploy.ops.walk.walk`): a schema state advanced by each operation's
``apply``, so rules know the tables, keys and indexes that earlier specs created; lint adds only what
RawSQL statements tell (:class:`dbdeploy.lint.state.RawFacts`). For each operation the rules see the
state before it, after it, and after its whole migration (an index created later in the same
migration still covers a foreign key).
"""

from __future__ import annotations

from pathlib import Path

from pglast import ast

from dbdeploy.errors import SpecError
from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Finding, LintError, LintReport, Rule
from dbdeploy.lint.registry import BY_ID, RULES, UNUSED_ALLOW
from dbdeploy.lint.sqlwalk import body_statements, table_name
from dbdeploy.lint.state import LintState
from dbdeploy.ops import CreateTable, Operation, RawSQL
from dbdeploy.ops.walk import walk
from dbdeploy.plan.loader import LoadedMigration, load_specs

EXPANSION_LEFT_OPEN = BY_ID["expansion-left-open"]


def lint_specs(specs_dir: Path) -> LintReport:
    return lint_migrations(load_specs(Path(specs_dir)))


def refuse_errors(report: LintReport) -> None:
    """Raise :class:`LintError` (exit 2) when the report has error findings the specs do not allow."""
    if report.errors:
        raise LintError(report.errors)


def describe(op: Operation) -> str:
    return op.describe().removesuffix(" -")


def lint_migrations(loaded: list[LoadedMigration], rules: tuple[Rule, ...] = RULES) -> LintReport:
    state = LintState()
    findings: list[Finding] = []
    files: dict[str, tuple[str, object]] = {}
    for item in loaded:
        findings += _lint_migration(item, state, rules)
        files[item.migration.version] = (_display(item.source), item.migration)
    if any(rule.id == EXPANSION_LEFT_OPEN.id for rule in rules):
        findings += _open_expansions(state, files)
    return LintReport(tuple(findings), len(loaded))


def _open_expansions(state: LintState, files: dict) -> list[Finding]:
    """One ``expansion-left-open`` finding per expansion no spec contracted (known after the last spec)."""
    rule, found = EXPANSION_LEFT_OPEN, []
    for version, ops in state.schema.expansions.items():
        if version not in files:
            continue
        file, migration = files[version]
        for op in ops:
            index = next((i for i, o in enumerate(migration.operations) if o is op), -1)
            found.append(Finding(rule.id, rule.severity, file, version, migration.name, index, describe(op),
                                 f"{op.describe_expansion()} is never contracted", rule.problem, rule.fix,
                                 op.allow.get(rule.id)))
    return found


def _lint_migration(item: LoadedMigration, state: LintState, rules: tuple[Rule, ...]) -> list[Finding]:
    migration, file = item.migration, _display(item.source)
    snapshots = [state.copy()]
    new_tables: set[str] = set()
    pending: list[tuple[int, Operation, frozenset[str], tuple, tuple]] = []
    failures: dict[int, ValueError] = {}
    for visit in walk(migration.operations, state.schema, version=migration.version):
        i, op = visit.index, visit.op
        forward = rollback = ()
        if isinstance(op, RawSQL):
            forward = tuple(body_statements(op.forward_sql, "forward"))
            rollback = tuple(body_statements(op.rollback_sql, "rollback"))
        pending.append((i, op, frozenset(new_tables), forward, rollback))
        if visit.error is not None:
            failures[i] = visit.error        # reported below, unless a rule already explains it
        state.advance(snapshots[-1], op, list(forward))
        snapshots.append(state.copy())
        if isinstance(op, CreateTable):
            new_tables.add(op.target())
        new_tables |= _created_by(forward)
    findings: list[Finding] = []
    for i, op, new, forward, rollback in pending:
        ctx = OpContext(file, migration, i, op, snapshots[i], snapshots[i + 1], snapshots[-1], new, forward, rollback)
        found = [_finding(ctx, rule, subject) for rule in rules for subject in _unique(rule.check(ctx))]
        fired = {f.rule for f in found}
        found += [_finding(ctx, UNUSED_ALLOW, f"allow[{rule_id!r}] matches no finding of this operation")
                  for rule_id in op.allow if rule_id not in fired and rule_id != EXPANSION_LEFT_OPEN.id]
        if i in failures and not any(f.blocking for f in found):
            raise SpecError(str(failures[i]), file=file,
                            field=f"Migration {migration.version}.operations[{i}] ({op.describe()})")
        findings += found
    return findings


def _display(path: Path) -> str:
    """The spec file relative to the current folder when it is inside it (as the user typed it)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _finding(ctx: OpContext, rule: Rule, subject: str) -> Finding:
    return Finding(rule.id, rule.severity, ctx.file, ctx.version, ctx.migration.name, ctx.index, describe(ctx.op),
                   subject, rule.problem, rule.fix, ctx.op.allow.get(rule.id) if rule.allowable else None)


def _unique(subjects) -> list[str]:
    return list(dict.fromkeys(subjects))


def _created_by(statements) -> set[str]:
    created: set[str] = set()
    for stmt in statements:
        node = stmt.node
        if stmt.in_function:
            continue
        if isinstance(node, ast.CreateStmt):
            created.add(table_name(node.relation))
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            created.add(table_name(node.into.rel))
    return created


__all__ = ["LintError", "describe", "lint_migrations", "lint_specs", "refuse_errors"]
