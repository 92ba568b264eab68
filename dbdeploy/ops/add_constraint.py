"""AddForeignKey, AddCheck, AddUnique on a table that may already hold data."""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import expect
from dbdeploy.ops.base import Operation, PlanContext, SchemaState, Step
from dbdeploy.ops.ddl import check_body, foreign_key_body
from dbdeploy.spec.base import TableName
from dbdeploy.spec.components import Check, ForeignKey, Index, Unique


def _register(state: SchemaState, table: str, name: str, what: str) -> None:
    tbl = state.tables.get(table)
    if tbl is None:
        return
    if name in tbl.constraints:
        raise ValueError(f"{what}: {table} already has a constraint named {name!r}; pick another name")
    tbl.constraints.add(name)


class AddForeignKey(Operation):
    kind: ClassVar[str] = "add_foreign_key"
    table: TableName
    foreign_key: ForeignKey

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.foreign_key.columns, "foreign_key.columns")
        state.require_columns(self.foreign_key.references, self.foreign_key.ref_columns,
                              "foreign_key.ref_columns")
        _register(state, self.table, self.foreign_key.resolved_name(self.table), "foreign_key")

    def forward(self, ctx: PlanContext) -> list[Step]:
        return foreign_key_steps(ctx, self.table, self.foreign_key)

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [foreign_key_expect(self.table, self.foreign_key)]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [cs.drop_constraint(ctx, self.table, self.foreign_key.resolved_name(self.table))]


def foreign_key_expect(table: str, fk: ForeignKey) -> dict:
    return expect.constraint(table, fk.resolved_name(table), columns=fk.columns, kind="f",
                             requires_table=fk.references if fk.optional else None, key=list(fk.columns),
                             references=fk.references, ref_columns=list(fk.ref_columns),
                             on_delete=fk.on_delete or "NO ACTION")


def foreign_key_steps(ctx: PlanContext, table: str, fk: ForeignKey) -> list[Step]:
    name = fk.resolved_name(table)
    return [
        cs.add_not_valid(ctx, "add_foreign_key", table, name, foreign_key_body(fk), "SHARE ROW EXCLUSIVE",
                         requires_table=fk.references if fk.optional else None),
        cs.validate(ctx, table, name),
    ]


class AddCheck(Operation):
    kind: ClassVar[str] = "add_check"
    table: TableName
    check: Check

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.check.columns, "check.expression")
        _register(state, self.table, self.check.resolved_name(self.table), "check")

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.constraint(self.table, self.check.resolved_name(self.table), columns=self.check.columns,
                                  kind="c", expression=self.check.expression)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        name = self.check.resolved_name(self.table)
        return [
            cs.add_not_valid(ctx, self.kind, self.table, name, check_body(self.check), "ACCESS EXCLUSIVE"),
            cs.validate(ctx, self.table, name),
        ]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [cs.drop_constraint(ctx, self.table, self.check.resolved_name(self.table))]


class AddUnique(Operation):
    kind: ClassVar[str] = "add_unique"
    table: TableName
    unique: Unique

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.unique.columns, "unique.columns")
        _register(state, self.table, self.unique.resolved_name(self.table), "unique")
        state.claim(f"{self.table.partition('.')[0]}.{self.unique.resolved_name(self.table)}", "a unique constraint",
                    self.table)

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.constraint(self.table, self.unique.resolved_name(self.table), columns=self.unique.columns,
                                  kind="u", key=list(self.unique.columns))]

    def _index(self) -> Index:
        return Index(columns=self.unique.columns, unique=True, name=self.unique.resolved_name(self.table))

    def forward(self, ctx: PlanContext) -> list[Step]:
        return [
            cs.build_index_concurrently(ctx, "create_unique_index", self.table, self._index()),
            cs.attach_unique(ctx, self.table, self.unique.resolved_name(self.table)),
        ]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        name = self.unique.resolved_name(self.table)
        return [
            cs.drop_constraint(ctx, self.table, name),
            cs.drop_owned_index(ctx, self.table, name),
        ]
