"""DropTable: move the table into the backup schema instead of destroying it.

``ALTER TABLE … SET SCHEMA`` is instant and keeps rows, indexes, constraints, defaults,
identity sequences and grants, so rollback brings back exactly the table that was "dropped".
Dependants (other tables' foreign keys, views) make the drop refuse instead of CASCADE.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.ops import expect
from dbdeploy.ops.base import Operation, PlanContext, SchemaState, Step
from dbdeploy.ops.common import (
    S,
    backup_name,
    block,
    do_block,
    fail,
    if_then,
    notice,
    refuse_if_dependants,
    relation_exists,
    relation_missing,
    table_dependants,
)
from dbdeploy.spec.base import TableName
from dbdeploy.spec.names import split_table
from dbdeploy.sql import ident, qualified


class DropTable(Operation):
    kind: ClassVar[str] = "drop_table"
    destructive: ClassVar[bool] = True
    table: TableName

    def apply(self, state: SchemaState) -> None:
        state.tables.pop(self.table, None)
        for name in [n for n, (t, _i) in state.indexes.items() if t == self.table]:
            del state.indexes[name]

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [expect.table(self.table, present=False)]

    def _backup(self, ctx: PlanContext) -> str:
        schema, name = split_table(self.table)
        return backup_name(ctx, "dropped", schema, name)

    def forward(self, ctx: PlanContext) -> list[Step]:
        schema, _name = split_table(self.table)
        backup = self._backup(ctx)
        body = block(
            if_then(relation_missing(self.table),
                    notice(ctx, f"table {self.table} is already gone"), S("RETURN;")),
            refuse_if_dependants(ctx, f"table {self.table}", table_dependants(self.table)),
            if_then(relation_exists(f"{ctx.backup_schema}.{backup}"),
                    fail(ctx, f"{ctx.backup_schema}.{backup} already exists, so {self.table} cannot be set aside",
                         "Inspect that backup table; rename or drop it once it is no longer needed.")),
            S("ALTER TABLE {t} RENAME TO {b};").format(t=qualified(self.table), b=ident(backup)),
            S("ALTER TABLE {t} SET SCHEMA {s};").format(t=ident(schema, backup), s=ident(ctx.backup_schema)),
            notice(ctx, f"table {self.table} moved to {ctx.backup_schema}.{backup} (kept for rollback)"),
        )
        return [Step(self.kind, self.table, "ACCESS EXCLUSIVE", True,
                     do_block(body, declare=["v_dependants text"]),
                     f"drop table {self.table} (set aside in the backup schema with all its rows)")]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        schema, name = split_table(self.table)
        backup = self._backup(ctx)
        body = block(
            if_then(relation_exists(self.table),
                    notice(ctx, f"table {self.table} is present; nothing to restore"), S("RETURN;")),
            if_then(relation_missing(f"{ctx.backup_schema}.{backup}"),
                    fail(ctx, f"cannot restore {self.table}: {ctx.backup_schema}.{backup} is missing",
                         "The table was dropped outside this migration; restore it from a database backup.")),
            S("ALTER TABLE {b} SET SCHEMA {s};").format(b=ident(ctx.backup_schema, backup), s=ident(schema)),
            S("ALTER TABLE {b} RENAME TO {n};").format(b=ident(schema, backup), n=ident(name)),
            notice(ctx, f"table {self.table} restored from {ctx.backup_schema}.{backup}"),
        )
        return [Step("restore_table", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"restore table {self.table} with its rows, indexes and constraints")]
