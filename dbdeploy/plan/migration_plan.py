"""Turn migrations into ordered forward and rollback steps.

Operations are validated against the schema the earlier specs built (so a later spec can rely
on columns and keys an earlier one created), NOT NULL enforcement of a new column is placed after
the backfill that fills it, and rollback undoes operations newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast
from pglast.enums import AlterTableType, ObjectType
from psycopg import sql

from dbdeploy.bundle import bookkeeping, expectations
from dbdeploy.bundle.schemas import HISTORY_SCHEMA
from dbdeploy.bundle.step import Step
from dbdeploy.errors import SpecError
from dbdeploy.ops import AddColumn, AddForeignKey, CreateTable, PlanContext, RawSQL, SchemaState, SeedRows
from dbdeploy.ops.base import ChecklistItems
from dbdeploy.ops.migration import Migration
from dbdeploy.ops.walk import walk
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.sql import line_comment, literal, parse_statements, render
from dbdeploy.sql.blocks import do_block, indented
from dbdeploy.sql.psql import scan


@dataclass(frozen=True)
class MigrationPlan:
    migration: Migration
    forward: list[Step]
    rollback: list[Step]
    tables_created: tuple[str, ...]
    expects: list[expectations.Expectation]   # typed; the manifest and the generated tests hold their JSON
    checklist: list[ChecklistItems] = field(default_factory=list)   # per operation, in operation order
    forward_ops: list[int] = field(default_factory=list)   # per forward step: its operation's index (0-based)


def plan_all(loaded: list[LoadedMigration], history_schema: str = HISTORY_SCHEMA) -> list[MigrationPlan]:
    state = SchemaState(complete=True)
    plans = []
    for item in loaded:
        try:
            plans.append(plan_migration(item.migration, state, history_schema))
        except SpecError as exc:
            raise exc.located(str(item.source)) from None
    return plans


def plan_migration(migration: Migration, state: SchemaState, history_schema: str = HISTORY_SCHEMA) -> MigrationPlan:
    """Plan one migration, advancing ``state`` past it."""
    ops = migration.operations
    deferred: dict[int, list[tuple[list[Step], Step, int]]] = {}
    forward: list[Step] = []
    forward_ops: list[int] = []
    undo: list[list[Step]] = []          # per forward group, in forward order
    undo_ops: list = []                  # the operation of each group (None: a deferred NOT NULL undo)
    created: list[str] = []
    expects: list[expectations.Expectation] = []
    checklist: list[ChecklistItems] = []
    earlier = ChecklistItems()           # the contributions of the operations before this one, merged
    preflight: list[sql.Composable] = []
    rollback_drops = frozenset(op.table for op in ops if isinstance(op, CreateTable))
    added_columns = frozenset(op.column_key for op in ops if isinstance(op, AddColumn))
    raw_removals = [_raw_sql_removals(op) for op in ops]
    for visit in walk(ops, state, version=migration.version, history_schema=history_schema, snapshots=True):
        i, op = visit.index, visit.op
        ctx = PlanContext(version=migration.version, migration_name=migration.name, index=i + 1,
                          state=visit.before, history_schema=history_schema, rollback_drops=rollback_drops,
                          rollback_drops_columns=added_columns,
                          rollback_removes=frozenset().union(*raw_removals[i + 1:]), later_ops=visit.later)
        try:
            if visit.error is not None:
                raise visit.error
            steps = op.forward(ctx)
            undo.append(op.rollback(ctx))
            undo_ops.append(op)
            checks = op.rollback_preflight(ctx)
            if checks:
                preflight.append(_preflight_part(ctx, op, checks))
            expects += op.expects(ctx)
            part = op.checklist(ctx, earlier)
            checklist.append(part)
            earlier.add(part)
            if isinstance(op, AddColumn) and op.needs_not_null_steps:
                after = op.not_null_after(visit.later)
                if after is not None:
                    deferred.setdefault(i + 1 + after, []).append((op.not_null_steps(ctx), op.not_null_undo(ctx), i))
                else:
                    steps += op.not_null_steps(ctx)
        except ValueError as exc:
            raise SpecError(str(exc), field=f"Migration {migration.version}.operations[{i}] ({op.describe()})"
                            ) from None
        forward += steps
        forward_ops += [i] * len(steps)
        for not_null, not_null_undo, owner in deferred.pop(i, []):
            forward += not_null
            forward_ops += [owner] * len(not_null)
            undo.append([not_null_undo])
            undo_ops.append(None)
        if op.kind == "create_table":
            created.append(op.target())
    rollback = [step for group in _seed_deletes_after_referencing_drops(
        list(reversed(undo)), list(reversed(undo_ops)), rollback_drops) for step in group]
    if preflight:
        rollback.insert(0, preflight_step(migration, list(reversed(preflight)), history_schema,
                                          raw_sql=any(step.kind == "raw_sql" for step in rollback)))
    return MigrationPlan(migration, forward, rollback, tuple(created), expects, checklist, forward_ops)


PREFLIGHT_KIND = "rollback_preflight"


_DROPPED_RELATIONS = (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW,
                      ObjectType.OBJECT_FOREIGN_TABLE)


def _raw_sql_removals(op) -> frozenset[str]:
    """Relations ("schema.name") and constraints ("schema.table.name") a RawSQL rollback drops,
    read with pglast (DROP TABLE/VIEW/MATERIALIZED VIEW, ALTER TABLE … DROP CONSTRAINT); an
    unqualified name is taken as public's."""
    if not isinstance(op, RawSQL):
        return frozenset()
    names: set[str] = set()
    for raw in parse_statements(op.rollback_sql):
        stmt = raw.stmt
        if isinstance(stmt, ast.DropStmt) and stmt.removeType in _DROPPED_RELATIONS:
            for parts in stmt.objects or ():
                path = [p.sval for p in parts]
                names.add(".".join(path[-2:]) if len(path) > 1 else f"public.{path[0]}")
        elif isinstance(stmt, ast.AlterTableStmt) and stmt.relation is not None:
            table = f"{stmt.relation.schemaname or 'public'}.{stmt.relation.relname}"
            names.update(f"{table}.{cmd.name}" for cmd in stmt.cmds or ()
                         if cmd.subtype == AlterTableType.AT_DropConstraint and cmd.name)
    return frozenset(names)


