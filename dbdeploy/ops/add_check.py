"""AddCheck on a table that may already hold data: NOT VALID, then VALIDATE in its own transaction."""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.components import Check
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.ddl import check_body


class AddCheck(Operation):
    kind: ClassVar[str] = "add_check"
    table: TableName
    check: Check

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.check.columns, "check.expression")
        state.register_constraint(self.table, self.check.resolved_name(self.table), "check")
        state.add_check(self.table, self.check)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Constraint(self.table, self.check.resolved_name(self.table), columns=tuple(self.check.columns),
                                  constraint_kind="c", expression=self.check.expression)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        name = self.check.resolved_name(self.table)
        return scaled([
            cs.add_not_valid(ctx, self.kind, self.table, name, check_body(self.check), "ACCESS EXCLUSIVE"),
            cs.validate(ctx, self.table, name, owned_key=f"{self.table}.{name}"),
        ], queries.NOT_VALID, queries.VALIDATE)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [cs.drop_constraint(ctx, self.table, self.check.resolved_name(self.table))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        name = self.check.resolved_name(self.table)
        prerequisites = []
        if self.table not in earlier.created_tables:
            prerequisites = [
                queries.table_exists(self.table),
                queries.check_violations(self.table, name, self.check.expression, self.check.columns, earlier.changes),
            ]
        return ChecklistItems(
            prerequisites=prerequisites, health_checks=[queries.constraint_validated(self.table, name, "CHECK")],
            rollback_notes=[f"CHECK {name} is dropped only if {ctx.label} added it."])
