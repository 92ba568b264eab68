"""AddForeignKey on a table that may already hold data: NOT VALID, then VALIDATE in its own transaction."""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.components import ForeignKey
from dbdeploy.model.static_checks import check_foreign_key_types
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import existing
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.ddl import foreign_key_body


class AddForeignKey(Operation):
    kind: ClassVar[str] = "add_foreign_key"
    table: TableName
    foreign_key: ForeignKey

    def apply(self, state: SchemaState) -> None:
        state.refuse_partitioned(self.table, "AddForeignKey")
        state.require_columns(self.table, self.foreign_key.columns, "foreign_key.columns")
        state.require_columns(self.foreign_key.references, self.foreign_key.ref_columns,
                              "foreign_key.ref_columns")
        own, referenced = state.tables.get(self.table), state.tables.get(self.foreign_key.references)
        if own is not None:
            check_foreign_key_types("foreign_key", self.foreign_key.columns, own.columns, self.foreign_key.references,
                                    self.foreign_key.ref_columns, referenced and referenced.columns)
        state.register_constraint(self.table, self.foreign_key.resolved_name(self.table), "foreign_key")
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
        if existing and (not fk.optional or ref_new) and fk.validate:
            prerequisites.append(queries.foreign_key_violations(table, name, fk.columns, fk.references, fk.ref_columns,
                                                               ctx, earlier))
        if not fk.validate:
            health = queries.constraint_present_not_validated(table, name, "Foreign key")
        else:
            health = (queries.optional_constraint_validated(table, name, fk.references) if fk.optional
                      else queries.constraint_validated(table, name, "Foreign key"))
        notes = []
        if not fk.validate:
            notes.append(f"Foreign key {name} is left NOT VALID on purpose (validate=False): rows already in {table} "
                         "are not checked (nor is the violations query a blocker), new writes are. Validate it later "
                         "by hand or with a later migration.")
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
                             on_delete=fk.on_delete or "NO ACTION",
                             on_update=None if (fk.on_update or "NO ACTION") == "NO ACTION" else fk.on_update,
                             match=fk.match, deferrable=fk.deferrable, initially_deferred=fk.initially_deferred,
                             validated=fk.validate)


def foreign_key_steps(ctx: PlanContext, table: str, fk: ForeignKey) -> list[Step]:
    """ADD … NOT VALID, then VALIDATE — no VALIDATE step for ``validate=False`` (left NOT VALID on purpose)."""
    name = fk.resolved_name(table)
    steps = [
        cs.add_not_valid(ctx, "add_foreign_key", table, name, foreign_key_body(fk), "SHARE ROW EXCLUSIVE",
                         requires_table=fk.references if fk.optional else None,
                         expected_text=existing.foreign_key_text(fk)),
    ]
    if fk.validate:
        steps.append(cs.validate(ctx, table, name, owned_key=f"{table}.{name}"))
    return steps
