"""AddUnique on a table that may already hold data: a unique index built CONCURRENTLY, then attached as
the constraint."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.components import Index, Unique
from dbdeploy.model.names import spelled
from dbdeploy.model.static_checks import check_btree_columns
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, is_owned


class AddUnique(Operation):
    kind: ClassVar[str] = "add_unique"
    table: TableName
    unique: Unique

    def apply(self, state: SchemaState) -> None:
        state.refuse_partitioned(self.table, "AddUnique")
        state.require_columns(self.table, self.unique.columns, "unique.columns")
        if self.table in state.tables:
            check_btree_columns("unique.columns", self.unique.columns, state.tables[self.table].columns)
        state.register_constraint(self.table, self.unique.resolved_name(self.table), "unique")
        known = state.tables.get(self.table)
        if known is not None:   # copy-on-write, see SchemaState.copy
            state.tables[self.table] = replace(known, uniques={**known.uniques, self.unique.resolved_name(self.table):
                                                               tuple(self.unique.columns)},
                                               nulls_not_distinct=known.nulls_not_distinct | (
                                                   {self.unique.resolved_name(self.table)}
                                                   if self.unique.nulls_not_distinct else set()))
        state.claim(f"{self.table.partition('.')[0]}.{self.unique.resolved_name(self.table)}", "a unique constraint",
                    self.table)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Constraint(self.table, self.unique.resolved_name(self.table), columns=tuple(self.unique.columns),
                                  constraint_kind="u", key=tuple(self.unique.columns),
                                  nulls_not_distinct=self.unique.nulls_not_distinct)]

    def _index(self) -> Index:
        return Index(columns=[spelled(c) for c in self.unique.columns], unique=True,
                     name=spelled(self.unique.resolved_name(self.table)),
                     nulls_not_distinct=self.unique.nulls_not_distinct)

    def forward(self, ctx: PlanContext) -> list[Step]:
        return scaled([
            *cs.build_index_concurrently(ctx, "create_unique_index", self.table, self._index()),
            cs.attach_unique(ctx, self.table, self.unique.resolved_name(self.table), self.unique.columns,
                             nulls_not_distinct=self.unique.nulls_not_distinct),
        ], queries.DROP_INVALID_INDEX, queries.CONCURRENT_INDEX, "constant (catalog only: the index is already built)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        name = self.unique.resolved_name(self.table)
        return [
            cs.drop_constraint(ctx, self.table, name),
            cs.drop_owned_index(ctx, self.table, name),
        ]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        name = self.unique.resolved_name(self.table)
        owned = S("({} OR {})").format(is_owned(ctx, "constraint", f"{self.table}.{name}"),
                                       is_owned(ctx, "index", f"{self.table.partition('.')[0]}.{name}"))
        return [cs.index_dependants_preflight(ctx, self.table, name, owned)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        name = self.unique.resolved_name(self.table)
        existing = self.table not in earlier.created_tables
        prerequisites = []
        if existing:
            prerequisites = [
                queries.table_exists(self.table),
                queries.duplicate_keys(self.table, name, self.unique.columns, None, (), earlier.changes,
                                       nulls_not_distinct=self.unique.nulls_not_distinct),
            ]
        qualified_index = f"{self.table.partition('.')[0]}.{name}"
        return ChecklistItems(
            prerequisites=prerequisites,
            notes=[queries.CONCURRENT_NOTE] if existing else [],
            health_checks=[queries.constraint_validated(self.table, name, "Unique constraint"),
                           queries.index_valid(qualified_index)],
            watch=[queries.index_build_progress(self.table)],
            rollback_notes=[f"Unique constraint {name} and its index are dropped only if {ctx.label} added them."])
