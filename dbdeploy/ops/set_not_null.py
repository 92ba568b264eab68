"""SetNotNull: make an existing column NOT NULL without a long ACCESS EXCLUSIVE scan.

``CHECK (c IS NOT NULL) NOT VALID`` (catalog only) → ``VALIDATE`` in its own transaction (SHARE
UPDATE EXCLUSIVE: reads and writes continue) → ``SET NOT NULL`` (PostgreSQL 12+ skips its scan
because the validated check proves it: PostgreSQL docs, ALTER TABLE, "SET/DROP NOT NULL") → the
check dropped. These are AddColumn's NOT NULL steps (:func:`dbdeploy.ops.add_column.not_null_steps`),
one implementation for both. A NULL row makes the VALIDATE fail: the helper check is dropped again
(nothing is left behind) and the error names the number of NULL rows.

Idempotent: a column already NOT NULL (validated) needs nothing; a helper check left by an
interrupted run is reused. The rollback drops the NOT NULL only when this version set it (the
ownership record written with the ``SET NOT NULL``): a column that was NOT NULL before stays so.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.add_column import not_null_steps
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.column_change import known_column, refuse_new_column, replace_column, spec_not_null, trusted
from dbdeploy.ops.common import (
    S,
    attnum,
    column_exists,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    regclass,
)
from dbdeploy.sql import ident, qualified
from dbdeploy.sql.blocks import block, do_block, if_then


def in_primary_key(table: str, column: str):
    """Condition: ``table.column`` is a column of the table's primary key (pg_index.indisprimary)."""
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = {rel} AND i.indisprimary"
             " AND {num} = ANY (i.indkey))").format(rel=regclass(table), num=attnum(table, column))


def is_identity(table: str, column: str):
    """Condition: ``table.column`` is an identity column (pg_attribute.attidentity)."""
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {rel} AND attnum = {num}"
             " AND attidentity <> '')").format(rel=regclass(table), num=attnum(table, column))


class SetNotNull(Operation):
    """Make ``column`` of ``table`` NOT NULL online (validated CHECK first, no ACCESS EXCLUSIVE scan).

    Refused at generate: a column the specs already make NOT NULL, a column this migration creates
    (give it ``nullable=False``), a column the table (created by the specs) does not have."""

    kind: ClassVar[str] = "set_not_null"
    table: TableName
    column: Identifier

    @property
    def column_key(self) -> str:
        return f"{self.table}.{self.column}"

    def apply(self, state: SchemaState) -> None:
        if known_column(state, self.table, self.column, "SetNotNull") is None:
            return
        if trusted(state, self.table) and spec_not_null(state, self.table, self.column):
            raise ValueError(f"column {self.column!r} of {self.table} is already NOT NULL — fix: remove this "
                             "SetNotNull")
        replace_column(state, self.table, self.column, nullable=False)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.ColumnNotNull(self.table, self.column, True,
                                     before=spec_not_null(ctx.state, self.table, self.column))]

    def forward(self, ctx: PlanContext) -> list[Step]:
        refuse_new_column(ctx, self.table, self.column, "SetNotNull",
                          "declare the column nullable=False (with a Backfill when rows need a value) instead")
        missing = if_then(S("NOT {}").format(column_exists(self.table, self.column)),
                          fail(ctx, f"column {self.column_key} does not exist, so it cannot be made NOT NULL",
                               "Check the table and column names in the spec (or add the column first)."))
        return scaled(not_null_steps(ctx, self.table, self.column, first=(missing,),
                                     on_set=(record_owned(ctx, "not_null", self.column_key),), count_nulls=True),
                      queries.NOT_VALID, queries.VALIDATE, "constant (uses the validated CHECK; no scan)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        key, t, c = self.column_key, qualified(self.table), ident(self.column)
        body = block(
            if_then(S("{} AND {}").format(is_owned(ctx, "not_null", key), column_exists(self.table, self.column)),
                    S("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;").format(t=t, c=c),
                    notice(ctx, f"column {key} is nullable again"),
                    otherwise=[notice(ctx, f"the NOT NULL of {key} was not set by {ctx.label}; left in place")]),
            forget_owned(ctx, "not_null", key))
        return [Step("drop_not_null", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"drop the NOT NULL of {self.column} if {ctx.label} set it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        key = self.column_key
        owned = S("{} AND {}").format(is_owned(ctx, "not_null", key), column_exists(self.table, self.column))
        hint = ("The column cannot be nullable while it is in a primary key or an identity column; change that "
                "first (RawSQL), or leave this version applied.")
        return [
            if_then(S("{} AND {}").format(owned, in_primary_key(self.table, self.column)),
                    fail(ctx, f"cannot drop the NOT NULL of {key}: the column is now part of the primary key",
                         hint)),
            if_then(S("{} AND {}").format(owned, is_identity(self.table, self.column)),
                    fail(ctx, f"cannot drop the NOT NULL of {key}: the column is now an identity column", hint)),
        ]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, column = self.table, self.column
        return ChecklistItems(
            prerequisites=[queries.table_exists(table), queries.not_null_violations(table, column, earlier.changes)],
            health_checks=[queries.column_state(table, column, True)],
            notes=[f"{table}.{column} is made NOT NULL through CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE (a "
                   "scan; reads and writes continue) and SET NOT NULL without a scan. From the moment the check is "
                   f"added, inserts and updates that leave {column} NULL fail: deploy the application that always "
                   f"writes {column} first. A NULL row makes the VALIDATE fail with the number of NULL rows; the "
                   "check is then dropped again and nothing else has changed."],
            rollback_notes=[f"The NOT NULL of {table}.{column} is dropped only if {ctx.label} set it (a column that "
                            "was NOT NULL before the deploy stays NOT NULL). No rows change."])
