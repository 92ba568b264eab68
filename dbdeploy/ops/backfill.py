"""Backfill: set columns from SQL expressions in key-ordered batches, keeping the old values."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from dbdeploy.ops import expect
from dbdeploy.ops.backfill_steps import BackfillPlan
from dbdeploy.ops.base import Operation, PlanContext, SchemaState, Step
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
            raise ValueError("set needs at least one column → SQL expression")
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
                f"key is not given and {self.table}'s primary key is not known from the specs; "
                "set key=[...] to the unique, indexed column(s) to batch by")
        overlap = set(table.primary_key) & set(self.set)
        if overlap:
            raise ValueError(f"a backfill cannot change its own key column(s) {', '.join(sorted(overlap))}")
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
        return [self.plan(ctx).restore_step()]
