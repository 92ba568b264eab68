"""Backfill: set columns from SQL expressions in key-ordered batches, keeping the old values."""

from __future__ import annotations

from typing import ClassVar

from pglast import parse_sql
from pglast.parser import ParseError
from pydantic import Field, field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import ColumnList, SqlExpression, TableName
from dbdeploy.model.names import _IDENTIFIER, check_identifier
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.backfill_steps import BackfillPlan, key_is_proven
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, is_owned
from dbdeploy.ops.drop_column import DropColumn
from dbdeploy.ops.drop_index import DropIndex
from dbdeploy.ops.raw_sql import RawSQL


class Backfill(Operation):
    kind: ClassVar[str] = "backfill"
    table: TableName
    set: dict[str, SqlExpression]
    where: SqlExpression | None = None
    batch_size: int = Field(default=1000, ge=1, le=1_000_000)
    key: ColumnList | None = None

    @field_validator("set")
    @classmethod
    def _assignments(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("set needs at least one column → SQL expression — fix: add one, e.g. "
                             "set={\"status\": \"'active'\"}")
        # a quoted column ('"UserName"') stands for its exact name
        return {check_identifier(column, "set column"): expression for column, expression in value.items()}

    def apply(self, state: SchemaState) -> None:
        referenced = set(self.set)
        for expr in self.set.values():
            referenced |= expr.columns
        if self.where:
            referenced |= self.where.columns
        state.require_columns(self.table, referenced, "set/where")
        if self.key:
            state.require_columns(self.table, self.key, "key")
            self._key_not_set(self.key)
        elif self.table in state.tables:
            self.resolve_key(state)
        # An unknown table (created outside this migration) is resolved when all specs are
        # planned together, where earlier migrations' tables are known.
        if self.key or self.table in state.tables:
            problem = unproven_key(state, self.table, self.resolve_key(state))
            if problem:
                raise ValueError(problem)

    def _key_not_set(self, key: list[str]) -> None:
        overlap = set(key) & set(self.set)
        if overlap:
            raise ValueError(f"a backfill cannot change its own key column(s) {', '.join(sorted(overlap))} — fix: "
                             "batch by another unique key (key=[...]), or remove the key column(s) from set")

    def resolve_key(self, state: SchemaState) -> list[str]:
        """The columns the backfill batches by: ``key``, else the table's primary key as the specs
        know it. Raises ValueError when neither is known or the key is one of the columns set."""
        if self.key:
            self._key_not_set(self.key)
            return list(self.key)
        table = state.tables.get(self.table)
        if table is None or not table.primary_key:
            raise ValueError(
                f"key is not given and {self.table}'s primary key is not known from the specs — fix: "
                "set key=[...] to the unique, indexed column(s) to batch by")
        self._key_not_set(table.primary_key)
        return list(table.primary_key)

    def plan(self, ctx: PlanContext) -> BackfillPlan:
        return BackfillPlan(ctx, self.table, dict(self.set), self.where.sql() if self.where else None,
                            self.resolve_key(ctx.state), self.batch_size, keep_old=True, tag=f"op{ctx.index}")

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        plan = self.plan(ctx)
        where_columns = self.where.columns if self.where else ()
        return [expect.Backfill(self.table, f"{ctx.backup_schema}.{plan.progress_name}", self.where,
                                set_columns=tuple(self.set), where_columns=tuple(where_columns),
                                backup=f"{ctx.backup_schema}.{plan.backup_name}" if plan.keep_old else None,
                                written=tuple(plan.written.items()), key=tuple(plan.key))]

    def forward(self, ctx: PlanContext) -> list[Step]:
        plan = self.plan(ctx)
        return scaled([plan.setup_step(), plan.run_step()], "constant (creates the backup and cursor tables)",
                      f"proportional to rows, in batches of at most {self.batch_size} "
                      "(one transaction per batch, each about batch_time)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        keys = [f"{self.table}.{column}" for column in self.set]
        added = None
        if all(k in ctx.rollback_drops_columns for k in keys):
            added = S(" AND ").join(is_owned(ctx, "column", k) for k in keys)
        return self.plan(ctx).restore_steps(dropped_later=self.table in ctx.rollback_drops,
                                            columns_dropped_later=added)

    def rollback_preflight(self, ctx: PlanContext) -> list:
        """The restore puts values back by key: refuse before any change if the key no longer
        identifies rows (its unique index dropped or invalid, a key column made nullable since).

        Not when a later operation of the migration may have changed the key (DropIndex, DropColumn
        or RawSQL, whose rollbacks run first and may rebuild what the key needs): the restore step
        checks the key itself, right before it writes (:meth:`BackfillPlan.restore_setup_step`)."""
        if self.table in ctx.rollback_drops or any(self._may_change_key(op, ctx) for op in ctx.later_ops):
            return []
        return [self.plan(ctx).restore_key_check()]

    def _may_change_key(self, op: Operation, ctx: PlanContext) -> bool:
        if isinstance(op, RawSQL):
            return True
        if isinstance(op, DropColumn):
            return op.table == self.table
        if isinstance(op, DropIndex):
            return ctx.state.indexes.get(op.name, (self.table,))[0] == self.table
        return False

    def _rollback_note(self, ctx: PlanContext, plan: BackfillPlan) -> str:
        if self.table in ctx.rollback_drops:
            return (f"{self.table} is dropped by this rollback (its rows copied first), so the backfill's values are "
                    f"not restored; its backup and cursor tables ({ctx.backup_schema}.{plan.backup_name}, "
                    f"{ctx.backup_schema}.{plan.progress_name}) are dropped.")
        if all(f"{self.table}.{column}" in ctx.rollback_drops_columns for column in self.set):
            return (f"The backfill of {self.table} fills only column(s) this migration adds ({', '.join(self.set)}): "
                    "when this version added them, the rollback drops them afterwards (copying their values), so "
                    "nothing is restored (no full-table UPDATE); its backup table is kept under a timestamped name "
                    f"(r{ctx.version}_…, announced in a NOTICE: which values the backfill wrote) and its cursor table "
                    f"({ctx.backup_schema}.{plan.progress_name}) is dropped. If the column(s) existed before, the "
                    "values are restored as for any backfill.")
        return (f"The backfill of {self.table} is undone only in rows that still hold the values it wrote: those get "
                f"their values from before the deploy back from {ctx.backup_schema}.{plan.backup_name} in batches of "
                f"at most {self.batch_size} rows in key order, each sized to take about batch_time (ROW EXCLUSIVE, one "
                "transaction per batch: a row is locked only while its batch runs; a killed rollback run again "
                f"continues at the cursor {ctx.backup_schema}.{plan.restore_name}). A row the application changed "
                "since keeps the application's value; its key, the "
                "value before the deploy, the value the backfill wrote and the current value are appended to "
                f"{ctx.backup_schema}.{plan.not_restored_name}. A NOTICE reports how many rows were restored, left and "
                "deleted since; then the backup and cursor tables are dropped. Review the not_restored table after "
                "the rollback.")

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        plan = self.plan(ctx)
        existing = self.table not in earlier.created_tables
        reads = set().union(*(e.columns for e in self.set.values()))
        if self.where:
            reads |= self.where.columns
        change = queries.backfilled_values(self.table, dict(self.set), self.where, reads)
        prerequisites = [queries.table_exists(self.table)] if existing else []
        if existing:
            prerequisites.append(CheckQuery(
                f"The backfill key ({', '.join(plan.key)}) of {self.table} is unique and NOT NULL (a valid, "
                "non-partial unique index or primary key on key columns only; the backfill's first step refuses "
                "otherwise)",
                queries.query(S("SELECT {} AS key_is_proven").format(key_is_proven(self.table, plan.key))), "true",
                key=f"backfill-key:{self.table}:{','.join(plan.key)}"))
        if existing:
            prerequisites += [queries.not_null_violations(self.table, column, [*earlier.changes, change])
                              for column in self.set if f"{self.table}.{column}" in earlier.not_null_pending]
        progress = f"{ctx.backup_schema}.{plan.progress_name}"
        return ChecklistItems(
            backups=[self.table] if existing else [], prerequisites=prerequisites,
            notes=[f"The backfill of {self.table} ({', '.join(self.set)}) keeps every value it overwrites, and the "
                   f"value it writes, in {ctx.backup_schema}.{plan.backup_name}; it can be interrupted: running the "
                   f"migration again continues at its cursor ({progress})."],
            health_checks=[queries.backfill_finished(self.table, plan.progress, progress, plan.key)],
            watch=[queries.backfill_progress(self.table, plan.progress, progress)],
            rollback_notes=[self._rollback_note(ctx, plan)],
            changes=[change])


def _plain_column(key: str) -> str | None:
    """The column of a spec index key that is a bare column (``email``, ``created_at DESC``), or None
    for an expression or a key with its own operator class or collation (read with pglast)."""
    if _IDENTIFIER.match(key):
        return key
    try:
        element = parse_sql(f"CREATE INDEX probe ON probe ({key})")[0].stmt.indexParams[0]
    except (ParseError, AttributeError, IndexError):
        return None
    if element.name and not element.opclass and not element.collation:
        return element.name
    return None


def unproven_key(state: SchemaState, table: str, key: list[str]) -> str | None:
    """Why the specs show that ``key`` does not identify the rows of ``table`` (the reason and the
    fix, for a spec error), or None when they prove it or cannot know.

    Proven: every key column is NOT NULL (declared ``nullable=False`` or in the primary key) and
    the primary key, a unique constraint or a non-partial btree unique index on plain columns has
    all its columns among the key (any order; a subset is enough, a column outside the key is
    not). Cannot know: a table the specs did not create, or one a RawSQL operation may have
    changed (:attr:`SchemaState.raw_changed`); the backfill's first step checks the catalog then.
    """
    known = state.tables.get(table)
    if known is None or table in state.raw_changed:
        return None
    pk = list(known.primary_key)
    uniques: list[tuple[str, list[str]]] = [("the primary key", pk)] if pk else []
    uniques += [(f"unique constraint {name}", list(cols)) for name, cols in sorted(known.uniques.items())]
    for name, (owner, index) in sorted(state.indexes.items()):
        if owner == table and index.unique and index.where is None and index.method == "btree":
            cols = [_plain_column(k) for k in index.columns]
            if None not in cols:
                uniques.append((f"unique index {name}", cols))

    def not_null(column: str) -> bool:
        return column in pk or (column in known.columns and not known.columns[column].nullable)

    shown = ", ".join(key)
    nullable = [c for c in key if not not_null(c)]
    proven = any(set(cols) <= set(key) for _, cols in uniques)
    if not nullable and proven:
        return None
    usable = [f"key={cols!r} ({what})" for what, cols in uniques if all(map(not_null, cols))]
    instead = f"use {' or '.join(usable)}" if usable else "batch by a unique NOT NULL key"
    if nullable:
        return (f"key=[{shown}] is not a key of {table}: column(s) {', '.join(nullable)} allow NULL, and rows "
                "whose key is NULL are never reached by the key-ordered batches (the backfill would skip them and "
                f"report completion) — fix: {instead}" + ("" if usable else
                                                         " (NOT NULL columns covered by a unique index or the primary "
                                                         "key; the specs know none on this table)"))
    return (f"key=[{shown}] is not a key of {table}: neither its primary key nor any unique constraint or "
            "non-partial unique index on plain columns has only key columns, so several rows may share a key "
            "(the batches would rewrite them again and again and the rollback would write one saved value into "
            f"all of them) — fix: {instead}, or add a unique index on ({shown}) first (CreateIndex(table="
            f"\"{table}\", index=Index(columns={list(key)!r}, unique=True)))")
