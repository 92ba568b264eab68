"""SetDefault (and, through :class:`ColumnDefaultChange`, DropDefault): change a column's default.

Metadata only: ``ALTER COLUMN … SET DEFAULT`` / ``DROP DEFAULT`` change no row (PostgreSQL docs,
ALTER TABLE: "the new default … applies only in subsequent INSERT or UPDATE commands; it does not
cause rows already in the table to change"), so a volatile default is fine; the step takes
ACCESS EXCLUSIVE briefly.

Before its first change the forward saves the previous default for the rollback in a zero-row
*keeper* table in the backup schema (the pattern of ``ops/drop_column.py``): ``CREATE TABLE
<keeper> (LIKE t INCLUDING DEFAULTS)`` copies the column's default as PostgreSQL's catalog entry
(no SQL text), the table's other columns are dropped from the keeper (so it depends on nothing
else), PUBLIC gets no access, and the keeper is recorded as owned by the version. A re-run finds
the keeper and keeps it: it still holds the default from before the first run. The rollback sets
the default back from the keeper's catalog entry (``pg_get_expr``, PostgreSQL's deparse — never
text read from a table), or drops the default when the keeper's column has none, then drops the
keeper; its preflight refuses, before any change, when the version owns a keeper that is missing.

Identity and generated columns have no default to set: refused at generate where the specs know
the column (identity), otherwise by the forward with a clear message before any change.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, SqlExpression, TableName
from dbdeploy.model.names import split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.column_change import known_column, refuse_new_column, replace_column, trusted
from dbdeploy.ops.common import (
    S,
    backup_name,
    column_exists,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    regclass,
)
from dbdeploy.sql import acl, column_default, ident, literal, qualified, render
from dbdeploy.sql.blocks import block, do_block, if_then
from dbdeploy.sql.expression_rules import check_default


class ColumnDefaultChange(Operation):
    """The shared part of SetDefault and DropDefault: the keeper, the rollback, the checklist.

    Subclasses give ``kind``, :meth:`new_default` (the Column default after the change, or None) and
    :meth:`change` (the ALTER statement)."""

    table: TableName
    column: Identifier

    @property
    def column_key(self) -> str:
        return f"{self.table}.{self.column}"

    def new_default(self):
        raise NotImplementedError

    def change(self) -> sql.Composable:
        raise NotImplementedError

    @property
    def operation_name(self) -> str:
        return type(self).__name__

    # --- the keeper (names from the bundle only) -----------------------------------------

    def keeper_name(self, ctx: PlanContext) -> str:
        return backup_name(ctx, f"op{ctx.index}", split_table(self.table)[1], self.column, "default")

    def keeper(self, ctx: PlanContext) -> sql.Identifier:
        return ident(ctx.backup_schema, self.keeper_name(ctx))

    def keeper_key(self, ctx: PlanContext) -> str:
        """The keeper's ownership record (``migration_objects``, object type ``column_default``)."""
        return f"{ctx.backup_schema}.{self.keeper_name(ctx)}"

    # --- the operation --------------------------------------------------------------------

    def apply(self, state: SchemaState) -> None:
        col = known_column(state, self.table, self.column, self.operation_name)
        if col is None:
            return
        if col.identity:
            raise ValueError(f"column {self.column!r} of {self.table} is an identity column, which has no default "
                             f"(PostgreSQL refuses one) — fix: remove this {self.operation_name}")
        replace_column(state, self.table, self.column, default=self.new_default())

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        new = self.new_default()
        entry = expect.ColumnDefault(self.table, self.column, column_default(new) if new is not None else None)
        if trusted(ctx.state, self.table):
            old = ctx.state.tables[self.table].columns[self.column].default
            entry = expect.ColumnDefault(entry.table, entry.name, entry.default,
                                         before=column_default(old) if old is not None else None)
        return [entry]

    def forward(self, ctx: PlanContext) -> list[Step]:
        refuse_new_column(ctx, self.table, self.column, self.operation_name,
                          "give the Column its default (default=…) instead")
        key, keeper = self.column_key, self.keeper(ctx)
        hint = "Nothing was changed. Check the table and column names in the spec."
        attribute = S("SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {col}").format(
            rel=regclass(self.table), col=literal(self.column))
        body = block(
            if_then(S("NOT {}").format(column_exists(self.table, self.column)),
                    fail(ctx, f"column {key} does not exist", hint)),
            if_then(S("EXISTS ({} AND (a.attidentity <> '' OR a.attgenerated <> ''))").format(attribute),
                    fail(ctx, f"column {key} is an identity or generated column, which has no default to change",
                         f"Nothing was changed. Remove this {self.operation_name} from the spec.")),
            if_then(S("{} IS NULL").format(regclass(keeper)),
                    # The keeper: the column's default before this version, as a catalog entry.
                    S("CREATE TABLE {k} (LIKE {t} INCLUDING DEFAULTS);").format(k=keeper, t=qualified(self.table)),
                    S("FOR v_name IN SELECT a.attname::text FROM pg_catalog.pg_attribute a\n"
                      "    WHERE a.attrelid = {k} AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> {col} LOOP\n"
                      "    EXECUTE 'ALTER TABLE ' || {kt} || ' DROP COLUMN ' || pg_catalog.quote_ident(v_name);\n"
                      "END LOOP;").format(k=regclass(keeper), col=literal(self.column),
                                          kt=literal(render(keeper))),
                    acl.restrict_table(keeper),
                    record_owned(ctx, "column_default", self.keeper_key(ctx)),
                    notice(ctx, f"saved the default of {key} before this version in {self.keeper_key(ctx)}")),
            self.change(),
        )
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=["v_name text"]),
                            f"{self.describe_change()} (catalog only; the previous default is kept for the rollback)")],
                      queries.CATALOG_ONLY)

    def describe_change(self) -> str:
        raise NotImplementedError

    def rollback(self, ctx: PlanContext) -> list[Step]:
        key, keeper = self.column_key, self.keeper(ctx)
        qt, qc = literal(render(qualified(self.table))), literal(render(ident(self.column)))
        body = block(
            if_then(S("{} IS NULL").format(regclass(keeper)),
                    notice(ctx, f"no saved default of {key} (nothing to restore: rolled back already, or the "
                                "forward did not run)"),
                    forget_owned(ctx, "column_default", self.keeper_key(ctx)),
                    S("RETURN;")),
            if_then(column_exists(self.table, self.column),
                    S("SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) INTO v_default\n"
                      "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d\n"
                      "    ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
                      "WHERE a.attrelid = {k} AND a.attname = {col};").format(
                        k=regclass(keeper), col=literal(self.column)),
                    if_then(S("v_default IS NULL"),
                            S("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT;").format(
                                t=qualified(self.table), c=ident(self.column)),
                            notice(ctx, f"column {key} has no default again (it had none before {ctx.label})"),
                            otherwise=[
                                S("EXECUTE 'ALTER TABLE ' || {qt} || ' ALTER COLUMN ' || {qc} || ' SET DEFAULT '"
                                  " || v_default;").format(qt=qt, qc=qc),
                                S("RAISE NOTICE '%', {msg} || v_default;").format(msg=literal(
                                    f"dbdeploy {ctx.label}: restored the default of {key}: "))]),
                    otherwise=[notice(ctx, f"column {key} is gone; its saved default is dropped with the keeper")]),
            S("DROP TABLE {};").format(keeper),
            forget_owned(ctx, "column_default", self.keeper_key(ctx)),
        )
        return [Step("restore_default", self.table, "ACCESS EXCLUSIVE", True,
                     do_block(body, declare=["v_default text"]),
                     f"restore the default {self.column} had before {ctx.label} (from the keeper)")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(
            S("{} AND {} IS NULL").format(is_owned(ctx, "column_default", self.keeper_key(ctx)),
                                          regclass(self.keeper(ctx))),
            fail(ctx, f"the default {self.column_key} had before {ctx.label}, saved in {self.keeper_key(ctx)}, is "
                      "missing, so the rollback cannot restore it",
                 f"Set the default of {self.column_key} by hand to what it was, delete the row of "
                 f"{self.keeper_key(ctx)} from {ctx.history_schema}.migration_objects, then run the rollback "
                 "again."))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, column, keeper = self.table, self.column, self.keeper_key(ctx)
        current = queries.query(S(
            "SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS column_default\n"
            "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid"
            " AND d.adnum = a.attnum\n"
            "WHERE a.attrelid = {rel} AND a.attname = {col}").format(rel=regclass(table), col=literal(column)))
        return ChecklistItems(
            prerequisites=[
                queries.table_exists(table),
                CheckQuery(f"The default of {table}.{column} now (kept for the rollback; NULL: none)", current, ""),
                CheckQuery(f"{table}.{column} is neither an identity nor a generated column", queries.query(S(
                    "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {rel}"
                    " AND attname = {col} AND (attidentity <> '' OR attgenerated <> '')) AS has_plain_default").format(
                    rel=regclass(table), col=literal(column))), "true"),
            ],
            health_checks=[
                CheckQuery(f"The default of {table}.{column} after the deploy (expected: "
                           f"{self.new_default() if self.new_default() is not None else 'none, NULL'})", current, ""),
                CheckQuery(f"The previous default is kept for the rollback in {keeper}", queries.query(
                    S("SELECT {} IS NOT NULL AS saved").format(regclass(self.keeper(ctx)))), "true"),
            ],
            notes=[f"Changing the default of {table}.{column} is a catalog change (a brief ACCESS EXCLUSIVE lock): "
                   "rows already in the table keep their values; only rows inserted from then on get the new one."],
            rollback_notes=[f"The rollback sets the default of {table}.{column} back to the one it had before "
                            f"{ctx.label}, saved at forward time as a catalog entry of {keeper} (no SQL text), "
                            "or drops "
                            "the default when there was none; it refuses before any change when that saved default "
                            "is missing. No rows change."])


class SetDefault(ColumnDefaultChange):
    """Set the default of ``column`` of ``table`` to ``default`` (an SQL expression, parsed; a volatile
    one is fine: no row is rewritten). The rollback restores the previous default, or none."""

    kind: ClassVar[str] = "set_default"
    default: SqlExpression

    @field_validator("default")
    @classmethod
    def _default_rules(cls, value: str) -> str:
        """What PostgreSQL refuses in a DEFAULT, and calls with side effects (dbdeploy.sql.expression_rules)."""
        check_default(value)
        return value

    def new_default(self):
        return self.default

    def change(self) -> sql.Composable:
        return S("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {d};").format(
            t=qualified(self.table), c=ident(self.column), d=self.default.sql())

    def describe_change(self) -> str:
        return f"set the default of {self.column} to {self.default}"