def _references(op) -> set[str]:
    """Tables a CreateTable/AddForeignKey operation points foreign keys at."""
    if isinstance(op, CreateTable):
        return {fk.references for fk in op.foreign_keys if fk.references != op.table}
    if isinstance(op, AddForeignKey) and op.foreign_key.references != op.table:
        return {op.foreign_key.references}
    return set()


def _seed_deletes_after_referencing_drops(groups: list[list[Step]], ops: list,
                                          drops: frozenset[str]) -> list[list[Step]]:
    """Rollback groups (newest operation first) with each seed delete on a table the rollback keeps
    moved after the drops of the migration's own tables and foreign keys that reference that table:
    their rows (which may point at the seed rows) are copied out and dropped first, or the foreign
    key is gone, so the DELETE meets no foreign key of the migration's own. A move never crosses a
    step on the seeded table itself (a column it matches on)."""
    groups, ops = list(groups), list(ops)
    i = 0
    while i < len(groups):
        op = ops[i]
        if isinstance(op, SeedRows) and op.table not in drops:
            # The migration's own tables that reference the seeded table, and its own foreign keys to
            # it (AddForeignKey): their rollback removes them before the delete.
            referencing = [j for j in range(i + 1, len(groups))
                           if op.table in _references(ops[j])
                           and (getattr(ops[j], "table", None) in drops or isinstance(ops[j], AddForeignKey))]
            if referencing:
                last = max(referencing)
                crossed = [s for g in groups[i + 1:last + 1] for s in g if s.target == op.table]
                if not crossed:
                    groups.insert(last + 1, groups.pop(i))
                    ops.insert(last + 1, ops.pop(i))
                    continue
        i += 1
    return groups


def _has_return(body: str) -> bool:
    """Whether PL/pgSQL ``body`` holds a ``RETURN;`` statement (read with PostgreSQL's lexer, so a
    quoted identifier or string containing the word does not count)."""
    tokens = scan(body)
    return any(a.name == "RETURN" and b.name == "ASCII_59" for a, b in zip(tokens, tokens[1:], strict=False))


def _preflight_part(ctx: PlanContext, op, checks: list[sql.Composable]) -> sql.Composable:
    """One operation's checks in a sub-block: a refusal is collected, not raised, so the preflight
    names every refusal of the whole rollback in one error."""
    body = sql.SQL("\n").join(checks)
    if _has_return(render(body)):
        raise AssertionError(f"{op.kind}.rollback_preflight must not RETURN (it would skip the other checks)")
    return sql.SQL("\n").join([
        line_comment(f"operation {ctx.index}: {op.describe()}"),
        sql.SQL("BEGIN"),
        indented(body),   # between tokens only: literals spanning lines keep their bytes
        sql.SQL("EXCEPTION WHEN raise_exception THEN"),
        sql.SQL("    GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;"),
        sql.SQL("    v_refusals := pg_catalog.array_append(v_refusals, pg_catalog.replace(v_message, {}, ''));").format(
            literal(f"dbdeploy {ctx.label}: ")),
        sql.SQL("    IF v_hint <> '' AND NOT v_hint = ANY (v_hints) THEN"),
        sql.SQL("        v_hints := pg_catalog.array_append(v_hints, v_hint);"),
        sql.SQL("    END IF;"),
        sql.SQL("END;"),
    ])


def preflight_step(migration: Migration, parts: list[sql.Composable], history_schema: str,
                   raw_sql: bool = False) -> Step:
    """The rollback's first step: every refusal condition of every operation, checked before the
    first change (read-only), then the version is marked ``rolling_back``. A refusal raises one
    error naming every reason; the step's transaction is rolled back, so the catalog, the data and
    the migration log stay exactly as they were (under psql as under the executor)."""
    label = f"V{migration.version}"
    verdict = sql.SQL(
        "IF pg_catalog.cardinality(v_refusals) > 0 THEN\n"
        "    RAISE EXCEPTION '%', {msg} || pg_catalog.array_to_string(v_refusals, ' | ')\n"
        "        USING HINT = pg_catalog.array_to_string(v_hints, ' ');\n"
        "END IF;").format(msg=literal(f"dbdeploy {label}: rollback refused before any change: "))
    body = do_block(sql.SQL("\n").join([*parts, verdict]),
                    declare=["v_dependants text", "v_count bigint", "v_message text", "v_hint text",
                             "v_refusals text[] := '{}'", "v_hints text[] := '{}'"])
    # The baseline guard (bookkeeping.rollback_start) is read-only too; then the status update.
    status = "\n".join(bookkeeping.rollback_start(history_schema, migration.version, raw_sql=raw_sql))
    return Step(PREFLIGHT_KIND, "-", "ACCESS SHARE", True, body + "\n" + status,
                "check every condition the rollback refuses on, before changing anything")
