"""CreateIndex and DropIndex: always concurrent, so reads and writes continue during the build."""

from __future__ import annotations

from typing import ClassVar

from pydantic import field_validator

from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import expect
from dbdeploy.ops.base import Operation, PlanContext, SchemaState, Step
from dbdeploy.spec.base import TableName
from dbdeploy.spec.components import Index
from dbdeploy.spec.names import check_table_name


class CreateIndex(Operation):
    kind: ClassVar[str] = "create_index"
    table: TableName
    index: Index

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.index.referenced_columns, "index.columns")
        name = self.index.qualified_name(self.table)
        state.claim(name, "an index", self.table)
        state.indexes[name] = (self.table, self.index)

    def forward(self, ctx: PlanContext) -> list[Step]:
        return [cs.build_index_concurrently(ctx, self.kind, self.table, self.index)]

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.index(self.index.qualified_name(self.table), self.table,
                             columns=self.index.referenced_columns, definition=self.index)]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [cs.drop_owned_index(ctx, self.table, self.index.resolved_name(self.table))]


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
            raise ValueError(f"{self.name} is the index behind {kind}; drop the constraint instead")
        if self.name not in state.indexes:
            if not state.complete:
                return
            raise ValueError(
                f"index {self.name} is not created by any earlier spec, so its rollback could not "
                "rebuild it; drop it with RawSQL and give the rollback explicitly")
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
        return [cs.build_index_concurrently(ctx, "create_index", table, index)]
