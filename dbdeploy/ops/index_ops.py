"""CreateIndex and DropIndex: always concurrent, so reads and writes continue during the build."""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator

from dbdeploy.ops import checks, expect
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState, Step
from dbdeploy.ops.common import is_owned
from dbdeploy.spec.base import TableName
from dbdeploy.spec.components import Index
from dbdeploy.spec.names import check_table_name
from dbdeploy.spec.static_checks import check_btree_columns
from dbdeploy.sql import ident, literal, parse_expression, render

S = sql.SQL


class CreateIndex(Operation):
    kind: ClassVar[str] = "create_index"
    table: TableName
    index: Index

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.index.referenced_columns, "index.columns")
        if self.index.method == "btree" and self.table in state.tables:
            check_btree_columns("index.columns", self.index.columns, state.tables[self.table].columns)
        name = self.index.qualified_name(self.table)
        state.claim(name, "an index", self.table)
        state.indexes[name] = (self.table, self.index)

    def forward(self, ctx: PlanContext) -> list[Step]:
        return cs.build_index_concurrently(ctx, self.kind, self.table, self.index)

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.index(self.index.qualified_name(self.table), self.table,
                             columns=self.index.referenced_columns, definition=self.index)]

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
        prerequisites = [checks.table_exists(self.table)] if existing else []
        if existing and self.index.unique and all(k.isidentifier() for k in self.index.columns):
            reads = parse_expression(self.index.where).columns if self.index.where else frozenset()
            prerequisites.append(checks.duplicate_keys(self.table, name, self.index.columns, self.index.where, reads,
                                                       earlier.changes))
        return ChecklistItems(
            prerequisites=prerequisites, notes=[checks.CONCURRENT_NOTE] if existing else [],
            health_checks=[checks.index_valid(name)], watch=[checks.index_build_progress(self.table)],
            rollback_notes=[f"Index {name} is dropped only if {ctx.label} built it, with DROP INDEX CONCURRENTLY "
                            "(reads and writes continue)."],
            durations=checks.durations(self.forward(ctx), checks.DROP_INVALID_INDEX, checks.CONCURRENT_INDEX))


class DropIndex(Operation):
    """Drop an index the specs created; rollback rebuilds it concurrently from its spec."""

    kind: ClassVar[str] = "drop_index"
    destructive: ClassVar[bool] = False
    name: str

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        return check_table_name(value, "index")

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        kind, _table = state.relations.get(self.name, ("", ""))
        if kind in ("the primary key", "a unique constraint"):
            raise ValueError(f"{self.name} is the index behind {kind} — fix: drop the constraint instead")
        if self.name not in state.indexes:
            if not state.complete:
                return
            raise ValueError(
                f"index {self.name} is not created by any earlier spec, so its rollback could not "
                "rebuild it — fix: check the name (schema.index), or drop it with RawSQL and give the "
                "rollback explicitly")
        del state.indexes[self.name]
        state.relations.pop(self.name, None)

    def expects(self, ctx: PlanContext) -> list[dict]:
        table, _index = ctx.state.indexes[self.name]
        return [expect.index(self.name, table, present=False)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        table, _index = ctx.state.indexes[self.name]
        return [cs.drop_index_concurrently(ctx, self.kind, table, self.name.partition(".")[2])]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        table, index = ctx.state.indexes[self.name]
        return cs.build_index_concurrently(ctx, "create_index", table, index)

    def rollback_preflight(self, ctx: PlanContext) -> list:
        table, index = ctx.state.indexes[self.name]
        check = cs.unique_index_rebuild_preflight(ctx, table, index)
        return [check] if check is not None else []

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, _index = ctx.state.indexes[self.name]
        schema, _, name = self.name.partition(".")
        regclass = S("pg_catalog.to_regclass({})").format(literal(render(ident(schema, name))))
        return ChecklistItems(
            prerequisites=[
                CheckQuery(f"Index {self.name} exists", checks.query(S("SELECT {} IS NOT NULL AS index_exists").format(
                    regclass)), "true", otherwise="`false` is harmless: the step does nothing"),
                CheckQuery(f"How often {self.name} was used since the statistics were reset (0: unused; queries "
                           "that use it get slower once it is gone)", checks.query(S(
                               "SELECT pg_catalog.sum(idx_scan) AS index_scans FROM pg_catalog.pg_stat_all_indexes"
                               " WHERE indexrelid = {}").format(regclass)), ""),
            ],
            health_checks=[checks.relation_missing_check(self.name, f"Index {self.name} is gone")],
            rollback_notes=[f"The rollback rebuilds index {self.name} concurrently from its spec (proportional to "
                            f"the rows of {table}; reads and writes continue)."],
            durations=checks.durations(self.forward(ctx), "constant (waits for transactions using the table; "
                                                          "reads and writes continue)"))
