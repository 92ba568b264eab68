"""Backfill: set columns from SQL expressions in key-ordered batches, keeping the old values."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from dbdeploy.ops import checks, expect
from dbdeploy.ops.backfill_steps import BackfillPlan
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState, Step
from dbdeploy.ops.common import S, is_owned
from dbdeploy.spec.base import ColumnList, SqlExpression, TableName
from dbdeploy.spec.names import check_identifier
from dbdeploy.sql import parse_expression


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
        for column in value:
            check_identifier(column, "set column")
        return value

    def apply(self, state: SchemaState) -> None:
        referenced = set(self.set)
        for expr in self.set.values():
            referenced |= parse_expression(expr).columns
        if self.where:
            referenced |= parse_expression(self.where).columns
        state.require_columns(self.table, referenced, "set/where")
        if self.key:
            state.require_columns(self.table, self.key, "key")
        elif self.table in state.tables:
            self.resolve_key(state)
        # An unknown table (created outside this migration) is resolved when all specs are
        # planned together, where earlier migrations' tables are known.

    def resolve_key(self, state: SchemaState) -> list[str]:
        if self.key:
            return list(self.key)
        table = state.tables.get(self.table)
        if table is None or not table.primary_key:
            raise ValueError(
                f"key is not given and {self.table}'s primary key is not known from the specs — fix: "
                "set key=[...] to the unique, indexed column(s) to batch by")
        overlap = set(table.primary_key) & set(self.set)
        if overlap:
            raise ValueError(f"a backfill cannot change its own key column(s) {', '.join(sorted(overlap))} — fix: "
                             "batch by another unique key (key=[...]), or remove the key column(s) from set")
        return list(table.primary_key)

    def plan(self, ctx: PlanContext) -> BackfillPlan:
        return BackfillPlan(ctx, self.table, dict(self.set), self.where, self.resolve_key(ctx.state),
                            self.batch_size, keep_old=True, tag=f"op{ctx.index}")

    def expects(self, ctx: PlanContext) -> list[dict]:
        plan = self.plan(ctx)
        where_columns = parse_expression(self.where).columns if self.where else ()
        return [expect.backfill(self.table, f"{ctx.backup_schema}.{plan.progress_name}", self.where,
                                set_columns=self.set, where_columns=where_columns)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        plan = self.plan(ctx)
        return [plan.setup_step(), plan.run_step()]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        keys = [f"{self.table}.{column}" for column in self.set]
        added = None
        if all(k in ctx.rollback_drops_columns for k in keys):
            added = S(" AND ").join(is_owned(ctx, "column", k) for k in keys)
        return [self.plan(ctx).restore_step(dropped_later=self.table in ctx.rollback_drops,
                                            columns_dropped_later=added)]

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
                f"their values from before the deploy back from {ctx.backup_schema}.{plan.backup_name} (one UPDATE, "
                "ROW EXCLUSIVE). A row the application changed since keeps the application's value; its key, the "
                "value before the deploy, the value the backfill wrote and the current value are appended to "
                f"{ctx.backup_schema}.{plan.not_restored_name}. A NOTICE reports how many rows were restored, left and "
                "deleted since; then the backup and cursor tables are dropped. Review the not_restored table after "
                "the rollback.")

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        plan = self.plan(ctx)
        existing = self.table not in earlier.created_tables
        reads = set().union(*(parse_expression(e).columns for e in self.set.values()))
        if self.where:
            reads |= parse_expression(self.where).columns
        change = checks.backfilled_values(self.table, dict(self.set), self.where, reads)
        prerequisites = [checks.table_exists(self.table)] if existing else []
        if existing:
            prerequisites += [checks.not_null_violations(self.table, column, [*earlier.changes, change])
                              for column in self.set if f"{self.table}.{column}" in earlier.not_null_pending]
        progress = f"{ctx.backup_schema}.{plan.progress_name}"
        return ChecklistItems(
            backups=[self.table] if existing else [], prerequisites=prerequisites,
            notes=[f"The backfill of {self.table} ({', '.join(self.set)}) keeps every value it overwrites, and the "
                   f"value it writes, in {ctx.backup_schema}.{plan.backup_name}; it can be interrupted: running the "
                   f"migration again continues at its cursor ({progress})."],
            health_checks=[checks.backfill_finished(self.table, plan.progress, progress, plan.key)],
            watch=[checks.backfill_progress(self.table, plan.progress, progress)],
            rollback_notes=[self._rollback_note(ctx, plan)],
            durations=checks.durations(self.forward(ctx), "constant (creates the backup and cursor tables)",
                                       f"proportional to rows, in batches of {self.batch_size} "
                                       "(one transaction per batch)"),
            changes=[change])
