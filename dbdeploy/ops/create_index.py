"""CreateIndex: always CONCURRENTLY, so reads and writes continue during the build."""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.components import Index
from dbdeploy.model.static_checks import check_btree_columns
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import is_owned

S = sql.SQL


class CreateIndex(Operation):
    kind: ClassVar[str] = "create_index"
    table: TableName
    index: Index

    def apply(self, state: SchemaState) -> None:
        state.refuse_partitioned(self.table, "CreateIndex")
        state.require_columns(self.table, self.index.referenced_columns, "index.columns")
        if self.index.method == "btree" and self.table in state.tables:
            check_btree_columns("index.columns", self.index.columns, state.tables[self.table].columns)
        name = self.index.qualified_name(self.table)
        state.claim(name, "an index", self.table)
        state.indexes[name] = (self.table, self.index)

    def forward(self, ctx: PlanContext) -> list[Step]:
        return scaled(cs.build_index_concurrently(ctx, self.kind, self.table, self.index),
                      queries.DROP_INVALID_INDEX, queries.CONCURRENT_INDEX)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [index_expect(self.table, self.index)]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [cs.drop_owned_index(ctx, self.table, self.index.resolved_name(self.table))]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        if not self.index.unique:
            return []
        name = self.index.resolved_name(self.table)
        return [cs.index_dependants_preflight(ctx, self.table, name,
                                              is_owned(ctx, "index", f"{self.table.partition('.')[0]}.{name}"))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        existing = self.table not in earlier.created_tables
        name = self.index.qualified_name(self.table)
        prerequisites = [queries.table_exists(self.table)] if existing else []
        if existing and self.index.unique and all(k.isidentifier() for k in self.index.columns):
            reads = self.index.where.columns if self.index.where else frozenset()
            prerequisites.append(queries.duplicate_keys(self.table, name, self.index.columns, self.index.where, reads,
                                                       earlier.changes,
                                                       nulls_not_distinct=self.index.nulls_not_distinct))
        return ChecklistItems(
            prerequisites=prerequisites, notes=[queries.CONCURRENT_NOTE] if existing else [],
            health_checks=[queries.index_valid(name)], watch=[queries.index_build_progress(self.table)],
            rollback_notes=[f"Index {name} is dropped only if {ctx.label} built it, with DROP INDEX CONCURRENTLY "
                            "(reads and writes continue)."])


def index_expect(table: str, index: Index) -> expect.Index:
    """The expectation of ``index`` on ``table``: present, valid, and defined as the spec says."""
    return expect.Index(index.qualified_name(table), table, columns=tuple(index.referenced_columns),
                        definition=expect.IndexDefinition(unique=index.unique, method=index.method,
                                                          keys=tuple(index.columns), include=tuple(index.include),
                                                          where=index.where,
                                                          nulls_not_distinct=index.nulls_not_distinct))
