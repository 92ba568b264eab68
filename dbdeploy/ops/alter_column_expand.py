"""The expansion of ``AlterColumnType(online=True, new_name=…)``: both types work until a Contract.

A type change breaks the application version still running during a deploy when the new code writes
values the old type cannot hold, or reads the column as the new type. Expand/contract (pgroll's
``alter_column`` with ``up``/``down``; ops/expansion.py) keeps both: the old column with its old type
for the old code, a new column ``new_name`` with the new type for the new code, each write to one
converted into the other by a trigger.

It is :class:`~dbdeploy.ops.rename_column.RenameColumn`'s online form (same steps, trigger rules,
batched fill, NOT NULL through a validated CHECK, mirrored single-column indexes, Contract and
rollbacks; see that module) with the values converted on the way:

- old → new: ``using`` evaluated with the old column bound to the old value, cast to ``type``
  (without ``using``: ``CAST(old AS type)``);
- new → old: ``back`` evaluated with ``new_name`` bound to the new value, cast to the old type when
  the specs know it (without ``back``: ``CAST(new AS old type)``, which needs the old type from the
  specs);
- the new column is added with ``type`` (its default collation); a contract's rollback re-adds the old
  column with the type and collation of its copy in the backup schema (the contract copied it there
  with ``CREATE TABLE … AS``, which keeps both);
- a default moved from one column to the other at the contract (and back) is cast to the receiving
  column's type as PostgreSQL spells it (``format_type``).

A write the trigger cannot convert (e.g. a bigint above 2147483647 written by the new code while the
old column is ``integer``) fails that write with PostgreSQL's own error: the old code could not have
read it. The checklist says so.
"""

from __future__ import annotations

from dataclasses import replace

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.model.base import SqlExpression, SqlType
from dbdeploy.ops.add_column import column_expect
from dbdeploy.ops.base import ChecklistItems, PlanContext, SchemaState
from dbdeploy.ops.common import S, backup_table
from dbdeploy.ops.rename_column import RenameColumn
from dbdeploy.sql import ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, if_then


class TypeExpansion(RenameColumn):
    """RenameColumn's online form with a type change (see the module docstring); built by
    :class:`~dbdeploy.ops.alter_column_type.AlterColumnType` for ``online=True``, not a spec operation.

    ``old_type``: the column's type from the specs (None when they do not know the table; ``back`` is
    then required — AlterColumnType checks that)."""

    type: SqlType
    using: SqlExpression | None = None
    back: SqlExpression | None = None
    old_type: SqlType | None = None

    def apply(self, state: SchemaState) -> None:
        super().apply(state)
        known = state.tables.get(self.table)
        if known is not None and self.new_name in known.columns:
            columns = dict(known.columns)
            columns[self.new_name] = columns[self.new_name].model_copy(
                update={"type": self.type, "default": None, "collation": None})
            state.tables[self.table] = replace(known, columns=columns)   # copy-on-write (SchemaState.copy)

    # --- the conversions (RenameColumn's hooks) --------------------------------------------------------

    def _to_new(self, old_value: sql.Composable) -> sql.Composable:
        value = old_value if self.using is None else S("(SELECT {u} FROM (SELECT {v}) AS dbdeploy_old({c}))").format(
            u=self.using.sql(), v=old_value, c=ident(self.column))
        return S("CAST({} AS {})").format(value, self.type.sql())

    def _to_old(self, new_value: sql.Composable) -> sql.Composable:
        value = new_value if self.back is None else S("(SELECT {b} FROM (SELECT {v}) AS dbdeploy_new({c}))").format(
            b=self.back.sql(), v=new_value, c=ident(self.new_name))
        return value if self.old_type is None else S("CAST({} AS {})").format(value, self.old_type.sql())

    def _column_definition(self, ctx: PlanContext, target: str, source: str) -> sql.Composable:
        if target == self.new_name:
            return S("ALTER TABLE {t} ADD COLUMN {n} {type};").format(
                t=qualified(self.table), n=ident(target), type=self.type.sql())
        backup = backup_table(ctx, self._backup_name(ctx))
        return block(self._add_like(target, target, relation=backup),
                     _copy_default(backup, self.table, target))

    def _default_from(self, target: str, default: sql.Composable) -> sql.Composable | None:
        if target != self.new_name:
            return None     # the old column's own default comes back from the backup (_column_definition)
        return S("'CAST((' || {d} || ') AS ' || (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)"
                 " FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {c}) || ')'").format(
            d=default, rel=regclass(self.table), c=literal(target))

    def _keep_in_backup(self, ctx: PlanContext, backup: sql.Identifier) -> sql.Composable | None:
        # The old column's default (of the old type) goes with its copy, for the contract's rollback.
        return _copy_default(self.table, backup, self.column)

    # --- what the specs and the operator see ----------------------------------------------------------

    def describe_expansion(self) -> str:
        return (f"{self.table}.{self.column} → {self.new_name} ({self.type}; a trigger converts writes of either "
                "into the other)")

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        known = ctx.state.tables.get(self.table)
        column = None if known is None else known.columns.get(self.new_name)
        if column is None:
            return [expect.Column(self.table, self.new_name)]
        return [column_expect(self.table, column.model_copy(update={"nullable": True, "identity": None}),
                              not_null=False)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        items = super().checklist(ctx, earlier)
        table, old, new = self.table, self.column, self.new_name
        back = f"back ({self.back})" if self.back else f"a cast to {self.old_type}"
        items.notes[0] = (
            f"Until the Contract of V{self._version}, {table}.{old} (its old type) and {table}.{new} ({self.type}) "
            f"hold the same value in every row, converted: a trigger sets {new} from {old} with "
            f"{'using (' + str(self.using) + ')' if self.using else 'a cast to ' + str(self.type)} and {old} from "
            f"{new} with {back}; when both are written differently, {new} wins. A value the trigger cannot "
            f"convert back fails that write (the old code could not read it). The new column has no default until "
            "the contract: new code that omits it gets the old column's default, converted, through the trigger.")
        return items


def _copy_default(source: str | sql.Identifier, target: str | sql.Identifier, column: str) -> sql.Composable:
    """PL/pgSQL: give ``target.column`` the default of ``source.column`` (PostgreSQL's own text of it,
    ``pg_get_expr``), when ``source.column`` has one."""
    def default_of(relation):
        return S("(SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d"
                 " JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                 " WHERE d.adrelid = {rel} AND a.attname = {c})").format(rel=regclass(relation), c=literal(column))
    return if_then(S("{} IS NOT NULL").format(default_of(source)),
                   S("EXECUTE 'ALTER TABLE ' || {rel}::pg_catalog.text || ' ALTER COLUMN ' || {c}"
                     " || ' SET DEFAULT ' || {d};").format(rel=regclass(target), c=literal(render(ident(column))),
                                                           d=default_of(source)))


__all__ = ["TypeExpansion"]
