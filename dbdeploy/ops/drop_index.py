"""DropIndex: DROP INDEX CONCURRENTLY of an index the specs created; the rollback rebuilds it concurrently."""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.names import check_table_name
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.sql import ident
from dbdeploy.sql import regclass as sql_regclass

S = sql.SQL


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
        if self.name in state.indexes:
            state.refuse_partitioned(state.indexes[self.name][0], "DropIndex")
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

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        table, _index = ctx.state.indexes[self.name]
        return [expect.Index(self.name, table, present=False)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        table, _index = ctx.state.indexes[self.name]
        return scaled([cs.drop_index_concurrently(ctx, self.kind, table, self.name.partition(".")[2])],
                      "constant (waits for transactions using the table; reads and writes continue)")

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
        regclass = sql_regclass(ident(schema, name))
        return ChecklistItems(
            prerequisites=[
                CheckQuery(f"Index {self.name} exists", queries.query(S("SELECT {} IS NOT NULL AS index_exists").format(
                    regclass)), "true", otherwise="`false` is harmless: the step does nothing"),
                CheckQuery(f"How often {self.name} was used since the statistics were reset (0: unused; queries "
                           "that use it get slower once it is gone)", queries.query(S(
                               "SELECT pg_catalog.sum(idx_scan) AS index_scans FROM pg_catalog.pg_stat_all_indexes"
                               " WHERE indexrelid = {}").format(regclass)), ""),
            ],
            health_checks=[queries.relation_missing_check(self.name, f"Index {self.name} is gone")],
            rollback_notes=[f"The rollback rebuilds index {self.name} concurrently from its spec (proportional to "
                            f"the rows of {table}; reads and writes continue)."])
