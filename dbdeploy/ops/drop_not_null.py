"""DropNotNull: make a column nullable — a catalog change only (ACCESS EXCLUSIVE, brief).

The rollback makes it NOT NULL again with SetNotNull's online sequence (``CHECK … NOT VALID`` →
``VALIDATE`` → ``SET NOT NULL`` without a scan → check dropped; the same steps,
:func:`dbdeploy.ops.add_column.not_null_steps`), only when this version dropped the NOT NULL. Rows
written since the deploy may hold NULL: the rollback preflight counts them and refuses before any
change, naming the count. PostgreSQL refuses DROP NOT NULL on a primary-key column and on an
identity column (ALTER TABLE docs); the specs refuse it where they know the key, the forward
otherwise, with a clear message and no change.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.add_column import not_null_steps
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.column_change import known_column, refuse_new_column, replace_column, spec_not_null
from dbdeploy.ops.common import (
    S,
    column_exists,
    fail,
    forget_owned,
    is_owned,
    literal,
    record_owned,
    regclass,
)
from dbdeploy.ops.set_not_null import in_primary_key, is_identity
from dbdeploy.sql import ident, qualified
from dbdeploy.sql.blocks import block, do_block, if_then


class DropNotNull(Operation):
    """Make ``column`` of ``table`` nullable; the rollback restores NOT NULL online if this version dropped it.

    Refused at generate: a column of the table's primary key or an identity column (where the specs
    know them), a column this migration creates, a column the table (created by the specs) lacks."""

    kind: ClassVar[str] = "drop_not_null"
    table: TableName
    column: Identifier

    @property
    def column_key(self) -> str:
        return f"{self.table}.{self.column}"

    def apply(self, state: SchemaState) -> None:
        col = known_column(state, self.table, self.column, "DropNotNull")
        if col is None:
            return
        if self.column in state.tables[self.table].primary_key:
            raise ValueError(f"column {self.column!r} is part of {self.table}'s primary key, which PostgreSQL keeps "
                             "NOT NULL — fix: remove this DropNotNull (or change the primary key first)")
        if col.identity:
            raise ValueError(f"column {self.column!r} of {self.table} is an identity column, which PostgreSQL keeps "
                             "NOT NULL — fix: remove this DropNotNull")
        replace_column(state, self.table, self.column, nullable=True)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.ColumnNotNull(self.table, self.column, False,
                                     before=spec_not_null(ctx.state, self.table, self.column))]

    def forward(self, ctx: PlanContext) -> list[Step]:
        refuse_new_column(ctx, self.table, self.column, "DropNotNull", "declare the column nullable instead")
        key, t, c = self.column_key, qualified(self.table), ident(self.column)
        hint = "Nothing was changed. Remove this DropNotNull from the spec (or change the table first)."
        body = block(
            if_then(S("NOT {}").format(column_exists(self.table, self.column)),
                    fail(ctx, f"column {key} does not exist", hint)),
            if_then(in_primary_key(self.table, self.column),
                    fail(ctx, f"cannot drop the NOT NULL of {key}: it is part of the primary key (PostgreSQL keeps "
                              "primary key columns NOT NULL)", hint)),
            if_then(is_identity(self.table, self.column),
                    fail(ctx, f"cannot drop the NOT NULL of {key}: it is an identity column", hint)),
            if_then(S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {rel} AND attname = {col}"
                      " AND attnotnull)").format(rel=regclass(self.table), col=literal(self.column)),
                    record_owned(ctx, "nullable", key),
                    S("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;").format(t=t, c=c)),
        )
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                            f"drop the NOT NULL of {self.column} (catalog only)")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        owned = is_owned(ctx, "nullable", self.column_key)
        return scaled(not_null_steps(ctx, self.table, self.column, when=owned,
                                     finish=(forget_owned(ctx, "nullable", self.column_key),), count_nulls=True),
                      queries.NOT_VALID, queries.VALIDATE, "constant (uses the validated CHECK; no scan)")

    def rollback_preflight(self, ctx: PlanContext) -> list:
        key, t, c = self.column_key, qualified(self.table), ident(self.column)
        nullable = S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {rel} AND attname = {col}"
                     " AND NOT attnotnull)").format(rel=regclass(self.table), col=literal(self.column))
        return [if_then(
            S("{} AND {}").format(is_owned(ctx, "nullable", key), nullable),
            S("v_count := (SELECT pg_catalog.count(*) FROM {t} WHERE {c} IS NULL);").format(t=t, c=c),
            if_then(S("v_count > 0"), fail(
                ctx, f"cannot make {key} NOT NULL again:",
                f"Give those rows a value (UPDATE {self.table} SET {self.column} = … WHERE {self.column} IS NULL), "
                "then run the rollback again; nothing was changed.",
                detail=S("v_count || {}").format(literal(" row(s) hold NULL in it (written since the deploy)")))))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, column = self.table, self.column
        count = queries.query(S("SELECT pg_catalog.count(*) AS null_rows FROM {t} WHERE {c} IS NULL").format(
            t=qualified(table), c=ident(column)))
        return ChecklistItems(
            prerequisites=[queries.table_exists(table)],
            health_checks=[queries.column_state(table, column, False)],
            rollback_notes=[f"The rollback makes {table}.{column} NOT NULL again only if {ctx.label} dropped it, "
                            f"online: CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE (a scan; reads and writes "
                            "continue), SET NOT NULL without a scan. It refuses before any change, giving their "
                            f"number, when rows written since the deploy hold NULL in {column}; give them a value "
                            f"first. Count them with: `{count}`"])
