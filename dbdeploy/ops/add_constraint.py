"""AddForeignKey, AddCheck, AddUnique on a table that may already hold data."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.components import Check, ForeignKey, Index, Unique
from dbdeploy.model.static_checks import check_btree_columns, check_foreign_key_types
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import existing
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, is_owned
from dbdeploy.ops.ddl import check_body, foreign_key_body


def _register(state: SchemaState, table: str, name: str, what: str) -> None:
    tbl = state.tables.get(table)
    if tbl is None:
        return
    if name in tbl.constraints:
        raise ValueError(f"{what}: {table} already has a constraint named {name!r} — fix: pick another name")
    state.tables[table] = replace(tbl, constraints=tbl.constraints | {name})   # copy-on-write, see SchemaState.copy


class AddForeignKey(Operation):
    kind: ClassVar[str] = "add_foreign_key"
    table: TableName
    foreign_key: ForeignKey

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.foreign_key.columns, "foreign_key.columns")
        state.require_columns(self.foreign_key.references, self.foreign_key.ref_columns,
                              "foreign_key.ref_columns")
        own, referenced = state.tables.get(self.table), state.tables.get(self.foreign_key.references)
        if own is not None:
            check_foreign_key_types("foreign_key", self.foreign_key.columns, own.columns, self.foreign_key.references,
                                    self.foreign_key.ref_columns, referenced and referenced.columns)
        _register(state, self.table, self.foreign_key.resolved_name(self.table), "foreign_key")
        state.add_foreign_key(self.table, self.foreign_key)

    def forward(self, ctx: PlanContext) -> list[Step]:
        return scaled(foreign_key_steps(ctx, self.table, self.foreign_key), queries.NOT_VALID, queries.VALIDATE)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [foreign_key_expect(self.table, self.foreign_key)]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [cs.drop_constraint(ctx, self.table, self.foreign_key.resolved_name(self.table))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        fk, table = self.foreign_key, self.table
        name = fk.resolved_name(table)
        existing = table not in earlier.created_tables
        ref_new = fk.references in earlier.created_tables
        prerequisites: list[CheckQuery] = [queries.table_exists(table)] if existing else []
        if fk.optional and not ref_new:
            prerequisites.append(queries.optional_table_exists(name, fk.references))
        elif not ref_new and fk.references != table:
            prerequisites.append(queries.table_exists(fk.references, f"referenced by foreign key {name}"))
        if existing and (not fk.optional or ref_new):
            prerequisites.append(queries.foreign_key_violations(table, name, fk.columns, fk.references, fk.ref_columns,
                                                               ctx, earlier))
        health = (queries.optional_constraint_validated(table, name, fk.references) if fk.optional
                  else queries.constraint_validated(table, name, "Foreign key"))
        notes = []
        if fk.references != table and not ref_new:
            notes.append(f"Adding foreign key {name} also locks {fk.references} for a moment (SHARE ROW EXCLUSIVE: "
                         "its writes wait); validating it reads that table's key index.")
        return ChecklistItems(
            prerequisites=prerequisites, health_checks=[health], notes=notes,
            rollback_notes=[f"Foreign key {name} is dropped only if {ctx.label} added it."])


def foreign_key_expect(table: str, fk: ForeignKey) -> expect.Constraint:
    """The expectation of foreign key ``fk`` on ``table`` (an optional one only while its table exists)."""
    return expect.Constraint(table, fk.resolved_name(table), columns=tuple(fk.columns), constraint_kind="f",
                             requires_table=fk.references if fk.optional else None, key=tuple(fk.columns),
                             references=fk.references, ref_columns=tuple(fk.ref_columns),
                             on_delete=fk.on_delete or "NO ACTION")


def foreign_key_steps(ctx: PlanContext, table: str, fk: ForeignKey) -> list[Step]:
    name = fk.resolved_name(table)
    return [
        cs.add_not_valid(ctx, "add_foreign_key", table, name, foreign_key_body(fk), "SHARE ROW EXCLUSIVE",
                         requires_table=fk.references if fk.optional else None,
                         expected_text=existing.foreign_key_text(fk)),
        cs.validate(ctx, table, name, owned_key=f"{table}.{name}"),
    ]


class AddCheck(Operation):
    kind: ClassVar[str] = "add_check"
    table: TableName
    check: Check

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.check.columns, "check.expression")
        _register(state, self.table, self.check.resolved_name(self.table), "check")
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


class AddUnique(Operation):
    kind: ClassVar[str] = "add_unique"
    table: TableName
    unique: Unique

    def apply(self, state: SchemaState) -> None:
        state.require_columns(self.table, self.unique.columns, "unique.columns")
        if self.table in state.tables:
            check_btree_columns("unique.columns", self.unique.columns, state.tables[self.table].columns)
        _register(state, self.table, self.unique.resolved_name(self.table), "unique")
        known = state.tables.get(self.table)
        if known is not None:   # copy-on-write, see SchemaState.copy
            state.tables[self.table] = replace(known, uniques={**known.uniques, self.unique.resolved_name(self.table):
                                                               tuple(self.unique.columns)})
        state.claim(f"{self.table.partition('.')[0]}.{self.unique.resolved_name(self.table)}", "a unique constraint",
                    self.table)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Constraint(self.table, self.unique.resolved_name(self.table), columns=tuple(self.unique.columns),
                                  constraint_kind="u", key=tuple(self.unique.columns))]

    def _index(self) -> Index:
        return Index(columns=self.unique.columns, unique=True, name=self.unique.resolved_name(self.table))

    def forward(self, ctx: PlanContext) -> list[Step]:
        return scaled([
            *cs.build_index_concurrently(ctx, "create_unique_index", self.table, self._index()),
            cs.attach_unique(ctx, self.table, self.unique.resolved_name(self.table), self.unique.columns),
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
                queries.duplicate_keys(self.table, name, self.unique.columns, None, (), earlier.changes),
            ]
        qualified_index = f"{self.table.partition('.')[0]}.{name}"
        return ChecklistItems(
            prerequisites=prerequisites,
            notes=[queries.CONCURRENT_NOTE] if existing else [],
            health_checks=[queries.constraint_validated(self.table, name, "Unique constraint"),
                           queries.index_valid(qualified_index)],
            watch=[queries.index_build_progress(self.table)],
            rollback_notes=[f"Unique constraint {name} and its index are dropped only if {ctx.label} added them."])
